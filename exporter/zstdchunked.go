package exporter

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
)

// zstd:chunked (containers/storage's format, written by its compressor package): every
// file of the tar in zstd frames of its own, then two skippable frames holding the
// table of contents (a zstd-compressed JSON list of entries with their offsets and
// digests) and the tar-split data, then a 64-byte footer locating both. Clients find
// the table of contents through three layer annotations. This package computes those
// annotations from a blob's own bytes, the same way for a blob it wrote and for one it
// reuses: a previous build's manifest may say anything, the blob (already checked
// against its digest) cannot.

// Layer annotations of zstd:chunked blobs, as containers/storage defines them.
const (
	annZstdChunkedTOCChecksum = "io.github.containers.zstd-chunked.manifest-checksum"
	annZstdChunkedTOCPosition = "io.github.containers.zstd-chunked.manifest-position"
	annZstdChunkedTarSplit    = "io.github.containers.zstd-chunked.tarsplit-position"
)

// zstdChunkedFooter is the fixed-size end of a zstd:chunked blob: seven little-endian
// uint64s and a magic number.
const zstdChunkedFooterSize = 64

var zstdChunkedMagic = []byte{0x47, 0x4e, 0x55, 0x6c, 0x49, 0x6e, 0x55, 0x78}

// zstdChunkedTOCType is the only table-of-contents type there is (CRFS-like JSON).
const zstdChunkedTOCType = 1

// zstdChunkedAnnotations reads the footer of the zstd:chunked blob at path, checks that
// it describes frames inside the blob, hashes the table of contents it locates and
// returns the layer annotations. A blob without the footer (plain zstd) is an error.
func zstdChunkedAnnotations(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	// The footer is a skippable frame's payload: its 8-byte frame header comes first.
	end := st.Size() - zstdChunkedFooterSize - 8
	if end < 0 {
		return nil, fmt.Errorf("not zstd:chunked: %d bytes is too short for the footer", st.Size())
	}
	footer := make([]byte, zstdChunkedFooterSize)
	if _, err := f.ReadAt(footer, st.Size()-zstdChunkedFooterSize); err != nil {
		return nil, fmt.Errorf("read zstd:chunked footer: %w", err)
	}
	if !bytes.Equal(footer[56:], zstdChunkedMagic) {
		return nil, fmt.Errorf("not zstd:chunked: no footer magic at the end of the blob")
	}
	u := func(i int) uint64 { return binary.LittleEndian.Uint64(footer[8*i:]) }
	tocOff, tocLen, tocRaw, tocType := u(0), u(1), u(2), u(3)
	tsOff, tsLen, tsRaw := u(4), u(5), u(6)
	switch {
	case tocType != zstdChunkedTOCType:
		return nil, fmt.Errorf("zstd:chunked table of contents has type %d, want %d", tocType, zstdChunkedTOCType)
	case tocOff < 8 || tocLen == 0 || tocOff > uint64(end) || tocLen > uint64(end)-tocOff:
		return nil, fmt.Errorf("zstd:chunked footer puts the table of contents at %d+%d, outside the %d bytes before it", tocOff, tocLen, end)
	case tsOff < 8 || tsOff > uint64(end) || tsLen > uint64(end)-tsOff:
		return nil, fmt.Errorf("zstd:chunked footer puts the tar-split data at %d+%d, outside the %d bytes before it", tsOff, tsLen, end)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, int64(tocOff), int64(tocLen))); err != nil {
		return nil, fmt.Errorf("hash zstd:chunked table of contents: %w", err)
	}
	return map[string]string{
		annZstdChunkedTOCChecksum: "sha256:" + hex.EncodeToString(h.Sum(nil)),
		annZstdChunkedTOCPosition: fmt.Sprintf("%d:%d:%d:%d", tocOff, tocLen, tocRaw, tocType),
		annZstdChunkedTarSplit:    fmt.Sprintf("%d:%d:%d", tsOff, tsLen, tsRaw),
	}, nil
}
