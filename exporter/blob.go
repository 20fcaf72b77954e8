package exporter

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	chunkedcompressor "go.podman.io/storage/pkg/chunked/compressor"

	"github.com/rechunker-dev/rechunker/internal/fsutil"
	"github.com/rechunker-dev/rechunker/ostree"
)

// Compression names accepted by Options.Compression.
const (
	CompressionGzip = "gzip"
	CompressionZstd = "zstd"
	// CompressionZstdChunked is zstd:chunked: zstd with every file in frames of its
	// own and a table of contents (zstdchunked.go), which podman pulls file by file.
	CompressionZstdChunked = "zstd:chunked"
	CompressionNone        = "none"
)

// compressor describes how layer blobs are compressed.
type compressor struct {
	name      string
	level     int
	mediaType string
	// encoders keeps zstd encoders between layers: each holds megabytes of tables, and
	// a new one per layer made zstd builds use about 50 MB more memory.
	encoders *sync.Pool
}

func newCompressor(name string, level int) (compressor, error) {
	switch name {
	case "", CompressionGzip:
		if level == 0 {
			level = 6
		}
		if level < 1 || level > 9 {
			return compressor{}, fmt.Errorf("gzip compression level %d: want 1..9", level)
		}
		return compressor{CompressionGzip, level, imgspecv1.MediaTypeImageLayerGzip, nil}, nil
	case CompressionZstd:
		if level == 0 {
			level = 3
		}
		if level < 1 || level > 22 {
			return compressor{}, fmt.Errorf("zstd compression level %d: want 1..22", level)
		}
		return compressor{CompressionZstd, level, imgspecv1.MediaTypeImageLayerZstd, &sync.Pool{}}, nil
	case CompressionZstdChunked:
		if level == 0 {
			level = 3
		}
		if level < 1 || level > 22 {
			return compressor{}, fmt.Errorf("zstd:chunked compression level %d: want 1..22", level)
		}
		return compressor{CompressionZstdChunked, level, imgspecv1.MediaTypeImageLayerZstd, nil}, nil
	case CompressionNone:
		return compressor{CompressionNone, 0, imgspecv1.MediaTypeImageLayer, nil}, nil
	}
	return compressor{}, fmt.Errorf("unknown compression %q (want gzip, zstd, zstd:chunked or none)", name)
}

// key names the compressor in the blob cache.
func (c compressor) key() string { return c.name + "-" + strconv.Itoa(c.level) }

// accepts reports whether a blob of media type mt is compressed the way c asks, so an
// existing blob can stand in for one we would write.
func (c compressor) accepts(mt string) bool {
	switch c.name {
	case CompressionGzip:
		return mt == imgspecv1.MediaTypeImageLayerGzip || mt == "application/vnd.docker.image.rootfs.diff.tar.gzip"
	case CompressionZstd, CompressionZstdChunked:
		// A plain zstd blob has this media type too: reuse checks for the table of
		// contents (zstdChunkedAnnotations).
		return mt == imgspecv1.MediaTypeImageLayerZstd
	default:
		return mt == imgspecv1.MediaTypeImageLayer || mt == "application/vnd.docker.image.rootfs.diff.tar"
	}
}

// wrap returns a writer compressing into w. Both encoders are deterministic: gzip with
// a zero header (no name, mtime 0, OS 255), zstd with one encoder goroutine.
func (c compressor) wrap(w io.Writer) (io.WriteCloser, error) {
	switch c.name {
	case CompressionGzip:
		return kgzip.NewWriterLevel(w, c.level)
	case CompressionZstd:
		if e, ok := c.encoders.Get().(*zstd.Encoder); ok {
			e.Reset(w) // the same output as a new encoder
			return pooledEncoder{e, c.encoders}, nil
		}
		e, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(c.level)),
			zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return pooledEncoder{e, c.encoders}, nil
	case CompressionZstdChunked:
		// The layer annotations are read back from the blob (zstdChunkedAnnotations),
		// the same way for written and reused blobs.
		level := c.level
		return chunkedcompressor.ZstdCompressor(w, map[string]string{}, &level)
	default:
		return nopCloser{w}, nil
	}
}

// chunked says whether c writes zstd:chunked blobs, which need their table-of-contents
// annotations in the manifest.
func (c compressor) chunked() bool { return c.name == CompressionZstdChunked }

// pooledEncoder returns its encoder to the pool once the stream is closed.
type pooledEncoder struct {
	*zstd.Encoder
	pool *sync.Pool
}

func (p pooledEncoder) Close() error {
	err := p.Encoder.Close()
	if err == nil {
		p.pool.Put(p.Encoder)
	}
	return err
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// digestWriter counts and hashes what passes through it.
type digestWriter struct {
	h hash.Hash
	n int64
}

func newDigestWriter() *digestWriter { return &digestWriter{h: sha256.New()} }

func (d *digestWriter) Write(p []byte) (int, error) {
	d.h.Write(p)
	d.n += int64(len(p))
	return len(p), nil
}

func (d *digestWriter) digest() digest.Digest { return digest.NewDigest(digest.SHA256, d.h) }

// progressWriter reports bytes to a callback in chunks.
type progressWriter struct {
	fn      func(int64)
	pending int64
}

func (p *progressWriter) Write(b []byte) (int, error) {
	p.pending += int64(len(b))
	if p.pending >= 4<<20 {
		p.flush()
	}
	return len(b), nil
}

func (p *progressWriter) flush() {
	if p.pending > 0 && p.fn != nil {
		p.fn(p.pending)
	}
	p.pending = 0
}

// blobDir is a directory of content-addressed blobs (an OCI layout's blobs/ or the
// store's blob cache).
type blobDir string

func (b blobDir) path(d digest.Digest) string {
	return filepath.Join(string(b), d.Algorithm().String(), d.Encoded())
}

// has reports whether the blob exists with the given size (-1: any size).
func (b blobDir) has(d digest.Digest, size int64) bool {
	st, err := os.Stat(b.path(d))
	return err == nil && st.Mode().IsRegular() && (size < 0 || st.Size() == size)
}

// tempFile creates a temporary file next to the blobs, so a rename puts it in place.
func (b blobDir) tempFile() (*os.File, error) {
	dir := filepath.Join(string(b), digest.SHA256.String())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return os.CreateTemp(dir, ".tmp-blob-*")
}

// commit renames a finished temporary file into place as blob d.
func (b blobDir) commit(tmp string, d digest.Digest) error {
	return fsutil.Publish(tmp, b.path(d))
}

// place makes blob d (found at src, a blob the store wrote and hashed) available in b: a
// hardlink when possible, a checked copy otherwise. A file already at d's name is kept
// only when it is src itself: an output layout shared with a previous build may hold
// anything under that name, and relinking costs less than hashing it.
func (b blobDir) place(src string, d digest.Digest, size int64) error {
	if b.has(d, size) && sameFile(src, b.path(d)) {
		return nil
	}
	dst := b.path(d)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := os.Link(src, dst); err == nil {
		return nil
	} else if errors.Is(err, fs.ErrExist) {
		os.Remove(dst)
		if os.Link(src, dst) == nil {
			return nil
		}
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := b.tempFile()
	if err != nil {
		return err
	}
	dw := newDigestWriter()
	if _, err := io.Copy(io.MultiWriter(tmp, dw), in); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if dw.digest() != d {
		os.Remove(tmp.Name())
		return fmt.Errorf("blob %s: copy from %s hashes to %s", d, src, dw.digest())
	}
	if err := b.commit(tmp.Name(), d); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

// blobCache remembers, per uncompressed diff_id and compressor, the compressed blob we
// made for it, so a rebuild reuses blobs without compressing again. It lives in the store:
// blobs/sha256/<hex> holds blobs, blobs/index/<compressor>/<diffid hex> holds
// "<digest> <size>".
type blobCache struct {
	root  string
	blobs blobDir
}

func newBlobCache(root string) *blobCache {
	return &blobCache{root: root, blobs: blobDir(root)}
}

func (c *blobCache) indexPath(comp compressor, diffID digest.Digest) string {
	return filepath.Join(c.root, "index", comp.key(), diffID.Encoded())
}

// lookup returns the cached blob for diffID, if its file is still there.
func (c *blobCache) lookup(comp compressor, diffID digest.Digest) (digest.Digest, int64, bool) {
	d, size, ok := readDigestSize(c.indexPath(comp, diffID))
	if !ok || !c.blobs.has(d, size) {
		return "", 0, false
	}
	fsutil.Touch(c.indexPath(comp, diffID)) // used: pruning keeps it
	fsutil.Touch(c.blobs.path(d))
	return d, size, true
}

// readDigestSize reads a cache entry "DIGEST SIZE\n" as written by writeSmall.
func readDigestSize(p string) (digest.Digest, int64, bool) {
	b, err := os.ReadFile(p)
	if err != nil {
		return "", 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return "", 0, false
	}
	d, err := digest.Parse(f[0])
	if err != nil {
		return "", 0, false
	}
	size, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return "", 0, false
	}
	return d, size, true
}

func (c *blobCache) keyPath(key string) string {
	return filepath.Join(c.root, "layers", key[:2], key[2:])
}

// lookupKey returns the diff_id and tar size remembered for a layer key.
func (c *blobCache) lookupKey(key string) (digest.Digest, int64, bool) {
	d, size, ok := readDigestSize(c.keyPath(key))
	if ok {
		fsutil.Touch(c.keyPath(key))
	}
	return d, size, ok
}

// recordKey remembers the diff_id and tar size of a layer key.
func (c *blobCache) recordKey(key string, diffID digest.Digest, tarSize int64) error {
	return writeSmall(c.keyPath(key), fmt.Sprintf("%s %d\n", diffID, tarSize))
}

// record notes that blob d of size is diffID compressed with comp.
func (c *blobCache) record(comp compressor, diffID, d digest.Digest, size int64) error {
	return writeSmall(c.indexPath(comp, diffID), fmt.Sprintf("%s %d\n", d, size))
}

// writeSmall replaces a small file atomically.
func writeSmall(p, content string) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(p, []byte(content))
}

// layerSink is where one pass over a layer's tar stream goes: the uncompressed hash,
// and optionally a compressor writing a blob file with its own hash.
type layerSink struct {
	bw       *bufio.Writer
	diff     *digestWriter
	comp     io.WriteCloser
	compHash *digestWriter
	file     *os.File
	fileBuf  *bufio.Writer
	progress *progressWriter
}

func newLayerSink(c *compressor, file *os.File, progress func(int64)) (*layerSink, error) {
	s := &layerSink{diff: newDigestWriter(), progress: &progressWriter{fn: progress}}
	ws := []io.Writer{s.diff, s.progress}
	if c != nil {
		s.file = file
		s.fileBuf = bufio.NewWriterSize(file, 256<<10)
		s.compHash = newDigestWriter()
		cw, err := c.wrap(io.MultiWriter(s.fileBuf, s.compHash))
		if err != nil {
			return nil, err
		}
		s.comp = cw
		ws = append(ws, cw)
	}
	s.bw = bufio.NewWriterSize(io.MultiWriter(ws...), 256<<10)
	return s, nil
}

func (s *layerSink) Write(p []byte) (int, error) { return s.bw.Write(p) }

// close flushes everything; the file itself is left open for the caller.
func (s *layerSink) close() error {
	if err := s.bw.Flush(); err != nil {
		return err
	}
	s.progress.flush()
	if s.comp == nil {
		return nil
	}
	if err := s.comp.Close(); err != nil {
		return err
	}
	return s.fileBuf.Flush()
}

// PruneBlobCache removes the store's cached blobs and cache entries not used since
// cutoff; a blob that a kept index entry names stays.
func PruneBlobCache(ctx context.Context, store *ostree.Store, cutoff time.Time, dryRun bool) (fsutil.PruneStats, error) {
	c := newBlobCache(store.Path("blobs"))
	st, err := fsutil.PruneFiles(ctx, filepath.Join(c.root, "layers"), cutoff, dryRun, nil)
	if err != nil {
		return st, err
	}
	// Index entries: the ones kept (recently used) keep their blobs.
	kept := map[string]bool{}
	s, err := fsutil.PruneFiles(ctx, filepath.Join(c.root, "index"), cutoff, dryRun, func(string) bool { return false })
	st.Add(s)
	if err != nil {
		return st, err
	}
	err = filepath.WalkDir(filepath.Join(c.root, "index"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if fi, err := d.Info(); err == nil && !fi.ModTime().Before(cutoff) {
			if dg, _, ok := readDigestSize(p); ok {
				kept[c.blobs.path(dg)] = true
			}
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	s, err = fsutil.PruneFiles(ctx, filepath.Join(c.root, digest.SHA256.String()), cutoff, dryRun, func(p string) bool { return kept[p] })
	st.Add(s)
	return st, err
}

func sameFile(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}
