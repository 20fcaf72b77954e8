package layer

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/ostree"
)

// addBlob writes b to a file and registers it with s for in-place reading.
func addBlob(t *testing.T, s *ostree.Store, b []byte) ostree.BlobID {
	t.Helper()
	p := filepath.Join(t.TempDir(), "blob")
	require.NoError(t, os.WriteFile(p, b, 0o644))
	f, err := os.Open(p)
	require.NoError(t, err)
	id, err := s.AddBlobFile(f, p)
	require.NoError(t, err)
	return id
}

// applyInPlace applies layers, each from a blob of its own, recording them.
func applyInPlace(t *testing.T, s *ostree.Store, layers [][]byte) (*ostree.Tree, []ostree.BlobID, [][]byte) {
	t.Helper()
	tree := ostree.NewTree()
	var ids []ostree.BlobID
	var recs [][]byte
	for i, l := range layers {
		id := addBlob(t, s, l)
		r, err := s.BlobReader(id)
		require.NoError(t, err)
		var rec bytes.Buffer
		_, err = Apply(context.Background(), tree, s, r, Options{Blob: id, Record: &rec})
		require.NoError(t, err, "layer %d", i)
		ids, recs = append(ids, id), append(recs, rec.Bytes())
	}
	return tree, ids, recs
}

// TestApplyInPlace: applying a layer from its blob in place gives the tree a copying
// apply gives, with regular files located in the blob and nothing of theirs in the store.
func TestApplyInPlace(t *testing.T) {
	layers := testLayers(t)
	copied := newStore(t)
	want, _, _ := recordLayers(t, copied, layers...)
	wantRoot, _, err := want.Finalize(nil)
	require.NoError(t, err)

	s := newStore(t)
	got, _, _ := applyInPlace(t, s, layers)
	gotRoot, _, err := got.Finalize(nil)
	require.NoError(t, err)
	assert.Equal(t, wantRoot, gotRoot)
	assert.Equal(t, dump(t, copied, want), dump(t, s, got))
	for _, p := range []string{"/etc/x", "/etc/y", "/d/new", "/usr/lib/b"} {
		f := got.LookupFile(p)
		require.NotNil(t, f, p)
		assert.True(t, f.Loc.InPlace(), p)
		assert.False(t, s.Has(f.Checksum, ostree.ObjFile), "%s: not copied into the store", p)
	}
	assert.False(t, got.LookupFile("/lib").Loc.InPlace(), "a symlink has no payload to locate")
}

// TestReplayInPlace: a record of an in-place layer replays with the blob given, and is
// unusable without it (its objects are not in the store) or against a shorter blob.
func TestReplayInPlace(t *testing.T) {
	layers := testLayers(t)
	s := newStore(t)
	want, ids, recs := applyInPlace(t, s, layers)
	tests := []struct {
		name  string
		blobs func() []ostree.BlobID
		want  string
	}{
		{"same blobs", func() []ostree.BlobID { return ids }, ""},
		{"blobs registered again", func() []ostree.BlobID {
			return []ostree.BlobID{addBlob(t, s, layers[0]), addBlob(t, s, layers[1])}
		}, ""},
		{"no blob", func() []ostree.BlobID { return []ostree.BlobID{0, 0} }, "is not in the store"},
		{"shorter blob", func() []ostree.BlobID {
			return []ostree.BlobID{addBlob(t, s, layers[0][:1024]), ids[1]}
		}, "outside blob"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ostree.NewTree()
			var err error
			for i, id := range tc.blobs() {
				if _, err = Replay(context.Background(), got, s, bytes.NewReader(recs[i]), Options{Blob: id}); err != nil {
					break
				}
			}
			if tc.want != "" {
				require.ErrorIs(t, err, ErrRecordUnusable)
				assert.Contains(t, err.Error(), tc.want)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, dump(t, s, want), dump(t, s, got))
		})
	}
}
