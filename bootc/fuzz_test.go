package bootc

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/bootc/bootctest"
)

// uncompressedLayers returns the tar bytes of every layer of b.
func uncompressedLayers(t testing.TB, b *bootctest.Built) [][]byte {
	var out [][]byte
	for _, l := range b.Manifest.Layers {
		f, err := os.Open(filepath.Join(b.Dir, "blobs", "sha256", l.Digest.Encoded()))
		require.NoError(t, err)
		zr, err := gzip.NewReader(f)
		require.NoError(t, err)
		raw, err := io.ReadAll(zr)
		require.NoError(t, err)
		f.Close()
		out = append(out, raw)
	}
	return out
}

// FuzzVerifyLayer replaces one layer of a valid chunked image (the commit layer, a chunk
// layer, or a derived layer appended on top) with arbitrary bytes whose digests the
// manifest and config agree with, so that the tar reaches the layer checkers. Verify,
// Inspect (which reads bound images) and Diff must report, never fail or panic.
// About 10 executions per second: run with -fuzzminimizetime 3s.
func FuzzVerifyLayer(f *testing.F) {
	img := bootctest.Base()
	img.Files = append(img.Files,
		bootctest.File{Path: "/usr/share/containers/systemd/db.image", Data: "[Image]\nImage=quay.io/x/db:1\n", Chunk: 3},
		bootctest.File{Path: BoundImagesDir + "/db.image", Target: "/usr/share/containers/systemd/db.image", Chunk: 3})
	base := img.Build(f)
	layers := uncompressedLayers(f, base)
	for i, l := range layers {
		f.Add(l, uint8(i), i == 1)
	}
	f.Add(tarOf(f,
		tarEnt{hdr: bootctest.Hdr("etc/x", tar.TypeReg, 0o644, 0), data: "x"},
		tarEnt{hdr: tar.Header{Name: "usr/lib/evil", Typeflag: tar.TypeLink, Linkname: "../../../etc/shadow"}},
		tarEnt{hdr: bootctest.Hdr("usr/bin/.wh.bash", tar.TypeReg, 0o644, 0)},
		tarEnt{hdr: tar.Header{Name: "usr/lib/bootc/bound-images.d/x.container", Typeflag: tar.TypeSymlink, Linkname: "x.container"}},
	), uint8(len(layers)), false)
	f.Add([]byte("not a tar"), uint8(2), true)

	f.Fuzz(func(t *testing.T, data []byte, slot uint8, compress bool) {
		k := int(slot) % (len(layers) + 1)
		dir := t.TempDir()
		for _, l := range base.Manifest.Layers {
			p := filepath.Join("blobs", "sha256", l.Digest.Encoded())
			require.NoError(t, os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755))
			require.NoError(t, os.Link(filepath.Join(base.Dir, p), filepath.Join(dir, p)))
		}
		blob, mt := data, imgspecv1.MediaTypeImageLayer
		if compress {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			zw.Write(data)
			zw.Close()
			blob, mt = buf.Bytes(), imgspecv1.MediaTypeImageLayerGzip
		}
		d := digest.FromBytes(blob)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "blobs", "sha256", d.Encoded()), blob, 0o644))
		m := base.Manifest
		m.Layers = append([]imgspecv1.Descriptor(nil), m.Layers...)
		cfg := base.Config
		cfg.RootFS.DiffIDs = append([]digest.Digest(nil), cfg.RootFS.DiffIDs...)
		cfg.History = append([]imgspecv1.History(nil), cfg.History...)
		labels := map[string]string{}
		for k, v := range cfg.Config.Labels {
			labels[k] = v
		}
		cfg.Config.Labels = labels
		desc := imgspecv1.Descriptor{MediaType: mt, Digest: d, Size: int64(len(blob))}
		diffID := digest.FromBytes(data)
		if k == len(layers) {
			m.Layers = append(m.Layers, desc)
			cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, diffID)
			cfg.History = append(cfg.History, imgspecv1.History{CreatedBy: "RUN fuzz"})
		} else {
			desc.Annotations = m.Layers[k].Annotations
			if cfg.Config.Labels[LabelFinalDiffID] == cfg.RootFS.DiffIDs[k].String() {
				cfg.Config.Labels[LabelFinalDiffID] = diffID.String()
			}
			m.Layers[k] = desc
			cfg.RootFS.DiffIDs[k] = diffID
		}
		b := bootctest.WriteLayout(t, dir, nil, m, cfg)
		src := bootctest.Open(t, b.Ref)
		ctx := context.Background()

		r, err := Verify(ctx, src, Options{TempDir: t.TempDir()})
		require.NoError(t, err)
		require.Equal(t, r.Failure == nil, r.OK)
		if r.Failure != nil {
			require.NotEmpty(t, r.Failure.Message)
		}
		_, err = json.Marshal(r)
		require.NoError(t, err)

		// Bound images need the whole tree: an image verify refuses may be an error,
		// naming the same problem.
		ir, err := Inspect(ctx, src, InspectOptions{BoundImages: true, Verify: Options{TempDir: t.TempDir()}})
		if err != nil {
			require.False(t, r.OK, "inspect failed (%v) on an image verify accepts", err)
			require.ErrorContains(t, err, r.Failure.Message)
		} else {
			_, err = json.Marshal(ir)
			require.NoError(t, err)
		}

		dr := Diff(ctx, bootctest.Open(t, base.Ref), src, DiffOptions{})
		require.LessOrEqual(t, dr.LayersFetched, dr.LayersTotal)

		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		for _, e := range entries {
			require.Contains(t, []string{"blobs", "index.json", "oci-layout"}, e.Name(), "verify writes nothing into the image")
		}
	})
}

type tarEnt struct {
	hdr  tar.Header
	data string
}

func tarOf(t testing.TB, es ...tarEnt) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := e.hdr
		h.Size = int64(len(e.data))
		require.NoError(t, tw.WriteHeader(&h))
		_, err := tw.Write([]byte(e.data))
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	return buf.Bytes()
}

// FuzzQuadletImage parses arbitrary unit files as bound-image quadlets.
func FuzzQuadletImage(f *testing.F) {
	f.Add([]byte("[Image]\nImage=quay.io/x/y:1\n"), true)
	f.Add([]byte("[Container]\nImage=a\\\n  b\nImage=\n[Unit]\n"), false)
	f.Add([]byte("[Image\nImage=x"), true)
	f.Fuzz(func(t *testing.T, data []byte, isImage bool) {
		img, err := unitImage(data, isImage)
		if err == nil {
			require.NotEmpty(t, img)
		}
	})
}

// FuzzPlanLabel decodes arbitrary dev.rechunker.plan labels (raw, or the fuzzed bytes
// gzipped and base64-encoded, as rechunker writes them).
func FuzzPlanLabel(f *testing.F) {
	f.Add([]byte(`{"v":1,"n":2,"r":[2],"c":[{"n":"a","l":1,"p":{"/x":2},"h":1,"s":1}]}`), true)
	f.Add([]byte(`{"layers":[{"digest":"sha256:`+strings.Repeat("a", 64)+`","components":"a,b"}]}`), false)
	f.Add([]byte(`{"v":1,"c":[{"l":-1e300,"h":1e300,"s":1}]}`), true)
	f.Fuzz(func(t *testing.T, data []byte, wrap bool) {
		label := string(data)
		if wrap {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			zw.Write(data)
			zw.Close()
			label = base64.StdEncoding.EncodeToString(buf.Bytes())
		}
		p := ParsePlanLabel(label)
		if label == "" {
			require.Nil(t, p)
			return
		}
		require.NotNil(t, p)
		require.NotEmpty(t, p.Summary)
		for i := range p.byIndex {
			require.GreaterOrEqual(t, i, 0)
		}
	})
}

// TestPlanLabelBomb: a label decompressing to much more than maxPlanLabel is refused
// without inflating it all.
func TestPlanLabelBomb(t *testing.T) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	require.NoError(t, err)
	zw.Write([]byte("["))
	chunk := bytes.Repeat([]byte("0,"), 1<<19)
	for i := 0; i < 256; i++ { // 256 MiB of JSON numbers
		_, err := zw.Write(chunk)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	label := base64.StdEncoding.EncodeToString(buf.Bytes())
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	p := ParsePlanLabel(label)
	runtime.ReadMemStats(&after)
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(32<<20), "memory spent on the bomb")
	require.False(t, p.Parsed)
	require.Contains(t, p.Summary, "decompresses to more than")
}
