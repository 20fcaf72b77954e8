package main

import (
	"flag"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var updateMan = flag.Bool("update-man", false, "rewrite docs/man/ from the commands")

// manDir is docs/man/ of the repository (tests run in cmd/rechunker).
const manDir = "../../docs/man"

// TestManPages keeps docs/man/ in step with the commands: the pages generated now must
// be the ones committed, no more and no fewer. With -update-man it rewrites them.
func TestManPages(t *testing.T) {
	if *updateMan {
		old, err := filepath.Glob(filepath.Join(manDir, "*.1"))
		require.NoError(t, err)
		for _, p := range old {
			require.NoError(t, os.Remove(p))
		}
		require.NoError(t, os.MkdirAll(manDir, 0o755))
		require.NoError(t, genManPages(manDir))
	}
	tmp := t.TempDir()
	require.NoError(t, genManPages(tmp))
	want := readManPages(t, tmp)
	got := readManPages(t, manDir)
	require.Contains(t, want, "rechunker.1")
	require.Contains(t, want, "rechunker-build.1")
	require.Contains(t, want, "rechunker-compose-build-chunked-oci.1")
	var stale []string
	for name, w := range want {
		if got[name] != w {
			stale = append(stale, name)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			stale = append(stale, name+" (no such command)")
		}
	}
	sort.Strings(stale)
	assert.Empty(t, stale, "docs/man/ is stale; regenerate it with\n\t%s", manRegenerate)
}

// TestManPagesReproducible: two generations are byte-identical and carry the fixed date,
// no generation time.
func TestManPagesReproducible(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	require.NoError(t, genManPages(a))
	t.Setenv("SOURCE_DATE_EPOCH", "1")
	require.NoError(t, genManPages(b))
	pa, pb := readManPages(t, a), readManPages(t, b)
	assert.Equal(t, pa, pb)
	for name, page := range pa {
		assert.Contains(t, page, `"`+manDate.Format("Jan 2006")+`"`, name)
		assert.NotContains(t, page, "Auto generated", name)
	}
}

func readManPages(t *testing.T, dir string) map[string]string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.1"))
	require.NoError(t, err)
	pages := map[string]string{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		pages[filepath.Base(p)] = string(b)
	}
	return pages
}
