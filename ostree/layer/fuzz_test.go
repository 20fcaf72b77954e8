package layer

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/ostree"
)

// FuzzApply feeds arbitrary bytes as a layer. Properties: no panic; nothing is written
// outside the store, and inside it only objects whose content hashes to their name (no
// temp files left behind); a successful layer finalizes and its record replays to the
// same tree.
func FuzzApply(f *testing.F) {
	f.Add(mkTar(f, dir("./"), file("a/b", "hello"), symlink("l", "a/b"), hardlink("h", "a/b")))
	f.Add(mkTar(f, file("a/.wh.b", ""), file("d/.wh..wh..opq", ""), ent{name: "c", typ: tar.TypeChar}))
	f.Add(mkTar(f, ent{name: "x", body: "x", mode: 0o4755, uid: 9, xattrs: map[string]string{"user.a": "1", "user.b": ""}}))
	f.Add(mkTar(f, symlink("lib", "usr/lib"), file("lib/x", "x"), symlink("a", "/"), file("a/y", "y")))
	f.Add(rawTar("caf\xe9", tar.TypeReg, "x", ""))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		storeDir := filepath.Join(parent, "store")
		s, err := ostree.OpenStore(storeDir)
		require.NoError(t, err)
		tree := ostree.NewTree()
		var rec bytes.Buffer
		_, applyErr := Apply(context.Background(), tree, s, bytes.NewReader(data), Options{Record: &rec})

		entries, err := os.ReadDir(parent)
		require.NoError(t, err)
		require.Len(t, entries, 1, "only the store directory in %s", parent)
		require.NoError(t, filepath.WalkDir(storeDir, func(p string, d fs.DirEntry, err error) error {
			require.NoError(t, err)
			rel, _ := filepath.Rel(storeDir, p)
			switch {
			case d.IsDir():
				require.True(t, rel == "." || rel == "tmp" || rel == "objects" || strings.HasPrefix(rel, "objects/"), rel)
			case rel == "config":
			default:
				require.True(t, strings.HasPrefix(rel, "objects/") && strings.HasSuffix(rel, ".file"), "unexpected file %s", rel)
				b, err := os.ReadFile(p)
				require.NoError(t, err)
				sum := sha256.Sum256(b)
				name := strings.TrimSuffix(strings.ReplaceAll(strings.TrimPrefix(rel, "objects/"), "/", ""), ".file")
				require.Equal(t, name, hex.EncodeToString(sum[:]))
			}
			return nil
		}))
		if applyErr != nil {
			return
		}
		wantRoot, wantMeta, err := tree.Finalize(nil)
		require.NoError(t, err)
		again := ostree.NewTree()
		_, err = Replay(context.Background(), again, s, bytes.NewReader(rec.Bytes()), Options{})
		require.NoError(t, err)
		gotRoot, gotMeta, err := again.Finalize(nil)
		require.NoError(t, err)
		require.Equal(t, wantRoot, gotRoot)
		require.Equal(t, wantMeta, gotMeta)
	})
}

// FuzzReplay feeds arbitrary bytes as a layer record: no panic, and a record that is not
// usable leaves the tree untouched.
func FuzzReplay(f *testing.F) {
	s := newStore(f)
	var rec bytes.Buffer
	_, err := Apply(context.Background(), ostree.NewTree(), s, bytes.NewReader(mkTar(f,
		dir("d"), file("d/a", "a"), hardlink("d/b", "d/a"), symlink("l", "d"), file("l/c", "c"),
		file("d/.wh.a", ""), file("d/.wh..wh..opq", ""), ent{name: "n", typ: tar.TypeChar},
		ent{name: "x", body: "x", xattrs: map[string]string{"user.a": "1"}})), Options{Record: &rec})
	require.NoError(f, err)
	// The corpus is the uncompressed record body, so that mutations reach the decoder
	// instead of failing gzip's CRC.
	zr, err := gzip.NewReader(&rec)
	require.NoError(f, err)
	body, err := io.ReadAll(zr)
	require.NoError(f, err)
	f.Add(body)
	f.Fuzz(func(t *testing.T, data []byte) {
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		zw.Write(data)
		require.NoError(t, zw.Close())
		tree := ostree.NewTree()
		_, err := Replay(context.Background(), tree, s, bytes.NewReader(z.Bytes()), Options{})
		if errors.Is(err, ErrRecordUnusable) {
			require.Empty(t, tree.Root.Files)
			require.Empty(t, tree.Root.Dirs)
		}
		if err == nil {
			_, _, err := tree.Finalize(nil)
			require.NoError(t, err)
		}
	})
}
