package bootc

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/rechunker-dev/rechunker/internal/imageio"
)

// zstd:chunked layer annotations (containers/storage's names): the sha256 of the
// compressed table of contents, and where it is (OFFSET:LENGTH:UNCOMPRESSED:TYPE).
const (
	AnnotationTOCChecksum = "io.github.containers.zstd-chunked.manifest-checksum"
	AnnotationTOCPosition = "io.github.containers.zstd-chunked.manifest-position"
)

// maxTOCSize bounds a table of contents, compressed and not, before it is read into
// memory: a 300k-file layer's is a few tens of MB.
const maxTOCSize = 256 << 20

// tocFile is a regular file as the layer's tar or its table of contents describes it.
type tocFile struct {
	size   int64
	digest string
}

// checkTOC reads zstd:chunked layer i a second time and checks what a client that pulls
// file by file trusts: the checksum annotation against the bytes the position
// annotation names, and every regular file the table lists (size and sha256) against
// the layer's tar, and the reverse. Layers without the annotations pass.
func checkTOC(ctx context.Context, src *imageio.Source, i int) error {
	ann := src.Layers[i].Annotations
	sum, ok := ann[AnnotationTOCChecksum]
	if !ok {
		return nil
	}
	var off, n, raw, typ uint64
	if _, err := fmt.Sscanf(ann[AnnotationTOCPosition], "%d:%d:%d:%d", &off, &n, &raw, &typ); err != nil || typ != 1 {
		return problemf(CheckTOC, i, "annotation %s %q is not OFFSET:LENGTH:LENGTH:1", AnnotationTOCPosition, ann[AnnotationTOCPosition])
	}
	if n > maxTOCSize || raw > maxTOCSize {
		return problemf(CheckTOC, i, "table of contents of %d bytes (%d uncompressed) is too large to check", n, raw)
	}
	capture := &rangeCapture{off: off, n: n}
	files, err := tarFiles(ctx, src, i, capture)
	if err != nil {
		return err
	}
	if uint64(len(capture.buf)) != n {
		return problemf(CheckTOC, i, "table of contents at %d+%d lies beyond the blob", off, n)
	}
	if got := sha256.Sum256(capture.buf); "sha256:"+hex.EncodeToString(got[:]) != sum {
		return problemf(CheckTOC, i, "table of contents hashes to sha256:%x, annotation %s says %s", got, AnnotationTOCChecksum, sum)
	}
	listed, err := parseTOC(capture.buf, raw)
	if err != nil {
		return problemf(CheckTOC, i, "%v", err)
	}
	return compareTOC(i, listed, files)
}

// tarFiles streams layer i, its raw bytes also to tap, and returns its regular files
// with their sizes and sha256.
func tarFiles(ctx context.Context, src *imageio.Source, i int, tap io.Writer) (map[string]tocFile, error) {
	s, err := src.OpenLayerStreamTap(ctx, i, tap)
	if err != nil {
		return nil, problemf(CheckBlob, i, "open blob %s: %v", src.Layers[i].Digest, err)
	}
	defer s.Close()
	files := map[string]tocFile{}
	tr := tar.NewReader(s)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, problemf(CheckTar, i, "read tar: %v", err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		h := sha256.New()
		size, err := io.Copy(h, tr)
		if err != nil {
			return nil, problemf(CheckTar, i, "read %s: %v", hdr.Name, err)
		}
		files[tocName(hdr.Name)] = tocFile{size, "sha256:" + hex.EncodeToString(h.Sum(nil))}
	}
	if _, _, _, err := s.Finish(); err != nil {
		return nil, problemf(CheckBlob, i, "%v", err)
	}
	return files, nil
}

// parseTOC decompresses a table of contents of raw bytes and returns its regular files.
func parseTOC(compressed []byte, raw uint64) (map[string]tocFile, error) {
	zr, err := zstd.NewReader(bytes.NewReader(compressed), zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	data, err := io.ReadAll(io.LimitReader(zr, int64(raw)+1))
	if err != nil {
		return nil, fmt.Errorf("decompress table of contents: %w", err)
	}
	if uint64(len(data)) != raw {
		return nil, fmt.Errorf("table of contents decompresses to %d bytes, the position annotation says %d", len(data), raw)
	}
	var toc struct {
		Entries []struct {
			Type, Name, Digest string
			Size               int64
		}
	}
	if err := json.Unmarshal(data, &toc); err != nil {
		return nil, fmt.Errorf("table of contents: %w", err)
	}
	out := map[string]tocFile{}
	for _, e := range toc.Entries {
		if e.Type == "reg" {
			out[tocName(e.Name)] = tocFile{e.Size, e.Digest}
		}
	}
	return out, nil
}

// compareTOC reports the first file the table of contents and the tar disagree on.
func compareTOC(i int, listed, files map[string]tocFile) error {
	for _, name := range slices.Sorted(maps.Keys(listed)) {
		l := listed[name]
		f, ok := files[name]
		switch {
		case !ok:
			return problemf(CheckTOC, i, "table of contents lists %s, which the layer does not have", name)
		case l.size != f.size || (l.digest != f.digest && !(l.digest == "" && f.size == 0)):
			return problemf(CheckTOC, i, "table of contents says %s is %d bytes with %s; the layer has %d bytes with %s",
				name, l.size, l.digest, f.size, f.digest)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if _, ok := listed[name]; !ok {
			return problemf(CheckTOC, i, "%s is not in the table of contents", name)
		}
	}
	return nil
}

// tocName puts tar and table-of-contents names in one form: no leading "./" or "/".
func tocName(name string) string { return strings.TrimPrefix(path.Clean("/"+name), "/") }

// rangeCapture keeps the bytes at stream offsets [off, off+n) of what is written to it.
type rangeCapture struct {
	off, n, pos uint64
	buf         []byte
}

func (c *rangeCapture) Write(p []byte) (int, error) {
	start, end := c.pos, c.pos+uint64(len(p))
	c.pos = end
	lo, hi := max(start, c.off), min(end, c.off+c.n)
	if lo < hi {
		c.buf = append(c.buf, p[lo-start:hi-start]...)
	}
	return len(p), nil
}
