package fsutil

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWriteFileAtomicAndPublish(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	require.NoError(t, WriteFileAtomic(p, []byte("one")))
	require.NoError(t, WriteFileAtomicSync(p, []byte("two")))
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	assert.Equal(t, "two", string(b))

	tmp := filepath.Join(dir, "tmp")
	require.NoError(t, os.WriteFile(tmp, []byte("x"), 0o600))
	dst := filepath.Join(dir, "a", "b", "c")
	require.NoError(t, Publish(tmp, dst))
	st, err := os.Stat(dst)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o644), st.Mode().Perm())
	assert.NoFileExists(t, tmp)

	// A failed publish removes the temporary file.
	require.NoError(t, os.WriteFile(tmp, []byte("x"), 0o600))
	require.Error(t, Publish(tmp, filepath.Join(dst, "under-a-file")))
	assert.NoFileExists(t, tmp)
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		assert.NotContains(t, e.Name(), ".tmp-", "no temporary file left")
	}
}

func TestPruneFiles(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-48 * time.Hour)
	files := map[string]bool{"a/old": true, "a/kept": true, "b/new": false} // name -> aged
	for name, aged := range files {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte("12345"), 0o644))
		if aged {
			require.NoError(t, os.Chtimes(p, old, old))
		}
	}
	keep := func(p string) bool { return filepath.Base(p) == "kept" }
	cutoff := time.Now().Add(-time.Hour)
	cases := []struct {
		name   string
		dryRun bool
		left   []string
	}{
		{"dry run", true, []string{"a/old", "a/kept", "b/new"}},
		{"prune", false, []string{"a/kept", "b/new"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, err := PruneFiles(context.Background(), dir, cutoff, c.dryRun, keep)
			require.NoError(t, err)
			assert.Equal(t, PruneStats{Files: 1, Bytes: 5}, st)
			for _, name := range c.left {
				assert.FileExists(t, filepath.Join(dir, name))
			}
		})
	}
	st, err := PruneFiles(context.Background(), filepath.Join(dir, "missing"), cutoff, false, nil)
	require.NoError(t, err, "a missing directory has nothing to prune")
	assert.Zero(t, st)
}

func TestContextReader(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f, err := os.Open("fsutil.go")
	require.NoError(t, err)
	defer f.Close()
	r := ContextReader(ctx, f)
	buf := make([]byte, 10)
	_, err = r.Read(buf)
	require.NoError(t, err)
	cancel()
	_, err = r.Read(buf)
	assert.ErrorIs(t, err, context.Canceled)
}
