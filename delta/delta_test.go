package delta

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	imgspecs "github.com/opencontainers/image-spec/specs-go"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/internal/imageio"
)

type file struct{ name, body string }

// noise returns n bytes that do not compress, from a fixed seed.
func noise(seed uint64, n int) string {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return string(b)
}

// edit returns s with a few bytes changed, like a rebuilt library.
func edit(s string) string {
	b := []byte(s)
	for i := 100; i < len(b); i += len(b) / 7 {
		b[i] ^= 0xff
	}
	return string(b)
}

func layerTar(t testing.TB, files []file) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, f := range files {
		if d := filepath.Dir(f.name); !dirs[d] {
			dirs[d] = true
			require.NoError(t, tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(1, 0)}))
		}
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: 0o644,
			Size: int64(len(f.body)), ModTime: time.Unix(1, 0)}))
		_, err := tw.Write([]byte(f.body))
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	return buf.Bytes()
}

// writeImage writes an OCI layout with one gzip layer per file list; it returns the
// oci: reference.
func writeImage(t testing.TB, dir string, layers ...[]file) string {
	blobs := filepath.Join(dir, "blobs", "sha256")
	require.NoError(t, os.MkdirAll(blobs, 0o755))
	put := func(b []byte) imgspecv1.Descriptor {
		d := digest.FromBytes(b)
		require.NoError(t, os.WriteFile(filepath.Join(blobs, d.Encoded()), b, 0o644))
		return imgspecv1.Descriptor{Digest: d, Size: int64(len(b))}
	}
	cfg := imgspecv1.Image{Platform: imgspecv1.Platform{Architecture: runtime.GOARCH, OS: "linux"},
		RootFS: imgspecv1.RootFS{Type: "layers"}}
	m := imgspecv1.Manifest{Versioned: imgspecs.Versioned{SchemaVersion: 2}, MediaType: imgspecv1.MediaTypeImageManifest}
	for _, files := range layers {
		raw := layerTar(t, files)
		blob, media := compress(t, raw, strings.HasPrefix(files[0].name, "zstd/"))
		d := put(blob)
		d.MediaType = media
		m.Layers = append(m.Layers, d)
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromBytes(raw))
	}
	cb, err := json.Marshal(cfg)
	require.NoError(t, err)
	m.Config = put(cb)
	m.Config.MediaType = imgspecv1.MediaTypeImageConfig
	mb, err := json.Marshal(m)
	require.NoError(t, err)
	md := put(mb)
	md.MediaType = imgspecv1.MediaTypeImageManifest
	md.Annotations = map[string]string{imgspecv1.AnnotationRefName: "latest"}
	ib, err := json.Marshal(imgspecv1.Index{Versioned: imgspecs.Versioned{SchemaVersion: 2}, Manifests: []imgspecv1.Descriptor{md}})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "index.json"), ib, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(ociLayout), 0o644))
	return "oci:" + dir + ":latest"
}

// compress compresses a layer with gzip, or with zstd at its best level (a layer
// whose file names start with zstd/: a blob no tar-diff beats).
func compress(t testing.TB, raw []byte, best bool) ([]byte, string) {
	var buf bytes.Buffer
	if best {
		zw, err := zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
		require.NoError(t, err)
		_, err = zw.Write(raw)
		require.NoError(t, err)
		require.NoError(t, zw.Close())
		return buf.Bytes(), imgspecv1.MediaTypeImageLayerZstd
	}
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(raw)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes(), imgspecv1.MediaTypeImageLayerGzip
}

// words returns n words of text from a fixed seed: compresses well, better at
// higher levels.
func words(seed uint64, n int) string {
	r := rand.New(rand.NewPCG(seed, seed))
	vocab := strings.Fields("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau upsilon phi chi psi omega")
	var b strings.Builder
	for range n {
		b.WriteString(vocab[r.IntN(len(vocab))])
		b.WriteByte(" \n"[r.IntN(2)])
	}
	return b.String()
}

// writeRoot writes the files of all layers (later layers win) as an unpacked root.
func writeRoot(t testing.TB, dir string, layers ...[]file) {
	for _, files := range layers {
		for _, f := range files {
			p := filepath.Join(dir, f.name)
			require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
			require.NoError(t, os.WriteFile(p, []byte(f.body), 0o644))
		}
	}
}

func diffIDs(t testing.TB, ref string) []digest.Digest {
	src, err := imageio.Open(context.Background(), ref, imageio.Options{})
	require.NoError(t, err)
	defer src.Close()
	return src.Config.RootFS.DiffIDs
}

// pair is a source and target image: a shared base layer (reused), a library layer
// the target changes a little (a delta), and a layer of new noise (shipped whole).
type pair struct {
	old, new, root string
	oldLayers      [][]file
}

func makePair(t testing.TB) pair {
	dir := t.TempDir()
	base := []file{{"etc/os-release", "ID=test\nVERSION=1\n"}, {"usr/bin/tool", "#!/bin/sh\necho tool\n"}}
	lib := []file{{"usr/lib/libbig.so", noise(1, 256<<10)}, {"usr/share/doc/big", strings.Repeat("doc ", 5000)}}
	newLib := []file{{"usr/lib/libbig.so", edit(lib[0].body)}, lib[1]}
	fresh := []file{{"zstd/fresh.txt", words(2, 50000)}}
	p := pair{
		old:       writeImage(t, filepath.Join(dir, "old"), base, lib),
		new:       writeImage(t, filepath.Join(dir, "new"), base, newLib, fresh),
		root:      filepath.Join(dir, "root"),
		oldLayers: [][]file{base, lib},
	}
	writeRoot(t, p.root, p.oldLayers...)
	return p
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	p := makePair(t)
	out := t.TempDir()
	df := filepath.Join(out, "delta.tar")
	sum, err := Create(ctx, p.old, p.new, df, Options{})
	require.NoError(t, err)
	kinds := []string{}
	for _, l := range sum.Layers {
		kinds = append(kinds, l.Kind)
	}
	assert.Equal(t, []string{KindReused, KindDelta, KindFull}, kinds)
	assert.Less(t, sum.Layers[1].Bytes, sum.Layers[1].Size/10, "a small edit makes a small delta")

	a := parseFile(t, df)
	assert.Len(t, a.Reused, 1)
	assert.True(t, a.Reused[sum.Layers[0].Digest])
	_, shipped := a.Layers[sum.Layers[0].Digest]
	assert.False(t, shipped, "a reused layer is not in the delta")

	img := filepath.Join(out, "img.tar")
	require.NoError(t, Apply(ctx, df, p.root, "oci-archive:"+img, ApplyOptions{Source: p.old}))
	assert.Equal(t, diffIDs(t, p.new), diffIDs(t, "oci-archive:"+img))
	assertOnly(t, out, "delta.tar", "img.tar")
}

func parseFile(t testing.TB, path string) *Artifact {
	f, err := os.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	fi, err := f.Stat()
	require.NoError(t, err)
	a, err := ParseArtifact(f, fi.Size())
	require.NoError(t, err)
	return a
}

// assertOnly checks that dir holds exactly names: no temporary files are left.
func assertOnly(t testing.TB, dir string, names ...string) {
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	assert.ElementsMatch(t, names, got)
}

// blobOffset returns where the blob rebuilding target layer i starts in the delta file.
func blobOffset(t testing.TB, df string, target digest.Digest) (int64, int64) {
	a := parseFile(t, df)
	d, ok := a.Layers[target]
	require.True(t, ok)
	_, off, n := a.blobs[d.Digest].Outer()
	return off, n
}

func TestApplyRefuses(t *testing.T) {
	ctx := context.Background()
	p := makePair(t)
	master := filepath.Join(t.TempDir(), "delta.tar")
	sum, err := Create(ctx, p.old, p.new, master, Options{})
	require.NoError(t, err)
	layer := func(i int) string {
		return "target layer " + string(rune('0'+i)) + " (" + sum.Layers[i].Digest.String() + ")"
	}
	for _, tc := range []struct {
		name    string
		breakIt func(t *testing.T, df, root string, o *ApplyOptions)
		want    []string
	}{
		{"corrupted delta", func(t *testing.T, df, _ string, _ *ApplyOptions) {
			off, n := blobOffset(t, df, sum.Layers[1].Digest)
			f, err := os.OpenFile(df, os.O_RDWR, 0)
			require.NoError(t, err)
			defer f.Close()
			_, err = f.WriteAt([]byte("garbage"), off+n/2)
			require.NoError(t, err)
		}, []string{layer(1), "corrupted delta"}},
		{"truncated delta", func(t *testing.T, df, _ string, _ *ApplyOptions) {
			off, n := blobOffset(t, df, sum.Layers[2].Digest)
			require.NoError(t, os.Truncate(df, off+n/2))
		}, []string{layer(2), "truncated"}},
		{"another source root", func(t *testing.T, _, root string, _ *ApplyOptions) {
			p := filepath.Join(root, "usr/lib/libbig.so")
			require.NoError(t, os.WriteFile(p, []byte(noise(9, 256<<10)), 0o644))
		}, []string{layer(1), "diff_id"}},
		{"missing source file", func(t *testing.T, _, root string, _ *ApplyOptions) {
			require.NoError(t, os.Remove(filepath.Join(root, "usr/lib/libbig.so")))
		}, []string{layer(1), "usr/lib/libbig.so"}},
		{"another source image", func(_ *testing.T, _, _ string, o *ApplyOptions) {
			o.Source = p.new
		}, []string{"made for source image", sum.Source.String()}},
		{"reused layers without the source image", func(_ *testing.T, _, _ string, o *ApplyOptions) {
			o.Source = ""
		}, []string{layer(0), "--source"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			df := filepath.Join(out, "delta.tar")
			data, err := os.ReadFile(master)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(df, data, 0o644))
			root := filepath.Join(t.TempDir(), "root")
			writeRoot(t, root, p.oldLayers...)
			o := ApplyOptions{Source: p.old}
			tc.breakIt(t, df, root, &o)
			err = Apply(ctx, df, root, "oci-archive:"+filepath.Join(out, "img.tar"), o)
			require.Error(t, err)
			t.Log(err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			assertOnly(t, out, "delta.tar")
		})
	}
}

// TestApplyFromRepo reads the source's ostree objects from a repository standing in for
// the root's sysroot/ostree/repo, as on a booted host; files outside it need a root.
func TestApplyFromRepo(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	obj := noise(3, 128<<10)
	objects := []file{{"sysroot/ostree/repo/objects/ab/cdef.file", obj}}
	plain := []file{{"usr/share/x", noise(4, 128<<10)}}
	old := writeImage(t, filepath.Join(dir, "old"), objects, plain)
	tgt := writeImage(t, filepath.Join(dir, "new"),
		[]file{{"sysroot/ostree/repo/objects/12/3456.file", edit(obj)}}, []file{{"usr/share/x", edit(plain[0].body)}})
	df := filepath.Join(dir, "delta.tar")
	_, err := Create(ctx, old, tgt, df, Options{})
	require.NoError(t, err)
	objOnly := filepath.Join(dir, "objects.tar")
	_, err = Create(ctx, old, tgt, objOnly, Options{SourcePrefixes: []string{ObjectsPrefix}})
	require.NoError(t, err)
	repo := filepath.Join(dir, "repo")
	writeRoot(t, repo, []file{{"objects/ab/cdef.file", obj}})
	root := filepath.Join(dir, "root")
	writeRoot(t, root, plain)

	out := filepath.Join(dir, "img.tar")
	err = Apply(ctx, df, "", out, ApplyOptions{Repo: repo})
	require.ErrorContains(t, err, "source file usr/share/x: not an ostree object, and no source root was given")
	assert.NoFileExists(t, out)
	require.NoError(t, Apply(ctx, df, root, out, ApplyOptions{Repo: repo}))
	assert.Equal(t, diffIDs(t, tgt), diffIDs(t, "oci-archive:"+out))
	require.NoError(t, os.Remove(out))
	require.NoError(t, Apply(ctx, objOnly, "", out, ApplyOptions{Repo: repo}), "a delta reading objects only needs no root")
	assert.Equal(t, diffIDs(t, tgt), diffIDs(t, "oci-archive:"+out))
}

func TestCreateEdges(t *testing.T) {
	ctx := context.Background()
	p := makePair(t)
	t.Run("missing target leaves nothing", func(t *testing.T) {
		out := t.TempDir()
		_, err := Create(ctx, p.old, "oci:"+filepath.Join(out, "missing")+":latest", filepath.Join(out, "d.tar"), Options{})
		require.ErrorContains(t, err, "opening target image")
		assertOnly(t, out)
	})
	t.Run("same image: every layer reused", func(t *testing.T) {
		out := t.TempDir()
		df := filepath.Join(out, "d.tar")
		sum, err := Create(ctx, p.old, p.old, df, Options{})
		require.NoError(t, err)
		assert.Zero(t, sum.FetchBytes)
		for _, l := range sum.Layers {
			assert.Equal(t, KindReused, l.Kind)
		}
		img := filepath.Join(out, "img.tar")
		require.NoError(t, Apply(ctx, df, p.root, img, ApplyOptions{Source: p.old}))
		assert.Equal(t, diffIDs(t, p.old), diffIDs(t, "oci-archive:"+img))
	})
}
