package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
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
