package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/ostree"
)

// recordLayers applies layers to a fresh tree, recording each; it returns the tree and
// the records.
func recordLayers(t *testing.T, s *ostree.Store, layers ...[]byte) (*ostree.Tree, [][]byte, []Stats) {
	t.Helper()
	tree := ostree.NewTree()
	var recs [][]byte
	var stats []Stats
	for _, l := range layers {
		var rec bytes.Buffer
		st, err := Apply(context.Background(), tree, s, bytes.NewReader(l), Options{Record: &rec})
		require.NoError(t, err)
		recs = append(recs, rec.Bytes())
		stats = append(stats, st)
	}
	return tree, recs, stats
}

func testLayers(t *testing.T) [][]byte {
	return [][]byte{
		mkTar(t, dir("./"), dir("usr/lib"), symlink("lib", "usr/lib"), file("usr/lib/a", "a"),
			ent{name: "etc/x", body: "x", mode: 0o4755, uid: 3, gid: 4, xattrs: map[string]string{"user.c": "1", "security.selinux": "l"}},
			file("d/old", "o"), ent{name: "dev/null", typ: tar.TypeChar}),
		mkTar(t, file("lib/b", "b"), hardlink("etc/y", "etc/x"), file(".wh.nothing", ""), file("usr/lib/.wh.a", ""),
			dir("d"), file("d/.wh..wh..opq", ""), file("d/new", "n"),
			ent{name: "d2", typ: tar.TypeDir, mode: 0o700, xattrs: map[string]string{"user.d": "dir"}}),
	}
}

func TestRecordReplayGivesIdenticalTree(t *testing.T) {
	s := newStore(t)
	layers := testLayers(t)
	want, recs, wantStats := recordLayers(t, s, layers...)
	wantRoot, wantMeta, err := want.Finalize(nil)
	require.NoError(t, err)

	got := ostree.NewTree()
	var warns []string
	for i, rec := range recs {
		st, err := Replay(context.Background(), got, s, bytes.NewReader(rec), Options{Warn: func(m string) { warns = append(warns, m) }})
		require.NoError(t, err, "layer %d", i)
		assert.Equal(t, wantStats[i], st, "layer %d stats", i)
	}
	gotRoot, gotMeta, err := got.Finalize(nil)
	require.NoError(t, err)
	assert.Equal(t, wantRoot, gotRoot)
	assert.Equal(t, wantMeta, gotMeta)
	assert.Equal(t, dump(t, s, want), dump(t, s, got))
	assert.Equal(t, []string{"skipping character device /dev/null: ostree cannot store it"}, warns)
}

func TestReplayOverDifferentLowerLayer(t *testing.T) {
	// A record keeps entries unresolved, so it replays correctly over another base: here
	// the "lib" symlink of the base decides where lib/b lands.
	s := newStore(t)
	layers := testLayers(t)
	_, recs, _ := recordLayers(t, s, layers...)
	base := mkTar(t, dir("lib64"), symlink("lib", "lib64"), file("etc/x", "other"), dir("usr/lib"), file("usr/lib/a", "a"))
	want, _, _ := recordLayers(t, s, base, layers[1])
	got, _, _ := recordLayers(t, s, base)
	_, err := Replay(context.Background(), got, s, bytes.NewReader(recs[1]), Options{})
	require.NoError(t, err)
	assert.Equal(t, dump(t, s, want), dump(t, s, got))
	assert.NotNil(t, got.LookupFile("/lib64/b"))
}

func TestReplayUnusable(t *testing.T) {
	s := newStore(t)
	layers := testLayers(t)
	_, recs, _ := recordLayers(t, s, layers...)
	rec := recs[0]

	// A record naming a content object the store lost.
	s2 := newStore(t)
	tree2, _, _ := recordLayers(t, s2, layers[0])
	f := tree2.LookupFile("/etc/x")
	require.NotNil(t, f)
	require.NoError(t, os.Remove(s2.ObjectFile(f.Checksum, ostree.ObjFile)))

	var emptyRec bytes.Buffer
	rw, err := newRecordWriter(&emptyRec)
	require.NoError(t, err)
	require.NoError(t, rw.close(0))
	empty := emptyRec.Bytes()
	tests := []struct {
		name  string
		store *ostree.Store
		rec   []byte
		want  string
	}{
		{name: "truncated", store: s, rec: rec[:len(rec)/2], want: "unexpected EOF"},
		{name: "not gzip", store: s, rec: []byte("hello"), want: "unexpected EOF"},
		{name: "missing object", store: s2, rec: rec, want: "is not in the store"},
		{name: "empty record is fine", store: s, rec: empty},
		{name: "count mismatch", store: s, rec: withEnd(t, 3), want: "says 3"},
		{name: "wrong version", store: s, rec: rawRecord(t, "RCLR\x63\x7f\x00"), want: "version 99"},
		{name: "bad magic", store: s, rec: rawRecord(t, "XXXX\x01\x7f\x00"), want: "not a layer record"},
		{name: "path with dot-dot", store: s, rec: rawRecord(t, "RCLR\x02\x04\x05../ab\x7f\x01"), want: `path "../ab" is not clean`},
		{name: "path with a trailing slash", store: s, rec: rawRecord(t, "RCLR\x02\x04\x03ab/\x7f\x01"), want: `path "ab/" is not clean`},
		{name: "path with a double slash", store: s, rec: rawRecord(t, "RCLR\x02\x04\x04a//b\x7f\x01"), want: `path "a//b" is not clean`},
		{name: "absolute path", store: s, rec: rawRecord(t, "RCLR\x02\x04\x03/ab\x7f\x01"), want: `path "/ab" is not clean`},
		{name: "path not UTF-8", store: s, rec: rawRecord(t, "RCLR\x02\x04\x03a\xffb\x7f\x01"), want: "not valid UTF-8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tree := ostree.NewTree()
			tree.Root.Files["keep"] = &ostree.File{}
			_, err := Replay(context.Background(), tree, tc.store, bytes.NewReader(tc.rec), Options{})
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrRecordUnusable)
			assert.Contains(t, err.Error(), tc.want)
			assert.Len(t, tree.Root.Files, 1, "tree untouched")
			assert.Empty(t, tree.Root.Dirs, "tree untouched")
		})
	}
}

func withEnd(t *testing.T, n int) []byte {
	var b bytes.Buffer
	rw, err := newRecordWriter(&b)
	require.NoError(t, err)
	require.NoError(t, rw.close(n))
	return b.Bytes()
}

// rawRecord gzips hand-written record bytes.
func rawRecord(t *testing.T, body string) []byte {
	return gz(t, []byte(body))
}
