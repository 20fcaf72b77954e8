package exporter

import (
	"os"
	"path/filepath"
	"testing"

	digest "github.com/opencontainers/go-digest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPlaceReplacesForeignBlob: a file already under a blob's name in the output (a
// layout shared with a previous build) is not trusted; place puts the store's blob there.
func TestPlaceReplacesForeignBlob(t *testing.T) {
	content := []byte("the store's blob")
	d := digest.FromBytes(content)
	store, out := blobDir(t.TempDir()), blobDir(t.TempDir())
	require.NoError(t, os.MkdirAll(filepath.Dir(store.path(d)), 0o755))
	require.NoError(t, os.WriteFile(store.path(d), content, 0o644))
	for name, existing := range map[string][]byte{
		"same size, other bytes": []byte("a forged blob!!!"),
		"absent":                 nil,
	} {
		t.Run(name, func(t *testing.T) {
			os.RemoveAll(string(out))
			if existing != nil {
				require.Len(t, existing, len(content))
				require.NoError(t, os.MkdirAll(filepath.Dir(out.path(d)), 0o755))
				require.NoError(t, os.WriteFile(out.path(d), existing, 0o644))
			}
			require.NoError(t, out.place(store.path(d), d, int64(len(content))))
			got, err := os.ReadFile(out.path(d))
			require.NoError(t, err)
			assert.Equal(t, content, got)
		})
	}
}
