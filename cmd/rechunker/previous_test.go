package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/exporter"
)

// previousRootfs is a tree that plans into several chunk layers: three big files (a
// component each) beside small ones.
func previousRootfs(t *testing.T) string {
	rootfs := buildRootfs(t)
	for _, name := range []string{"a", "b", "c"} {
		b := make([]byte, 3<<19)
		_, err := rand.Read(b)
		require.NoError(t, err)
		p := filepath.Join(rootfs, "usr/share/blobs", name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, b, 0o644))
	}
	return rootfs
}

// readLayoutJSON reads blob d of an OCI layout into v.
func readLayoutJSON(t *testing.T, dir string, d digest.Digest, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", d.Encoded()))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, v))
}

// writeLayoutJSON stores v as a blob of an OCI layout and returns its descriptor.
func writeLayoutJSON(t *testing.T, dir, mediaType string, v any) imgspecv1.Descriptor {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	d := digest.FromBytes(b)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "blobs", "sha256", d.Encoded()), b, 0o644))
	return imgspecv1.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b))}
}

// layoutImage returns the manifest and config of the only image in an OCI layout.
func layoutImage(t *testing.T, dir string) (imgspecv1.Manifest, imgspecv1.Image) {
	t.Helper()
	var idx imgspecv1.Index
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &idx))
	require.Len(t, idx.Manifests, 1)
	var m imgspecv1.Manifest
	var c imgspecv1.Image
	readLayoutJSON(t, dir, idx.Manifests[0].Digest, &m)
	readLayoutJSON(t, dir, m.Config.Digest, &c)
	return m, c
}

// lyingCopy copies the only image of OCI layout src into a new layout whose manifest
// and config lie is allowed to edit (the blobs are shared by hardlink).
func lyingCopy(t *testing.T, src string, lie func(*imgspecv1.Manifest, *imgspecv1.Image)) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "lying")
	require.NoError(t, os.MkdirAll(filepath.Join(dst, "blobs", "sha256"), 0o755))
	ents, err := os.ReadDir(filepath.Join(src, "blobs", "sha256"))
	require.NoError(t, err)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, "blobs", "sha256", e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dst, "blobs", "sha256", e.Name()), b, 0o644))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dst, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644))
	m, c := layoutImage(t, src)
	lie(&m, &c)
	m.Config = writeLayoutJSON(t, dst, imgspecv1.MediaTypeImageConfig, c)
	md := writeLayoutJSON(t, dst, imgspecv1.MediaTypeImageManifest, m)
	md.Annotations = map[string]string{imgspecv1.AnnotationRefName: "latest"}
	idx := imgspecv1.Index{Manifests: []imgspecv1.Descriptor{md}, MediaType: imgspecv1.MediaTypeImageIndex}
	idx.SchemaVersion = 2
	b, err := json.Marshal(idx)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dst, "index.json"), b, 0o644))
	return dst
}

// TestPreviousBuildThatLies: previous builds made by editing a real chunked image's
// manifest and config. Whatever they claim, the build succeeds with the layers an honest
// previous build gives (so the image passes verify and holds the input's files), and a
// lie that would have been reused is reported, naming the layer.
func TestPreviousBuildThatLies(t *testing.T) {
	rootfs := previousRootfs(t)
	prevDir := filepath.Join(t.TempDir(), "prev")
	out, err := runCLI(t, "build", "--bootc", "--quiet", "--store", t.TempDir(), "--rootfs", rootfs, "--output", "oci:"+prevDir+":latest")
	require.NoError(t, err, out)
	m, _ := layoutImage(t, prevDir)
	require.GreaterOrEqual(t, len(m.Layers), 4, "commit layer and at least three chunks")
	require.NoError(t, os.WriteFile(filepath.Join(rootfs, "etc/os-release"), []byte("ID=test\nVERSION=2\n"), 0o644))

	build := func(t *testing.T, prev string) (string, []digest.Digest, error) {
		dir := filepath.Join(t.TempDir(), "out")
		r := runBin(t, t.TempDir(), "build", "--bootc", "--quiet", "--store", t.TempDir(), "--rootfs", rootfs,
			"--output", "oci:"+dir+":latest", "--previous-build", "oci:"+prev+":latest")
		if r.code != 0 {
			assert.NoDirExists(t, dir, "no output after a failed build")
			return r.stderr, nil, fmt.Errorf("exit %d", r.code)
		}
		out := r.stderr
		_, c := layoutImage(t, dir)
		vout, verr := runCLI(t, "verify", "oci:"+dir+":latest")
		require.NoError(t, verr, vout)
		return out, c.RootFS.DiffIDs, nil
	}
	out, honest, err := build(t, prevDir)
	require.NoError(t, err, out)
	assert.NotContains(t, out, "warning", "an honest previous build")

	swapKeys := func(m *imgspecv1.Manifest, _ *imgspecv1.Image) {
		a, b := m.Layers[1].Annotations[exporter.AnnLayerKey], m.Layers[2].Annotations[exporter.AnnLayerKey]
		m.Layers[1].Annotations[exporter.AnnLayerKey], m.Layers[2].Annotations[exporter.AnnLayerKey] = b, a
	}
	swapDiffIDs := func(_ *imgspecv1.Manifest, c *imgspecv1.Image) {
		c.RootFS.DiffIDs[1], c.RootFS.DiffIDs[2] = c.RootFS.DiffIDs[2], c.RootFS.DiffIDs[1]
	}
	keyNamesOther := func(m *imgspecv1.Manifest, _ *imgspecv1.Image) {
		m.Layers[1].Annotations[exporter.AnnLayerKey] = m.Layers[2].Annotations[exporter.AnnLayerKey]
	}
	cases := []struct {
		name string
		lie  func(*imgspecv1.Manifest, *imgspecv1.Image)
		warn string // in the build's output; "" for none
		fail string // the build must fail with this message
	}{
		{"layer key names another layer's content", keyNamesOther, "layer-key annotation claims diff_id", ""},
		{"layer keys swapped", swapKeys, "layer-key annotation claims diff_id", ""},
		{"diff_ids swapped", swapDiffIDs, "not reusing", ""},
		{"descriptor sizes 0", func(m *imgspecv1.Manifest, _ *imgspecv1.Image) {
			for i := range m.Layers {
				m.Layers[i].Size = 0
			}
		}, "", "layer 0 (sha256:"},
		{"descriptor sizes too large", func(m *imgspecv1.Manifest, _ *imgspecv1.Image) {
			for i := range m.Layers {
				m.Layers[i].Size += 100
			}
		}, "the manifest declares", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, diffIDs, err := build(t, lyingCopy(t, prevDir, c.lie))
			if c.fail != "" {
				require.Error(t, err)
				assert.Contains(t, out, c.fail)
				return
			}
			require.NoError(t, err, out)
			assert.Equal(t, honest, diffIDs, "the layers an honest previous build gives")
			if c.warn != "" {
				assert.Contains(t, out, c.warn)
				assert.Regexp(t, `layer [0-9]+ \(`, out, "the warning names the layer")
			}
		})
	}
}
