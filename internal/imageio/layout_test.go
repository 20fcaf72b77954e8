package imageio

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	imgspecs "github.com/opencontainers/image-spec/specs-go"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/require"
)

// The helpers in this file write OCI image layouts by hand, so that tests can state
// exactly what a manifest, a config or an index claims, lies included.

// testLayout is an OCI image layout under construction.
type testLayout struct {
	t   testing.TB
	dir string
}

func newLayout(t testing.TB) *testLayout {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644))
	return &testLayout{t: t, dir: dir}
}

// put stores b as a blob and returns its digest.
func (l *testLayout) put(b []byte) digest.Digest {
	d := digest.FromBytes(b)
	require.NoError(l.t, os.WriteFile(l.blobPath(d), b, 0o644))
	return d
}

func (l *testLayout) blobPath(d digest.Digest) string {
	return filepath.Join(l.dir, "blobs", d.Algorithm().String(), d.Encoded())
}

func (l *testLayout) putJSON(v any) (digest.Digest, int64) {
	b, err := json.Marshal(v)
	require.NoError(l.t, err)
	return l.put(b), int64(len(b))
}

// testImage describes one image of a layout.
type testImage struct {
	platform imgspecv1.Platform
	files    map[string]string // one gzipped layer holding these files
	edit     func(m *imgspecv1.Manifest, c *imgspecv1.Image)
}

// image writes img's layer, config and manifest and returns the manifest's descriptor.
func (l *testLayout) image(img testImage) imgspecv1.Descriptor {
	raw := tarOf(l.t, img.files)
	blob := gzipOf(l.t, raw)
	created := time.Unix(1700000000, 0).UTC()
	cfg := imgspecv1.Image{
		Created:  &created,
		Platform: img.platform,
		RootFS:   imgspecv1.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(raw)}},
	}
	m := imgspecv1.Manifest{
		Versioned: imgspecs.Versioned{SchemaVersion: 2},
		MediaType: imgspecv1.MediaTypeImageManifest,
		Layers:    []imgspecv1.Descriptor{{MediaType: imgspecv1.MediaTypeImageLayerGzip, Digest: l.put(blob), Size: int64(len(blob))}},
	}
	if img.edit != nil {
		img.edit(&m, &cfg)
	}
	cd, cn := l.putJSON(cfg)
	m.Config = imgspecv1.Descriptor{MediaType: imgspecv1.MediaTypeImageConfig, Digest: cd, Size: cn}
	md, mn := l.putJSON(m)
	p := img.platform
	return imgspecv1.Descriptor{MediaType: imgspecv1.MediaTypeImageManifest, Digest: md, Size: mn, Platform: &p}
}

// index writes an image index of the manifests and returns its descriptor.
func (l *testLayout) index(manifests ...imgspecv1.Descriptor) imgspecv1.Descriptor {
	idx := imgspecv1.Index{Versioned: imgspecs.Versioned{SchemaVersion: 2}, MediaType: imgspecv1.MediaTypeImageIndex, Manifests: manifests}
	d, n := l.putJSON(idx)
	return imgspecv1.Descriptor{MediaType: imgspecv1.MediaTypeImageIndex, Digest: d, Size: n}
}

// tag writes index.json naming top "latest" and returns the oci: reference.
func (l *testLayout) tag(top imgspecv1.Descriptor) string {
	top.Platform = nil
	top.Annotations = map[string]string{imgspecv1.AnnotationRefName: "latest"}
	b, err := json.Marshal(imgspecv1.Index{Versioned: imgspecs.Versioned{SchemaVersion: 2}, MediaType: imgspecv1.MediaTypeImageIndex,
		Manifests: []imgspecv1.Descriptor{top}})
	require.NoError(l.t, err)
	require.NoError(l.t, os.WriteFile(filepath.Join(l.dir, "index.json"), b, 0o644))
	return "oci:" + l.dir + ":latest"
}

// archive writes the layout as an OCI archive and returns its oci-archive: reference.
func (l *testLayout) archive() string {
	path := filepath.Join(l.t.TempDir(), "image.tar")
	f, err := os.Create(path)
	require.NoError(l.t, err)
	defer f.Close()
	tw := tar.NewWriter(f)
	require.NoError(l.t, tw.AddFS(os.DirFS(l.dir)))
	require.NoError(l.t, tw.Close())
	return "oci-archive:" + path + ":latest"
}

func tarOf(t testing.TB, files map[string]string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		body := files[name]
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body)),
			ModTime: time.Unix(1700000000, 0)}))
		_, err := io.WriteString(tw, body)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	return buf.Bytes()
}

func gzipOf(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(b)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}
