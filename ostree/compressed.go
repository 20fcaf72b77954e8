package ostree

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
)

// Compressed content objects keep the store's copy of an archive input (an image's
// layers) smaller: a store holding every payload uncompressed next to the compressed
// output needed about 2.6 times the output's size on disk. A payload of at least
// compressMinPayload bytes is stored zstd-compressed as "xx/rest.filez":
//
//	BE64 payload size | BE32 header length | 4 zero bytes | header | zstd frame of the payload
//
// The checksum is still that of the uncompressed object (what ostree hashes); the
// object's name says so, the file's own sha256 does not. Smaller payloads stay plain
// ".file" objects: a file system allocates whole 4 KiB blocks, so compressing them
// saves nothing and costs a decoder per read. The fastest zstd level is used: on OS
// content it is within 2% of the default level's size at about twice its speed, and
// reading back costs about 1 ns per byte.
const compressMinPayload = 8 << 10

// compressedSuffix turns an object file name (".file") into the compressed one.
const compressedSuffix = "z"

// compressedHeaderSize is the BE64 payload size before the object's prefix.
const compressedHeaderSize = 8

func (s *Store) compressedFile(c Checksum) string {
	return s.ObjectFile(c, ObjFile) + compressedSuffix
}

// SetCompressContent chooses whether content objects written from now on are stored
// compressed or plain (the default). Objects already stored stay as they are, and both
// forms are always readable. Compression trades time for disk: on the 2 GB bench image
// it made the objects 27% smaller and the cold build 40% slower, so only a transient
// build (transient.go), whose point is disk, turns it on.
func (s *Store) SetCompressContent(on bool) { s.compress.Store(on) }

func (s *Store) getEncoder(w io.Writer) *zstd.Encoder {
	if e, ok := s.encoders.Get().(*zstd.Encoder); ok {
		e.Reset(w)
		return e
	}
	// One goroutine per encoder: the store's writers already run in parallel.
	e, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
	if err != nil {
		panic(fmt.Sprintf("zstd encoder with constant options: %v", err)) // cannot happen
	}
	return e
}

func (s *Store) putEncoder(e *zstd.Encoder) {
	e.Reset(nil)
	s.encoders.Put(e)
}

// writeCompressed writes content object c (prefix: ContentPrefix of its header) in
// compressed form.
func (s *Store) writeCompressed(c Checksum, prefix, payload []byte) error {
	var size [compressedHeaderSize]byte
	binary.BigEndian.PutUint64(size[:], uint64(len(payload)))
	return s.writeNew(s.compressedFile(c), func(f *os.File) error {
		return s.writeCompressedTo(f, size[:], prefix, payload)
	})
}

func (s *Store) writeCompressedTo(f *os.File, size, prefix, payload []byte) error {
	bw := bufio.NewWriterSize(f, 64<<10)
	bw.Write(size)
	bw.Write(prefix)
	enc := s.getEncoder(bw)
	defer s.putEncoder(enc)
	if _, err := enc.Write(payload); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

// zReader decompresses a compressed object's payload and checks its length.
type zReader struct {
	dec  *zstd.Decoder
	left int64 // payload bytes still expected
}

func (s *Store) newZReader(r io.Reader, size int64) (*zReader, error) {
	dec, ok := s.decoders.Get().(*zstd.Decoder)
	if !ok {
		var err error
		// Synchronous decoding (concurrency 1): many objects are open at once, one per
		// export worker, and each is read start to end by one goroutine.
		dec, err = zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, err
		}
	} else if err := dec.Reset(r); err != nil {
		s.decoders.Put(dec)
		return nil, err
	}
	return &zReader{dec: dec, left: size}, nil
}

func (z *zReader) Read(p []byte) (int, error) {
	n, err := z.dec.Read(p)
	z.left -= int64(n)
	switch {
	case z.left < 0:
		return n, errors.New("compressed object holds more payload than its size says (store damaged)")
	case err == io.EOF && z.left > 0:
		return n, fmt.Errorf("compressed object ends %d bytes early (store damaged)", z.left)
	case err != nil && err != io.EOF:
		return n, fmt.Errorf("decompress object (store damaged): %w", err)
	}
	return n, err
}

func (s *Store) putZReader(z *zReader) {
	if z.dec.Reset(nil) == nil {
		s.decoders.Put(z.dec)
	}
}

// finishCompressed ends a streamed compressed object of n payload bytes: the frame, the
// buffered bytes, and the size at the start of the file.
func finishCompressed(f *os.File, enc *zstd.Encoder, bw *bufio.Writer, n int64) error {
	if err := enc.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	var size [compressedHeaderSize]byte
	binary.BigEndian.PutUint64(size[:], uint64(n))
	_, err := f.WriteAt(size[:], 0)
	return err
}
