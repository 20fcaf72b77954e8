package exporter

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/klauspost/compress/zstd"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/ostree"
	"github.com/rechunker-dev/rechunker/rechunk"
)

// tocEntries decompresses the table of contents a zstd:chunked blob's annotations
// locate and returns the digest of each regular file by tar name.
func tocEntries(t *testing.T, blob []byte, ann map[string]string) map[string]string {
	t.Helper()
	var off, n, raw, typ int
	_, err := fmt.Sscanf(ann[annZstdChunkedTOCPosition], "%d:%d:%d:%d", &off, &n, &raw, &typ)
	require.NoError(t, err)
	require.LessOrEqual(t, off+n, len(blob))
	sum := sha256.Sum256(blob[off : off+n])
	require.Equal(t, "sha256:"+hex.EncodeToString(sum[:]), ann[annZstdChunkedTOCChecksum], "the checksum annotation is the TOC frame's")
	zr, err := zstd.NewReader(bytes.NewReader(blob[off : off+n]))
	require.NoError(t, err)
	defer zr.Close()
	data, err := io.ReadAll(zr)
	require.NoError(t, err)
	require.Len(t, data, raw)
	var toc struct {
		Entries []struct{ Type, Name, Digest string }
	}
	require.NoError(t, json.Unmarshal(data, &toc))
	out := map[string]string{}
	for _, e := range toc.Entries {
		if e.Type == "reg" {
			out[e.Name] = e.Digest
		}
	}
	return out
}

func TestZstdChunkedExport(t *testing.T) {
	store := newStore(t)
	in := buildInput(t, store, sampleNodes())
	res, dir := exportOCI(t, in, store, Options{Compression: CompressionZstdChunked, NoBlobCache: true})
	var man imgspecv1.Manifest
	readJSON(t, dir, res.ManifestDigest.String(), &man)
	for i, l := range man.Layers {
		assert.Equal(t, imgspecv1.MediaTypeImageLayerZstd, l.MediaType)
		for _, k := range []string{annZstdChunkedTOCChecksum, annZstdChunkedTOCPosition, annZstdChunkedTarSplit} {
			assert.NotEmpty(t, l.Annotations[k], "layer %d: %s", i, k)
		}
		assert.Equal(t, res.Layers[i].Annotations[annZstdChunkedTOCChecksum], l.Annotations[annZstdChunkedTOCChecksum])
	}
	// The table of contents of the /usr layer lists each regular file with the sha256
	// of its content: /usr/bin/su's content object here (its path is a hard link).
	blob, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", man.Layers[2].Digest.Encoded()))
	require.NoError(t, err)
	entries := tocEntries(t, blob, man.Layers[2].Annotations)
	sum := sha256.Sum256([]byte("setuid"))
	obj := objectTarPath(in.Tree.LookupFile("/usr/bin/su").Checksum, ostree.ObjFile)
	assert.Equal(t, "sha256:"+hex.EncodeToString(sum[:]), entries[obj], "%s in the table of contents: %v", obj, entries)

	// The same bytes with one core: the per-file frames do not depend on scheduling.
	old := runtime.GOMAXPROCS(1)
	one, _ := exportOCI(t, in, store, Options{Compression: CompressionZstdChunked, NoBlobCache: true})
	runtime.GOMAXPROCS(old)
	assert.Equal(t, res.ManifestDigest, one.ManifestDigest)

	// A rebuild reuses the blobs, annotations read back from them.
	again, _ := exportOCI(t, in, store, Options{Compression: CompressionZstdChunked, NoBlobCache: true,
		Previous: []rechunk.Previous{previousOf("oci:"+dir+":latest", res)}})
	assert.Equal(t, res.ManifestDigest, again.ManifestDigest)
	for _, l := range again.Layers {
		assert.Equal(t, "previous-build", l.Reused, "layer %d", l.Index)
	}
}

// TestZstdChunkedIgnoresPlainZstd: a previous build's plain zstd blob has the media type
// but no table of contents; it must not stand in for a zstd:chunked layer, nor be left
// in the output.
func TestZstdChunkedIgnoresPlainZstd(t *testing.T) {
	store := newStore(t)
	in := buildInput(t, store, sampleNodes())
	plain, plainDir := exportOCI(t, in, store, Options{Compression: CompressionZstd, NoBlobCache: true})
	res, dir := exportOCI(t, in, store, Options{Compression: CompressionZstdChunked, NoBlobCache: true,
		Previous: []rechunk.Previous{previousOf("oci:"+plainDir+":latest", plain)}})
	for _, l := range res.Layers {
		assert.Empty(t, l.Reused, "layer %d", l.Index)
		assert.NotEmpty(t, l.Annotations[annZstdChunkedTOCChecksum])
	}
	for _, l := range plain.Layers {
		_, err := os.Stat(filepath.Join(dir, "blobs", "sha256", l.Digest.Encoded()))
		assert.ErrorIs(t, err, os.ErrNotExist, "the refused blob %s is not left in the output", l.Digest)
	}
}

func TestZstdChunkedAnnotationsRefuses(t *testing.T) {
	footer := func(tocOff, tocLen, typ, tsOff, tsLen uint64) []byte {
		b := make([]byte, zstdChunkedFooterSize)
		for i, v := range []uint64{tocOff, tocLen, 10, typ, tsOff, tsLen, 10} {
			binary.LittleEndian.PutUint64(b[8*i:], v)
		}
		copy(b[56:], zstdChunkedMagic)
		return b
	}
	body := bytes.Repeat([]byte{1}, 100)
	frame := func(f []byte) []byte { return append(append(append([]byte(nil), body...), make([]byte, 8)...), f...) }
	for _, c := range []struct {
		name string
		blob []byte
		err  string
	}{
		{"empty", nil, "too short"},
		{"plain zstd", bytes.Repeat([]byte{7}, 200), "no footer magic"},
		{"other TOC type", frame(footer(10, 20, 2, 40, 10)), "type 2"},
		{"TOC past the footer", frame(footer(90, 20, 1, 40, 10)), "table of contents at 90+20"},
		{"TOC offset wraps", frame(footer(^uint64(0)-5, 20, 1, 40, 10)), "table of contents"},
		{"tar-split past the footer", frame(footer(10, 20, 1, 95, 10)), "tar-split data at 95+10"},
		{"sound", frame(footer(10, 20, 1, 40, 10)), ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "blob")
			require.NoError(t, os.WriteFile(p, c.blob, 0o644))
			ann, err := zstdChunkedAnnotations(p)
			if c.err != "" {
				require.ErrorContains(t, err, c.err)
				return
			}
			require.NoError(t, err)
			sum := sha256.Sum256(c.blob[10:30])
			assert.Equal(t, "sha256:"+hex.EncodeToString(sum[:]), ann[annZstdChunkedTOCChecksum])
			assert.Equal(t, "10:20:10:1", ann[annZstdChunkedTOCPosition])
			assert.Equal(t, "40:10:10", ann[annZstdChunkedTarSplit])
		})
	}
}
