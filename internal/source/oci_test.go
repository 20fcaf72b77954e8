package source

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/require"
	"github.com/ulikunitz/xz"
)

// tarEntry is one entry of a test layer.
type tarEntry struct {
	name, body, link string
	typ              byte
	mode             int64
	uid, gid         int
	xattrs           map[string]string
}

func mkLayer(t testing.TB, ents ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, Uid: e.uid, Gid: e.gid, Format: tar.FormatPAX}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.body))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		for k, v := range e.xattrs {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		require.NoError(t, tw.WriteHeader(h))
		_, err := io.WriteString(tw, e.body)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	return buf.Bytes()
}

type compressor func(testing.TB, []byte) ([]byte, string)

func gzipped(t testing.TB, b []byte) ([]byte, string) {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, err := w.Write(b)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return buf.Bytes(), imgspecv1.MediaTypeImageLayerGzip
}

func zstded(t testing.TB, b []byte) ([]byte, string) {
	w, err := zstd.NewWriter(nil)
	require.NoError(t, err)
	return w.EncodeAll(b, nil), imgspecv1.MediaTypeImageLayerZstd
}

func xzed(t testing.TB, b []byte) ([]byte, string) {
	var buf bytes.Buffer
	w, err := xz.NewWriter(&buf)
	require.NoError(t, err)
	_, err = w.Write(b)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	// Not an OCI media type; containers/image detects the compression from the data.
	return buf.Bytes(), imgspecv1.MediaTypeImageLayer
}

func plain(_ testing.TB, b []byte) ([]byte, string) { return b, imgspecv1.MediaTypeImageLayer }

// ociImage describes a test image.
type ociImage struct {
	layers   [][]byte // uncompressed tars
	compress []compressor
	created  *time.Time
	diffIDs  []digest.Digest // overrides the computed diff_ids when set
}

// writeOCI writes img as an OCI layout at dir with tag "t" and returns "oci:DIR:t".
func writeOCI(t testing.TB, dir string, img ociImage) string {
	t.Helper()
	blobs := filepath.Join(dir, "blobs", "sha256")
	require.NoError(t, os.MkdirAll(blobs, 0o755))
	put := func(b []byte) digest.Digest {
		d := digest.FromBytes(b)
		require.NoError(t, os.WriteFile(filepath.Join(blobs, d.Encoded()), b, 0o644))
		return d
	}
	cfg := imgspecv1.Image{
		Created:  img.created,
		Platform: imgspecv1.Platform{Architecture: "amd64", OS: "linux"},
		RootFS:   imgspecv1.RootFS{Type: "layers"},
	}
	var descs []imgspecv1.Descriptor
	for i, l := range img.layers {
		c := compressor(gzipped)
		if i < len(img.compress) {
			c = img.compress[i]
		}
		blob, mt := c(t, l)
		descs = append(descs, imgspecv1.Descriptor{MediaType: mt, Digest: put(blob), Size: int64(len(blob))})
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromBytes(l))
	}
	if img.diffIDs != nil {
		cfg.RootFS.DiffIDs = img.diffIDs
	}
	cfgRaw, err := json.Marshal(cfg)
	require.NoError(t, err)
	m := imgspecv1.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: imgspecv1.MediaTypeImageManifest,
		Config:    imgspecv1.Descriptor{MediaType: imgspecv1.MediaTypeImageConfig, Digest: put(cfgRaw), Size: int64(len(cfgRaw))},
		Layers:    descs,
	}
	mRaw, err := json.Marshal(m)
	require.NoError(t, err)
	idx := imgspecv1.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: imgspecv1.MediaTypeImageIndex,
		Manifests: []imgspecv1.Descriptor{{
			MediaType: imgspecv1.MediaTypeImageManifest, Digest: put(mRaw), Size: int64(len(mRaw)),
			Annotations: map[string]string{imgspecv1.AnnotationRefName: "t"},
		}},
	}
	idxRaw, err := json.Marshal(idx)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "index.json"), idxRaw, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644))
	return "oci:" + dir + ":t"
}
