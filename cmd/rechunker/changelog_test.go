package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/rechunk"
)

// TestDiffChangelog builds two chunked images around two real rpm databases and
// compares their package lists with diff --changelog, in each format.
func TestDiffChangelog(t *testing.T) {
	fixtures := "/work/shared/fixtures/go-rpmdb"
	tmp, store := t.TempDir(), t.TempDir()
	var refs []string
	for i, db := range []string{"amazonlinux2023-plain/rpmdb.sqlite", "cbl-mariner-2.0/rpmdb.sqlite"} {
		data, err := os.ReadFile(filepath.Join(fixtures, db))
		if err != nil {
			t.Skipf("fixture missing: %v", err)
		}
		rootfs := buildRootfs(t)
		p := filepath.Join(rootfs, "usr/lib/sysimage/rpm/rpmdb.sqlite")
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, data, 0o644))
		ref := "oci:" + filepath.Join(tmp, "out") + ":v" + string(rune('1'+i))
		r := runBin(t, tmp, "build", "--quiet", "--store", store, "--rootfs", rootfs, "--output", ref)
		require.Equal(t, 0, r.code, r)
		refs = append(refs, ref)
	}
	r := runBin(t, tmp, "diff", "--store", store, "--changelog=json", refs[0], refs[1])
	require.Equal(t, 0, r.code, r)
	var c rechunk.Changelog
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &c), r.stdout)
	assert.NotEmpty(t, c.Changed)
	assert.NotEmpty(t, c.Added)
	assert.NotEmpty(t, c.Removed)
	for _, ch := range c.Changed {
		assert.NotEqual(t, ch.Old, ch.New)
		assert.Equal(t, "rpm", ch.DB)
	}

	r = runBin(t, tmp, "diff", "--store", store, "--changelog=markdown", refs[0], refs[1])
	require.Equal(t, 0, r.code, r)
	assert.Contains(t, r.stdout, "## Package changes")
	assert.Contains(t, r.stdout, "| "+c.Changed[0].Name+" | "+c.Changed[0].Arch+" | "+c.Changed[0].Old+" | "+c.Changed[0].New+" |")

	r = runBin(t, tmp, "diff", "--store", store, "--changelog", refs[0], refs[1])
	require.Equal(t, 0, r.code, r)
	assert.Contains(t, r.stdout, "changed  "+c.Changed[0].Name)

	r = runBin(t, tmp, "diff", "--changelog=yaml", refs[0], refs[1])
	assert.Equal(t, 2, r.code, r)
	assert.Contains(t, r.stderr, "--changelog=yaml: want text, markdown or json")
}
