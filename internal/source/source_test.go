package source

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/ostree"
	"github.com/rechunker-dev/rechunker/ostree/layer"
)

func newStore(t testing.TB) *ostree.Store {
	s, err := ostree.OpenStore(t.TempDir())
	require.NoError(t, err)
	return s
}

func lsR(t testing.TB, tree *ostree.Tree) string {
	var b bytes.Buffer
	require.NoError(t, ostree.FormatLs(&b, tree, "/", true))
	return b.String()
}

var created = time.Date(2025, 3, 4, 5, 6, 7, 890_000_000, time.UTC)

func testImage(t testing.TB) ociImage {
	return ociImage{
		created:  &created,
		compress: []compressor{gzipped, zstded, xzed},
		layers: [][]byte{
			mkLayer(t,
				tarEntry{name: "./", typ: tar.TypeDir, mode: 0o755, uid: 5},
				tarEntry{name: "etc/", typ: tar.TypeDir},
				tarEntry{name: "etc/passwd", body: "root:x:0:0\n"},
				tarEntry{name: "usr/bin/sh", body: "#!sh", mode: 0o755},
				tarEntry{name: "sysroot/ostree/repo/config", body: "[core]\n"},
				tarEntry{name: "dev/null", typ: tar.TypeChar},
				tarEntry{name: "usr/share/doc/a", body: "a"},
			),
			mkLayer(t,
				tarEntry{name: "usr/bin/.wh.sh", body: ""},
				tarEntry{name: "usr/bin/bash", body: "#!bash", mode: 0o4755, xattrs: map[string]string{"user.component": "bash"}},
				tarEntry{name: "usr/bin/sh", typ: tar.TypeLink, link: "usr/bin/bash"},
				tarEntry{name: "etc/hosts", body: "127.0.0.1 localhost\n", uid: 3, gid: 4},
			),
			mkLayer(t,
				tarEntry{name: "usr/share/doc/", typ: tar.TypeDir, mode: 0o700},
				tarEntry{name: "usr/share/doc/.wh..wh..opq"},
				tarEntry{name: "usr/share/doc/b", body: "b"},
				tarEntry{name: "lib", typ: tar.TypeSymlink, link: "usr/lib"},
			),
		},
	}
}

// expectedTree applies the uncompressed layers directly and postprocesses the result.
func expectedTree(t testing.TB, s *ostree.Store, img ociImage) *ostree.Tree {
	tree := ostree.NewTree()
	for _, l := range img.layers {
		_, err := layer.Apply(context.Background(), tree, s, bytes.NewReader(l), layer.Options{})
		require.NoError(t, err)
	}
	require.NoError(t, Postprocess(tree))
	_, _, err := tree.Finalize(nil)
	require.NoError(t, err)
	return tree
}

func TestLoadImage(t *testing.T) {
	img := testImage(t)
	ref := writeOCI(t, t.TempDir(), img)
	s := newStore(t)
	var warns []string
	in, err := Load(context.Background(), ref, "", Options{Store: s, Warn: func(m string) { warns = append(warns, m) }})
	require.NoError(t, err)

	want := expectedTree(t, s, img)
	assert.Equal(t, lsR(t, want), lsR(t, in.Tree))
	assert.Equal(t, want.Root.TreeSum, in.Commit.RootTree)
	assert.Equal(t, want.Root.MetaSum, in.Commit.RootMeta)

	// rpm-ostree postprocessing
	assert.Nil(t, in.Tree.LookupDir("/etc"))
	assert.NotNil(t, in.Tree.LookupFile("/usr/etc/hosts"))
	sysroot := in.Tree.LookupDir("/sysroot")
	require.NotNil(t, sysroot)
	assert.Empty(t, sysroot.Dirs)
	assert.Equal(t, uint32(0), in.Tree.Root.Meta.UID, "root is owned by root")
	// the hardlink in layer 1 gets bash's File, setuid bit and xattr included
	sh, bash := in.Tree.LookupFile("/usr/bin/sh"), in.Tree.LookupFile("/usr/bin/bash")
	require.NotNil(t, sh)
	assert.Equal(t, bash.Checksum, sh.Checksum)
	assert.Equal(t, uint32(ostree.ModeRegular|0o4755), bash.Header.Mode)
	assert.Nil(t, in.Tree.LookupFile("/usr/share/doc/a"), "opaque directory hides the lower layer's file")

	// commit
	assert.Equal(t, created.Truncate(time.Second), in.Created)
	assert.Equal(t, uint64(created.Unix()), in.Commit.Timestamp)
	assert.Empty(t, in.Commit.Parent)
	assert.Empty(t, in.Commit.Subject)
	raw, err := s.ReadMetadata(ostree.ObjCommit, in.CommitSum)
	require.NoError(t, err)
	back, err := ostree.ParseCommit(raw)
	require.NoError(t, err)
	assert.Equal(t, in.Commit.RootTree, back.RootTree)
	assert.True(t, s.Has(in.Commit.RootTree, ostree.ObjDirTree))

	require.Len(t, in.Layers, 3)
	for i, l := range in.Layers {
		assert.False(t, l.Cached, "layer %d", i)
		assert.Equal(t, digest.FromBytes(img.layers[i]), l.DiffID)
	}
	assert.Equal(t, 1, in.Layers[1].Stats.Hardlinks)
	assert.Contains(t, warns, "skipping character device /dev/null: ostree cannot store it")
}

func TestLoadReplaysLayerRecords(t *testing.T) {
	img := testImage(t)
	dir := t.TempDir()
	ref := writeOCI(t, dir, img)
	s := newStore(t)
	first, err := Load(context.Background(), ref, "", Options{Store: s})
	require.NoError(t, err)

	// Remove the layer blobs: a second import must not need them.
	for _, l := range first.Layers {
		require.NoError(t, os.Remove(filepath.Join(dir, "blobs", "sha256", l.Digest.Encoded())))
	}
	var warns []string
	second, err := Load(context.Background(), ref, "", Options{Store: s, Warn: func(m string) { warns = append(warns, m) }})
	require.NoError(t, err)
	assert.Equal(t, first.CommitSum, second.CommitSum)
	assert.Equal(t, lsR(t, first.Tree), lsR(t, second.Tree))
	for i, l := range second.Layers {
		assert.True(t, l.Cached, "layer %d", i)
		assert.Equal(t, first.Layers[i].Stats, l.Stats, "layer %d", i)
	}
	assert.Contains(t, warns, "skipping character device /dev/null: ostree cannot store it", "warnings replay too")
}

func TestLoadFallsBackWhenRecordUnusable(t *testing.T) {
	img := testImage(t)
	ref := writeOCI(t, t.TempDir(), img)
	s := newStore(t)
	first, err := Load(context.Background(), ref, "", Options{Store: s})
	require.NoError(t, err)

	// Layer 1's content is gone from the store (e.g. pruned); layer 2's record is damaged.
	bash := first.Tree.LookupFile("/usr/bin/bash")
	require.NoError(t, os.Remove(s.ObjectFile(bash.Checksum, ostree.ObjFile)))
	rec2 := RecordPath(s, first.Layers[2].DiffID)
	require.NoError(t, os.WriteFile(rec2, []byte("garbage"), 0o644))

	var warns []string
	second, err := Load(context.Background(), ref, "", Options{Store: s, Warn: func(m string) { warns = append(warns, m) }})
	require.NoError(t, err)
	assert.Equal(t, first.CommitSum, second.CommitSum)
	assert.Equal(t, []bool{true, false, false}, []bool{second.Layers[0].Cached, second.Layers[1].Cached, second.Layers[2].Cached})
	assert.True(t, s.Has(bash.Checksum, ostree.ObjFile), "content rewritten from the blob")
	joined := strings.Join(warns, "\n")
	assert.Contains(t, joined, "is not in the store")
	assert.Contains(t, joined, "ignoring layer record")

	third, err := Load(context.Background(), ref, "", Options{Store: s})
	require.NoError(t, err)
	assert.Equal(t, []bool{true, true, true}, []bool{third.Layers[0].Cached, third.Layers[1].Cached, third.Layers[2].Cached}, "records rewritten")
}

func TestLoadNoCache(t *testing.T) {
	ref := writeOCI(t, t.TempDir(), testImage(t))
	s := newStore(t)
	for range 2 {
		in, err := Load(context.Background(), ref, "", Options{Store: s, NoCache: true})
		require.NoError(t, err)
		assert.False(t, in.Layers[0].Cached)
	}
	_, err := os.Stat(s.Path(layerCacheDir))
	assert.True(t, os.IsNotExist(err), "no records written")
}

func TestLoadErrors(t *testing.T) {
	good := mkLayer(t, tarEntry{name: "a", body: strings.Repeat("a", 3000)})
	tests := []struct {
		name    string
		img     ociImage
		corrupt func(t *testing.T, dir string, img ociImage)
		want    []string
	}{
		{
			name: "diff_id mismatch",
			img:  ociImage{layers: [][]byte{good}, diffIDs: []digest.Digest{digest.FromString("other")}},
			want: []string{"layer 0 diff_id mismatch"},
		},
		{
			name: "blob does not match its digest",
			img:  ociImage{layers: [][]byte{good}, compress: []compressor{plain}},
			corrupt: func(t *testing.T, dir string, img ociImage) {
				p := filepath.Join(dir, "blobs", "sha256", digest.FromBytes(good).Encoded())
				b, err := os.ReadFile(p)
				require.NoError(t, err)
				b[600] = 'b'
				require.NoError(t, os.WriteFile(p, b, 0o644))
			},
			want: []string{"layer 0", "mismatch"},
		},
		{
			name: "truncated gzip",
			img:  ociImage{layers: [][]byte{mkLayer(t, tarEntry{name: "x", body: "x"}), good}, compress: []compressor{gzipped, truncGzip}},
			want: []string{"import layer 1", "unexpected EOF"},
		},
		{
			name: "bad path in a layer",
			img:  ociImage{layers: [][]byte{mkLayer(t, tarEntry{name: "../x", body: "x"})}},
			want: []string{"import layer 0", `entry "../x"`, "escapes"},
		},
		{
			name: "both /etc and /usr/etc",
			img:  ociImage{layers: [][]byte{mkLayer(t, tarEntry{name: "etc/a", body: "a"}, tarEntry{name: "usr/etc/b", body: "b"})}},
			want: []string{"found both /etc and /usr/etc"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ref := writeOCI(t, dir, tc.img)
			if tc.corrupt != nil {
				tc.corrupt(t, dir, tc.img)
			}
			s := newStore(t)
			_, err := Load(context.Background(), ref, "", Options{Store: s})
			require.Error(t, err)
			t.Log(err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			recs, _ := os.ReadDir(s.Path(layerCacheDir))
			for _, r := range recs {
				// only layers that were fully verified may have a record
				assert.NotEqual(t, "sha256-"+digest.FromBytes(good).Encoded(), r.Name())
			}
			tmp, err := os.ReadDir(s.Path("tmp"))
			require.NoError(t, err)
			assert.Empty(t, tmp, "no temporary files left")
		})
	}
}

func truncGzip(t testing.TB, b []byte) ([]byte, string) {
	z, mt := gzipped(t, b)
	return z[:len(z)/2], mt
}

func TestLoadCreatedTime(t *testing.T) {
	img := ociImage{layers: [][]byte{mkLayer(t, tarEntry{name: "a", body: "a"})}}
	ref := writeOCI(t, t.TempDir(), img)

	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	in, err := Load(context.Background(), ref, "", Options{Store: newStore(t)})
	require.NoError(t, err)
	assert.Equal(t, uint64(1700000000), in.Commit.Timestamp)

	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	_, err = Load(context.Background(), ref, "", Options{Store: newStore(t)})
	require.ErrorContains(t, err, "SOURCE_DATE_EPOCH")

	os.Unsetenv("SOURCE_DATE_EPOCH")
	var warns []string
	before := time.Now().Unix()
	in, err = Load(context.Background(), ref, "", Options{Store: newStore(t), Warn: func(m string) { warns = append(warns, m) }})
	require.NoError(t, err)
	assert.GreaterOrEqual(t, int64(in.Commit.Timestamp), before)
	assert.Len(t, warns, 1)
}

func TestLoadRootfs(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "etc"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "usr", "bin"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "sysroot", "ostree"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "etc", "os-release"), []byte("ID=test\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "usr", "bin", "true"), []byte("true"), 0o755))
	mtime := time.Date(2024, 1, 2, 3, 4, 5, 600, time.UTC)
	require.NoError(t, os.Chtimes(dir, mtime, mtime))

	in, err := Load(context.Background(), "", dir, Options{Store: newStore(t)})
	require.NoError(t, err)
	assert.Equal(t, mtime.Truncate(time.Second), in.Created)
	assert.Equal(t, uint64(mtime.Unix()), in.Commit.Timestamp)
	assert.Equal(t, runtime.GOARCH, in.Config.Architecture)
	assert.Equal(t, "linux", in.Config.OS)
	assert.NotNil(t, in.Tree.LookupFile("/usr/etc/os-release"))
	assert.Empty(t, in.Tree.LookupDir("/sysroot").Dirs)
	assert.Empty(t, in.Layers)
}

func TestLoadArguments(t *testing.T) {
	s := newStore(t)
	_, err := Load(context.Background(), "", "", Options{Store: s})
	require.ErrorContains(t, err, "exactly one")
	_, err = Load(context.Background(), "oci:x", "/", Options{Store: s})
	require.ErrorContains(t, err, "exactly one")
	_, err = Load(context.Background(), "oci:x", "", Options{})
	require.ErrorContains(t, err, "no store")
	_, err = Load(context.Background(), "", filepath.Join(t.TempDir(), "missing"), Options{Store: s})
	require.ErrorContains(t, err, "no such file")
}

func TestPostprocess(t *testing.T) {
	dm := func(mode uint32) ostree.DirMeta { return ostree.DirMeta{Mode: ostree.ModeDir | mode} }
	f := &ostree.File{Header: &ostree.FileHeader{Mode: ostree.ModeRegular | 0o644}}
	tests := []struct {
		name    string
		build   func(r *ostree.Dir)
		check   func(t *testing.T, tr *ostree.Tree)
		wantErr string
	}{
		{
			name: "etc moves to usr/etc with its metadata",
			build: func(r *ostree.Dir) {
				etc := ostree.NewDir(dm(0o750))
				etc.Files["passwd"] = f
				r.Dirs["etc"] = etc
				r.Dirs["usr"] = ostree.NewDir(dm(0o755))
			},
			check: func(t *testing.T, tr *ostree.Tree) {
				assert.Nil(t, tr.LookupDir("/etc"))
				require.NotNil(t, tr.LookupDir("/usr/etc"))
				assert.Equal(t, dm(0o750), tr.LookupDir("/usr/etc").Meta)
				assert.NotNil(t, tr.LookupFile("/usr/etc/passwd"))
			},
		},
		{
			name: "usr/etc alone is kept",
			build: func(r *ostree.Dir) {
				r.Dirs["usr"] = ostree.NewDir(dm(0o755))
				r.Dirs["usr"].Dirs["etc"] = ostree.NewDir(dm(0o755))
			},
			check: func(t *testing.T, tr *ostree.Tree) { assert.NotNil(t, tr.LookupDir("/usr/etc")) },
		},
		{
			name:  "neither is fine",
			build: func(r *ostree.Dir) {},
			check: func(t *testing.T, tr *ostree.Tree) { assert.Nil(t, tr.LookupDir("/usr/etc")) },
		},
		{
			name: "both is an error",
			build: func(r *ostree.Dir) {
				r.Dirs["etc"] = ostree.NewDir(dm(0o755))
				r.Dirs["usr"] = ostree.NewDir(dm(0o755))
				r.Dirs["usr"].Dirs["etc"] = ostree.NewDir(dm(0o755))
			},
			wantErr: "found both /etc and /usr/etc",
		},
		{
			name: "sysroot is emptied but kept",
			build: func(r *ostree.Dir) {
				s := ostree.NewDir(dm(0o700))
				s.Dirs["ostree"] = ostree.NewDir(dm(0o755))
				s.Files["x"] = f
				r.Dirs["sysroot"] = s
			},
			check: func(t *testing.T, tr *ostree.Tree) {
				s := tr.LookupDir("/sysroot")
				require.NotNil(t, s)
				assert.Empty(t, s.Dirs)
				assert.Empty(t, s.Files)
				assert.Equal(t, dm(0o700), s.Meta)
			},
		},
		{
			name: "root metadata: owned by root, only the SELinux label kept",
			build: func(r *ostree.Dir) {
				r.Meta = ostree.DirMeta{UID: 1000, GID: 1000, Mode: ostree.ModeDir | 0o555,
					Xattrs: ostree.Xattrs{{Name: "security.selinux", Value: []byte("root_t")}, {Name: "user.x", Value: []byte("1")}}}
			},
			check: func(t *testing.T, tr *ostree.Tree) {
				assert.Equal(t, ostree.DirMeta{Mode: ostree.ModeDir | 0o555, Xattrs: ostree.Xattrs{{Name: "security.selinux", Value: []byte("root_t")}}}, tr.Root.Meta)
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := ostree.NewTree()
			tc.build(tr.Root)
			err := Postprocess(tr)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			tc.check(t, tr)
		})
	}
}
