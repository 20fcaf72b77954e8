package source

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/ostree"
)

// readFile reads the content of the tree's file at p through the store.
func readFile(t *testing.T, s *ostree.Store, tree *ostree.Tree, p string) (string, error) {
	t.Helper()
	f := tree.LookupFile(p)
	require.NotNil(t, f, p)
	obj, err := s.OpenFileContent(f)
	if err != nil {
		return "", err
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	return string(b), err
}

// TestLoadInPlaceBlobs: an uncompressed layer kept as a file by its transport is read in
// place (its files' payloads stay in the blob); a compressed one is copied; the tree and
// commit are the same as a copying import's either way.
func TestLoadInPlaceBlobs(t *testing.T) {
	tests := []struct {
		name      string
		compress  []compressor
		inPlace   []string // files read in place
		notInPlce []string // files in the store
	}{
		{"all uncompressed", []compressor{plain, plain, plain},
			[]string{"/usr/bin/bash", "/usr/etc/hosts", "/usr/etc/passwd", "/usr/share/doc/b"}, []string{"/lib"}},
		{"compressed lower layer", []compressor{gzipped, plain, zstded},
			[]string{"/usr/bin/bash", "/usr/etc/hosts"}, []string{"/usr/etc/passwd", "/usr/share/doc/b", "/lib"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img := testImage(t)
			img.compress = tc.compress
			ref := writeOCI(t, t.TempDir(), img)
			copied, err := Load(context.Background(), ref, "", Options{Store: newStore(t), CopyRootfs: true})
			require.NoError(t, err)
			s := newStore(t)
			in, err := Load(context.Background(), ref, "", Options{Store: s})
			require.NoError(t, err)
			assert.Equal(t, copied.CommitSum, in.CommitSum)
			assert.Equal(t, lsR(t, copied.Tree), lsR(t, in.Tree))
			for _, p := range tc.inPlace {
				f := in.Tree.LookupFile(p)
				assert.True(t, f.Loc.InPlace(), p)
				assert.False(t, s.Has(f.Checksum, ostree.ObjFile), "%s: no copy in the store", p)
			}
			for _, p := range tc.notInPlce {
				f := in.Tree.LookupFile(p)
				assert.False(t, f.Loc.InPlace(), p)
				assert.True(t, s.Has(f.Checksum, ostree.ObjFile), p)
			}
			got, err := readFile(t, s, in.Tree, "/usr/bin/bash")
			require.NoError(t, err)
			assert.Equal(t, "#!bash", got)
			got, err = readFile(t, s, in.Tree, "/usr/bin/sh")
			require.NoError(t, err)
			assert.Equal(t, "#!bash", got, "a hardlink shares the location")

			// Importing again (a new Store value on the same directory) replays the
			// records and points them at the blobs again.
			s2, err := ostree.OpenStore(s.Root())
			require.NoError(t, err)
			again, err := Load(context.Background(), ref, "", Options{Store: s2})
			require.NoError(t, err)
			assert.Equal(t, in.CommitSum, again.CommitSum)
			for i, l := range again.Layers {
				assert.True(t, l.Cached, "layer %d", i)
			}
			for _, p := range tc.inPlace {
				assert.Equal(t, in.Tree.LookupFile(p).Loc, again.Tree.LookupFile(p).Loc, p)
			}
			got, err = readFile(t, s2, again.Tree, "/usr/etc/hosts")
			require.NoError(t, err)
			assert.Equal(t, "127.0.0.1 localhost\n", got)
		})
	}
}

// TestInPlaceBlobChanged: a blob that changes after the import fails the read of a file
// in it with an error naming the blob, however it was changed; a blob replaced by a new
// file under the same name is not read at all.
func TestInPlaceBlobChanged(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, path string)
		want   string // "" means the old content is still read
	}{
		{"appended to", func(t *testing.T, p string) {
			f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			require.NoError(t, err)
			_, err = f.WriteString("x")
			require.NoError(t, err)
			require.NoError(t, f.Close())
		}, "changed after it was imported (size"},
		{"rewritten with the old mtime", func(t *testing.T, p string) {
			fi, err := os.Stat(p)
			require.NoError(t, err)
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			for i := range b {
				if b[i] == '#' && b[i+1] == '!' && b[i+2] == 'b' {
					b[i+2] = 'B'
				}
			}
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			require.NoError(t, err)
			_, err = f.WriteAt(b, 0)
			require.NoError(t, err)
			require.NoError(t, f.Close())
			require.NoError(t, os.Chtimes(p, time.Time{}, fi.ModTime()))
		}, "no longer hashes to"},
		{"replaced by rename", func(t *testing.T, p string) {
			require.NoError(t, os.WriteFile(p+".new", []byte("other"), 0o644))
			require.NoError(t, os.Rename(p+".new", p))
		}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img := testImage(t)
			img.compress = []compressor{plain, plain, plain}
			dir := t.TempDir()
			ref := writeOCI(t, dir, img)
			s := newStore(t)
			in, err := Load(context.Background(), ref, "", Options{Store: s})
			require.NoError(t, err)
			tc.change(t, filepath.Join(dir, "blobs", "sha256", in.Layers[1].Digest.Encoded()))
			got, err := readFile(t, s, in.Tree, "/usr/bin/bash")
			if tc.want == "" {
				require.NoError(t, err)
				assert.Equal(t, "#!bash", got)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), in.Layers[1].Digest.String(), "the error names the blob")
		})
	}
}
