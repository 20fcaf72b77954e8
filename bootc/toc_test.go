package bootc

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	chunkedcompressor "go.podman.io/storage/pkg/chunked/compressor"

	"github.com/rechunker-dev/rechunker/bootc/bootctest"
)

// zstdChunked compresses a tar with containers/storage's zstd:chunked writer and returns
// the blob and its annotations.
func zstdChunked(t *testing.T, rawTar []byte) ([]byte, map[string]string) {
	var buf bytes.Buffer
	ann := map[string]string{}
	level := 3
	w, err := chunkedcompressor.ZstdCompressor(&buf, ann, &level)
	require.NoError(t, err)
	_, err = w.Write(rawTar)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return buf.Bytes(), ann
}

// rewriteTOC rebuilds a zstd:chunked blob with its table of contents passed through edit
// (the JSON), and returns the blob with annotations that honestly describe the new table.
func rewriteTOC(t *testing.T, blob []byte, ann map[string]string, edit func(map[string]any)) ([]byte, map[string]string) {
	var off, n, raw, typ uint64
	_, err := fmt.Sscanf(ann[AnnotationTOCPosition], "%d:%d:%d:%d", &off, &n, &raw, &typ)
	require.NoError(t, err)
	footer := blob[len(blob)-64:]
	tsOff, tsLen, tsRaw := binary.LittleEndian.Uint64(footer[32:]), binary.LittleEndian.Uint64(footer[40:]), binary.LittleEndian.Uint64(footer[48:])
	zr, err := zstd.NewReader(bytes.NewReader(blob[off : off+n]))
	require.NoError(t, err)
	data, err := io.ReadAll(zr)
	zr.Close()
	require.NoError(t, err)
	var toc map[string]any
	require.NoError(t, json.Unmarshal(data, &toc))
	edit(toc)
	data, err = json.Marshal(toc)
	require.NoError(t, err)
	zw, err := zstd.NewWriter(nil)
	require.NoError(t, err)
	newTOC := zw.EncodeAll(data, nil)
	skippable := func(b []byte) []byte {
		h := []byte{0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0}
		binary.LittleEndian.PutUint32(h[4:], uint32(len(b)))
		return append(h, b...)
	}
	out := append([]byte(nil), blob[:off-8]...)
	newOff := uint64(len(out)) + 8
	out = append(out, skippable(newTOC)...)
	newTsOff := uint64(len(out)) + 8
	out = append(out, skippable(blob[tsOff:tsOff+tsLen])...)
	f := make([]byte, 64)
	for i, v := range []uint64{newOff, uint64(len(newTOC)), uint64(len(data)), 1, newTsOff, tsLen, tsRaw} {
		binary.LittleEndian.PutUint64(f[8*i:], v)
	}
	copy(f[56:], footer[56:])
	out = append(out, skippable(f)...)
	sum := sha256.Sum256(newTOC)
	return out, map[string]string{
		AnnotationTOCChecksum: "sha256:" + hex.EncodeToString(sum[:]),
		AnnotationTOCPosition: fmt.Sprintf("%d:%d:%d:1", newOff, len(newTOC), len(data)),
	}
}

// withChunkedLayer rewrites the last layer of b as zstd:chunked (same tar, so the same
// diff_id), with the blob and annotations change gives.
func withChunkedLayer(t *testing.T, b *bootctest.Built, change func([]byte, map[string]string) ([]byte, map[string]string)) string {
	m, cfg := b.Manifest, b.Config
	last := len(m.Layers) - 1
	gz, err := os.ReadFile(filepath.Join(b.Dir, "blobs", "sha256", m.Layers[last].Digest.Encoded()))
	require.NoError(t, err)
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	require.NoError(t, err)
	rawTar, err := io.ReadAll(zr)
	require.NoError(t, err)
	blob, ann := change(zstdChunked(t, rawTar))
	d := digest.FromBytes(blob)
	require.NoError(t, os.WriteFile(filepath.Join(b.Dir, "blobs", "sha256", d.Encoded()), blob, 0o644))
	layers := append([]imgspecv1.Descriptor(nil), m.Layers...)
	layers[last] = imgspecv1.Descriptor{MediaType: imgspecv1.MediaTypeImageLayerZstd, Digest: d, Size: int64(len(blob)), Annotations: ann}
	m.Layers = layers
	return bootctest.WriteLayout(t, b.Dir, nil, m, cfg).Ref
}

// tocEntry edits the entry named name of a table of contents (nil removes it).
func tocEntry(toc map[string]any, name string, edit func(map[string]any)) map[string]any {
	var kept []any
	for _, e := range toc["entries"].([]any) {
		em := e.(map[string]any)
		if em["name"] == name {
			if edit == nil {
				continue
			}
			edit(em)
		}
		kept = append(kept, em)
	}
	toc["entries"] = kept
	return toc
}

func TestVerifyChecksTableOfContents(t *testing.T) {
	derived := [][]bootctest.Entry{{
		{Hdr: bootctest.Hdr("usr/share/doc/a", tar.TypeReg, 0o644, 0), Data: []byte("first file\n")},
		{Hdr: bootctest.Hdr("usr/share/doc/b", tar.TypeReg, 0o644, 0), Data: []byte("second file\n")},
	}}
	honest := func(blob []byte, ann map[string]string) ([]byte, map[string]string) { return blob, ann }
	for _, c := range []struct {
		name   string
		change func([]byte, map[string]string) ([]byte, map[string]string)
		err    string
	}{
		{"honest", honest, ""},
		{"checksum annotation lies", func(blob []byte, ann map[string]string) ([]byte, map[string]string) {
			ann[AnnotationTOCChecksum] = "sha256:" + hex.EncodeToString(make([]byte, 32))
			return blob, ann
		}, "table of contents hashes to"},
		{"position beyond the blob", func(blob []byte, ann map[string]string) ([]byte, map[string]string) {
			ann[AnnotationTOCPosition] = fmt.Sprintf("%d:100:100:1", len(blob))
			return blob, ann
		}, "lies beyond the blob"},
		{"position malformed", func(blob []byte, ann map[string]string) ([]byte, map[string]string) {
			ann[AnnotationTOCPosition] = "12:x"
			return blob, ann
		}, "is not OFFSET:LENGTH:LENGTH:1"},
		{"a file's digest lies", func(blob []byte, ann map[string]string) ([]byte, map[string]string) {
			return rewriteTOC(t, blob, ann, func(toc map[string]any) {
				tocEntry(toc, "usr/share/doc/b", func(e map[string]any) {
					e["digest"] = "sha256:" + hex.EncodeToString(make([]byte, 32))
				})
			})
		}, "table of contents says usr/share/doc/b is 12 bytes with sha256:0000"},
		{"a file is missing", func(blob []byte, ann map[string]string) ([]byte, map[string]string) {
			return rewriteTOC(t, blob, ann, func(toc map[string]any) { tocEntry(toc, "usr/share/doc/a", nil) })
		}, "usr/share/doc/a is not in the table of contents"},
	} {
		t.Run(c.name, func(t *testing.T) {
			img := bootctest.Base()
			img.Derived = derived
			ref := withChunkedLayer(t, img.Build(t), c.change)
			r := verifyRef(t, ref, Options{})
			if c.err == "" {
				require.Nil(t, r.Failure, "%v", r.Failure)
				return
			}
			require.NotNil(t, r.Failure)
			assert.Equal(t, CheckTOC, r.Failure.Check)
			assert.Contains(t, r.Failure.Message, c.err)
		})
	}
}
