package ostree

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/rechunker-dev/rechunker/internal/fsutil"
)

// MaxMetadataSize is the largest metadata object ostree accepts.
const MaxMetadataSize = 10 << 20

// storeConfig marks a directory as a rechunker object store. The store is laid out like
// an ostree repository (objects/xx/rest.type) but content objects hold exactly the bytes
// ostree hashes: BE32 header length, 4 zero bytes, the (uuuusa(ayay)) header, then the
// payload. So sha256sum of any object file equals its name, for every object type.
const storeConfig = "[core]\nrepo_version=1\nmode=rechunker-hashed\n"

// Store is an on-disk content-addressed object store. It is safe for concurrent use by
// several goroutines and processes: every object is written to a temporary file and
// renamed into place, and an object is never rewritten once present.
type Store struct {
	root string
	bufs sync.Pool // *[]byte copy buffers, larger than io.Copy's 32 KiB default
	// chunks are the read-ahead buffers of payloads longer than a copy buffer.
	chunks  *fsutil.ChunkPool
	readers sync.Pool // *bufio.Reader for OpenContent
	// anonTemp is set when the store's filesystem supports O_TMPFILE and linking such a
	// file into place through /proc/self/fd: an object then costs one inode creation and
	// one link, with no temporary name to create, rename and clean up after a crash.
	anonTemp atomic.Bool
	// objects is the objects directory, for lookups relative to it: faccessat on
	// "xx/rest.type" costs a fifth of an lstat of the full path, and a rebuild checks
	// every object of every cached layer. Closed by its finalizer with the Store.
	objects *os.File
	// inPlace holds the content objects read from the input's files (inplace.go).
	inPlace inPlace
	// blobs are the input layer blobs whose files' payloads are read in place (blob.go).
	blobs blobTable
	// compress turns on compressed content objects (compressed.go).
	compress           atomic.Bool
	encoders, decoders sync.Pool // *zstd.Encoder, *zstd.Decoder
	// written tracks the content objects of a transient build (transient.go).
	written written
}

const copyBufSize = 256 << 10

func (s *Store) getBuf() *[]byte {
	if b, ok := s.bufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, copyBufSize)
	return &b
}

func sha256Sum(b []byte) Checksum { return sha256.Sum256(b) }

// DefaultStoreDir is the store location when none is given: $XDG_CACHE_HOME/rechunker/store
// or ~/.cache/rechunker/store.
func DefaultStoreDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find cache directory: %w", err)
	}
	return filepath.Join(dir, "rechunker", "store"), nil
}

// OpenStore opens the store at dir, creating it when missing.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return nil, fmt.Errorf("create store %s: %w", dir, err)
	}
	cfg := filepath.Join(dir, "config")
	b, err := os.ReadFile(cfg)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := fsutil.WriteFileAtomic(cfg, []byte(storeConfig)); err != nil {
			return nil, fmt.Errorf("create store %s: %w", dir, err)
		}
	case err != nil:
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	case string(b) != storeConfig:
		return nil, fmt.Errorf("open store %s: %s is not a rechunker store config", dir, cfg)
	}
	// Shard directories are created on first use: publishing an object retries after a
	// MkdirAll when its shard is missing, so no write stats the directory first.
	if err := os.MkdirAll(filepath.Join(dir, "objects"), 0o755); err != nil {
		return nil, fmt.Errorf("create store %s: %w", dir, err)
	}
	removeStaleTemps(dir, StaleTempAge, time.Now())
	s := &Store{root: dir, chunks: fsutil.NewChunkPool(copyBufSize)}
	s.anonTemp.Store(s.probeAnonTemp())
	if f, err := os.Open(filepath.Join(dir, "objects")); err == nil {
		s.objects = f
	}
	return s, nil
}

// StaleTempAge is how old a temporary file in the store must be before OpenStore deletes
// it. A crashed or killed process leaves its temporaries behind; the age keeps a store
// shared by several running processes safe from deleting each other's files.
const StaleTempAge = 24 * time.Hour

// removeStaleTemps deletes leftovers of crashed processes: entries of tmp/ and files
// named .tmp-* in the auxiliary caches (layer records, blob caches), when older than age.
// Errors are ignored: a leftover only costs disk space.
func removeStaleTemps(root string, age time.Duration, now time.Time) {
	old := func(fi fs.FileInfo) bool { return now.Sub(fi.ModTime()) > age }
	if entries, err := os.ReadDir(filepath.Join(root, "tmp")); err == nil {
		for _, e := range entries {
			if fi, err := e.Info(); err == nil && old(fi) {
				os.RemoveAll(filepath.Join(root, "tmp", e.Name()))
			}
		}
	}
	tops, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, top := range tops {
		if !top.IsDir() || top.Name() == "objects" || top.Name() == "tmp" {
			continue
		}
		base := filepath.Join(root, top.Name())
		_ = filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if d.IsDir() && strings.Count(strings.TrimPrefix(p, base), "/") > 2 {
				return filepath.SkipDir
			}
			if !d.IsDir() && strings.HasPrefix(d.Name(), ".tmp-") {
				if fi, err := d.Info(); err == nil && old(fi) {
					os.Remove(p)
				}
			}
			return nil
		})
	}
}

// probeAnonTemp checks that an O_TMPFILE file can be created in the store and linked
// into it (kernel, filesystem and a mounted /proc all allow it).
func (s *Store) probeAnonTemp() bool {
	f, err := s.anonTempFile()
	if err != nil {
		return false
	}
	defer f.Close()
	name := filepath.Join(s.root, "tmp", ".probe-"+strconv.Itoa(os.Getpid())+"-"+strconv.FormatUint(uint64(f.Fd()), 10))
	os.Remove(name)
	if err := linkAnon(f, name); err != nil {
		return false
	}
	os.Remove(name)
	return true
}

func (s *Store) anonTempFile() (*os.File, error) {
	dir := filepath.Join(s.root, "tmp")
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, &os.PathError{Op: "open O_TMPFILE", Path: dir, Err: err}
	}
	return os.NewFile(uintptr(fd), dir+"/(anonymous)"), nil
}

// linkAnon gives an O_TMPFILE file the name dst.
func linkAnon(f *os.File, dst string) error {
	err := unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.FormatUint(uint64(f.Fd()), 10), unix.AT_FDCWD, dst, unix.AT_SYMLINK_FOLLOW)
	if err != nil {
		return &os.LinkError{Op: "link", Old: f.Name(), New: dst, Err: err}
	}
	return nil
}

// objectTemp is an object being written: an anonymous (O_TMPFILE) file, or a named
// temporary file in tmp/ when the filesystem cannot do that.
type objectTemp struct {
	f    *os.File
	anon bool
}

func (s *Store) newObjectTemp() (*objectTemp, error) {
	if s.anonTemp.Load() {
		if f, err := s.anonTempFile(); err == nil {
			return &objectTemp{f: f, anon: true}, nil
		}
	}
	f, err := s.TempFile("content-*")
	if err != nil {
		return nil, err
	}
	return &objectTemp{f: f}, nil
}

// discard drops an unfinished object.
func (t *objectTemp) discard() {
	t.f.Close()
	if !t.anon {
		os.Remove(t.f.Name())
	}
}

// publish closes the object and puts it at dst unless an object is already there (the
// same bytes, since objects are named by their hash).
func (t *objectTemp) publish(dst string) error {
	if !t.anon {
		if err := t.f.Close(); err != nil {
			os.Remove(t.f.Name())
			return err
		}
		if _, err := os.Lstat(dst); err == nil {
			os.Remove(t.f.Name())
			return nil
		}
		err := os.Rename(t.f.Name(), dst)
		if errors.Is(err, fs.ErrNotExist) {
			// A shard directory removed behind our back.
			if err = os.MkdirAll(filepath.Dir(dst), 0o755); err == nil {
				err = os.Rename(t.f.Name(), dst)
			}
		}
		if err != nil {
			os.Remove(t.f.Name())
		}
		return err
	}
	err := linkAnon(t.f, dst)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(filepath.Dir(dst), 0o755); err == nil {
			err = linkAnon(t.f, dst)
		}
	}
	cerr := t.f.Close()
	switch {
	case errors.Is(err, fs.ErrExist):
		return nil
	case err != nil:
		return err
	}
	return cerr
}

// Root returns the store directory.
func (s *Store) Root() string { return s.root }

// Path returns a path inside the store for auxiliary caches (e.g. "layers").
func (s *Store) Path(elem ...string) string {
	return filepath.Join(append([]string{s.root}, elem...)...)
}

// ObjectFile returns the file name of an object.
func (s *Store) ObjectFile(c Checksum, t ObjectType) string {
	return filepath.Join(s.root, filepath.FromSlash(ObjectPath(c, t)))
}

// Has reports whether the object exists (for content, also as a derived object).
func (s *Store) Has(c Checksum, t ObjectType) bool {
	if t == ObjFile {
		// In memory, so first: an in-place build asks this for every file.
		if _, ok := s.inPlace.get(c); ok {
			return true
		}
	}
	if s.hasFile(c, t) {
		return true
	}
	if t != ObjFile {
		return false
	}
	// A derived entry is only written for a stored base, and pruning keeps the base of
	// every entry it keeps: the entry's presence is enough (one stat, no parse; rebuilds
	// ask this for every relabelled file).
	_, err := os.Lstat(s.derivedPath(c))
	return err == nil
}

func (s *Store) hasFile(c Checksum, t ObjectType) bool {
	if s.objects != nil {
		// The relative path "xx/rest.type" is built in a stack buffer and passed to the
		// system call as it is: a build asks this for every object of the image, and
		// the strings of the obvious version were a tenth of a rebuild's allocations.
		var buf [2 + 1 + 2*len(Checksum{}) + 16]byte
		p := appendObjectRel(buf[:0], c, t)
		fd := s.objects.Fd()
		ok := existsAt(fd, append(p, 0))
		if !ok && t == ObjFile {
			ok = existsAt(fd, append(append(p, compressedSuffix...), 0))
		}
		runtime.KeepAlive(s.objects)
		return ok
	}
	_, err := os.Lstat(s.ObjectFile(c, t))
	if err != nil && t == ObjFile {
		_, err = os.Lstat(s.compressedFile(c))
	}
	return err == nil
}

// appendObjectRel appends c's path relative to the objects directory, "xx/rest.type".
func appendObjectRel(dst []byte, c Checksum, t ObjectType) []byte {
	var h [2 * len(Checksum{})]byte
	hex.Encode(h[:], c[:])
	dst = append(dst, h[:2]...)
	dst = append(dst, '/')
	dst = append(dst, h[2:]...)
	dst = append(dst, '.')
	return append(dst, t...)
}

// existsAt reports whether the NUL-terminated path p exists relative to the directory
// dirfd (faccessat F_OK).
func existsAt(dirfd uintptr, p []byte) bool {
	_, _, errno := syscall.Syscall6(unix.SYS_FACCESSAT, dirfd, uintptr(unsafe.Pointer(&p[0])), unix.F_OK, 0, 0, 0)
	return errno == 0
}

// TempFile creates a temporary file inside the store, on the same filesystem as the
// objects so that it can be renamed into place.
func (s *Store) TempFile(pattern string) (*os.File, error) {
	return os.CreateTemp(filepath.Join(s.root, "tmp"), pattern)
}

// WriteMetadata stores a metadata object (dirtree, dirmeta, commit, commitmeta) and
// returns its checksum. Commitmeta objects are named by their commit, so use
// WriteCommitMeta for them.
func (s *Store) WriteMetadata(t ObjectType, data []byte) (Checksum, error) {
	if t == ObjCommitMeta || t == ObjFile {
		return Checksum{}, fmt.Errorf("write %s object: not a self-named metadata object", t)
	}
	c := sha256Sum(data)
	return c, s.putBytes(c, t, data)
}

// WriteCommitMeta stores detached metadata for commit c.
func (s *Store) WriteCommitMeta(c Checksum, data []byte) error {
	return s.putBytes(c, ObjCommitMeta, data)
}

func (s *Store) putBytes(c Checksum, t ObjectType, data []byte) error {
	if t == ObjCommitMeta {
		// Named by its commit, not its bytes: replace whatever is there.
		dst := s.ObjectFile(c, t)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("write %s %s: %w", t, c, err)
		}
		if err := fsutil.WriteFileAtomic(dst, data); err != nil {
			return fmt.Errorf("write %s %s: %w", t, c, err)
		}
		return nil
	}
	if s.Has(c, t) {
		return nil
	}
	if err := s.writeObject(c, t, data); err != nil {
		return fmt.Errorf("write %s %s: %w", t, c, err)
	}
	return nil
}

// writeObject writes the complete bytes of a self-named object (their sha256 is c).
func (s *Store) writeObject(c Checksum, t ObjectType, data ...[]byte) error {
	return s.writeNew(s.ObjectFile(c, t), func(f *os.File) error {
		for _, b := range data {
			if _, err := f.Write(b); err != nil {
				return err
			}
		}
		return nil
	})
}

// writeNew has fill write a new object's file, then publishes it as dst.
func (s *Store) writeNew(dst string, fill func(*os.File) error) error {
	tmp, err := s.newObjectTemp()
	if err != nil {
		return err
	}
	if err := fill(tmp.f); err != nil {
		tmp.discard()
		return err
	}
	if !tmp.anon {
		if err := tmp.f.Chmod(0o644); err != nil {
			tmp.discard()
			return err
		}
	}
	return tmp.publish(dst)
}

// ReadMetadata reads a metadata object and checks its checksum (except commitmeta,
// which is named by its commit).
func (s *Store) ReadMetadata(t ObjectType, c Checksum) ([]byte, error) {
	f, err := os.Open(s.ObjectFile(c, t))
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", t, c, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxMetadataSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", t, c, err)
	}
	if len(data) > MaxMetadataSize {
		return nil, fmt.Errorf("read %s %s: larger than %d bytes", t, c, MaxMetadataSize)
	}
	if t != ObjCommitMeta && sha256Sum(data) != c {
		return nil, fmt.Errorf("read %s %s: checksum mismatch (store corrupted)", t, c)
	}
	return data, nil
}

// WriteContent streams a content object into the store while hashing it. For symlinks
// payload must be empty (nil is fine). It returns the content checksum and payload size.
func (s *Store) WriteContent(ctx context.Context, h FileHeader, payload io.Reader) (Checksum, int64, error) {
	if err := h.Validate(); err != nil {
		return Checksum{}, 0, fmt.Errorf("write content: %w", err)
	}
	prefix := ContentPrefix(h)
	if payload == nil {
		c, err := s.WriteContentBytes(h, nil)
		return c, 0, err
	}
	buf := s.getBuf()
	defer s.bufs.Put(buf)
	// The payload's first bytes say whether it is small (written plain, in one go) or
	// to be streamed (compressed when that is on).
	r := fsutil.ContextReader(ctx, payload)
	n, err := io.ReadFull(r, (*buf)[:compressMinPayload])
	head := (*buf)[:n]
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		c, err := s.WriteContentBytes(h, head)
		return c, int64(n), err
	case err != nil:
		return Checksum{}, 0, fmt.Errorf("write content: %w", err)
	case h.IsSymlink():
		return Checksum{}, 0, fmt.Errorf("write content: symlink with payload")
	}
	return s.streamContent(prefix, head, r, (*buf)[compressMinPayload:])
}

// streamContent writes a content object whose payload starts with head and goes on in
// r, hashing it as it goes; buf is a copy buffer.
func (s *Store) streamContent(prefix, head []byte, r io.Reader, buf []byte) (Checksum, int64, error) {
	tmp, err := s.newObjectTemp()
	if err != nil {
		return Checksum{}, 0, fmt.Errorf("write content: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.discard()
		}
	}()
	hash := sha256.New()
	hash.Write(prefix)
	compress := s.compress.Load()
	var bw *bufio.Writer
	var enc *zstd.Encoder
	w := io.Writer(tmp.f)
	if compress {
		bw = bufio.NewWriterSize(tmp.f, 64<<10)
		bw.Write(make([]byte, compressedHeaderSize)) // the payload size, known at the end
		bw.Write(prefix)
		enc = s.getEncoder(bw)
		defer s.putEncoder(enc)
		w = enc
	} else if _, err := tmp.f.Write(prefix); err != nil {
		return Checksum{}, 0, fmt.Errorf("write content: %w", err)
	}
	mw := io.MultiWriter(w, hash)
	if _, err := mw.Write(head); err != nil {
		return Checksum{}, 0, fmt.Errorf("write content: %w", err)
	}
	n, err := s.copyAhead(mw, r, buf)
	if err != nil {
		return Checksum{}, 0, fmt.Errorf("write content: %w", err)
	}
	n += int64(len(head))
	if compress {
		if err := finishCompressed(tmp.f, enc, bw, n); err != nil {
			return Checksum{}, 0, fmt.Errorf("write content: %w", err)
		}
	}
	var c Checksum
	hash.Sum(c[:0])
	dst := s.ObjectFile(c, ObjFile)
	if compress {
		dst = s.compressedFile(c)
	}
	done = true
	if err := tmp.publish(dst); err != nil {
		return Checksum{}, 0, fmt.Errorf("write content %s: %w", c, err)
	}
	s.noteWritten(c)
	return c, n, nil
}

// copyAhead copies r to w. What does not fit in buf is read on a second goroutine while
// w (hashing, compressing, writing the object file) works on what came before: a large
// file out of a tar stream is otherwise read, hashed and written by one goroutine.
func (s *Store) copyAhead(w io.Writer, r io.Reader, buf []byte) (int64, error) {
	n, err := io.ReadFull(r, buf)
	if n > 0 {
		if _, werr := w.Write(buf[:n]); werr != nil {
			return int64(n), werr
		}
	}
	switch err {
	case io.EOF, io.ErrUnexpectedEOF:
		return int64(n), nil
	case nil:
	default:
		return int64(n), err
	}
	ahead := fsutil.NewReadAhead(r, s.chunks, copyAheadDepth, nil)
	defer ahead.Close()
	m, err := io.Copy(w, ahead)
	return int64(n) + m, err
}

// copyAheadDepth is how many copy buffers a large payload is read ahead.
const copyAheadDepth = 4

// WriteContentBytes stores a content object whose payload is in memory. It hashes first
// and writes nothing when the store already has the object.
func (s *Store) WriteContentBytes(h FileHeader, payload []byte) (Checksum, error) {
	if err := h.Validate(); err != nil {
		return Checksum{}, fmt.Errorf("write content: %w", err)
	}
	if h.IsSymlink() && len(payload) != 0 {
		return Checksum{}, fmt.Errorf("write content: symlink with %d bytes of payload", len(payload))
	}
	prefix := ContentPrefix(h)
	c := ContentChecksum(h, payload)
	if s.Has(c, ObjFile) {
		return c, nil
	}
	if err := s.writeContentObject(c, prefix, payload); err != nil {
		return Checksum{}, fmt.Errorf("write content %s: %w", c, err)
	}
	return c, nil
}

// writeContentObject writes content object c from its prefix and payload, compressed
// when that is on and the payload large enough to gain from it.
func (s *Store) writeContentObject(c Checksum, prefix, payload []byte) error {
	var err error
	if s.compress.Load() && len(payload) >= compressMinPayload {
		err = s.writeCompressed(c, prefix, payload)
	} else {
		err = s.writeObject(c, ObjFile, prefix, payload)
	}
	if err == nil {
		s.noteWritten(c)
	}
	return err
}

// ContentObject is an open content object.
type ContentObject struct {
	Header FileHeader
	Size   int64    // payload size
	f      *os.File // nil for an in-place object without payload
	br     *bufio.Reader
	s      *Store
	check  *payloadCheck // in-place objects: the payload is rehashed as it is read
	z      *zReader      // compressed objects: the payload is decompressed from br
	closed bool
}

// Read reads the payload.
func (o *ContentObject) Read(p []byte) (int, error) {
	switch {
	case o.closed:
		return 0, os.ErrClosed
	case o.br == nil:
		return 0, io.EOF // no payload
	}
	if o.z != nil {
		return o.z.Read(p)
	}
	n, err := o.br.Read(p)
	if o.check == nil {
		return n, err
	}
	if cerr := o.check.update(p[:n], err == io.EOF); cerr != nil {
		return n, cerr
	}
	return n, err
}

// Close closes the object; its reader goes back to the store for the next object (an
// export opens every object once, and a fresh 64 KiB buffer each time was most of its
// garbage).
func (o *ContentObject) Close() error {
	if o.closed {
		return os.ErrClosed
	}
	o.closed = true
	if o.z != nil {
		o.s.putZReader(o.z)
		o.z = nil
	}
	if o.br != nil {
		o.br.Reset(nil)
		o.s.readers.Put(o.br)
		o.br = nil
	}
	if o.f == nil {
		return nil
	}
	return o.f.Close()
}

// OpenContent opens a content object, stored or derived; read its payload from the
// returned object.
func (s *Store) OpenContent(c Checksum) (*ContentObject, error) {
	if o, ok := s.inPlace.get(c); ok {
		return s.openInPlace(c, o)
	}
	obj, err := s.openFile(c)
	if errors.Is(err, fs.ErrNotExist) {
		base, h, derr := s.derived(c)
		if derr != nil {
			if errors.Is(derr, fs.ErrNotExist) {
				return nil, err
			}
			return nil, fmt.Errorf("open content %s: %w", c, derr)
		}
		obj, err := s.openFile(base)
		if err != nil {
			return nil, fmt.Errorf("open derived content %s: %w", c, err)
		}
		obj.Header = h
		return obj, nil
	}
	return obj, err
}

// openFile opens a content object stored as a file, plain or compressed.
func (s *Store) openFile(c Checksum) (*ContentObject, error) {
	compressed := false
	f, err := os.Open(s.ObjectFile(c, ObjFile))
	if errors.Is(err, fs.ErrNotExist) {
		f, err = os.Open(s.compressedFile(c))
		compressed = true
	}
	if err != nil {
		return nil, fmt.Errorf("open content %s: %w", c, err)
	}
	obj := s.wrapFile(f)
	if err := obj.parseHeader(compressed); err != nil {
		obj.Close()
		return nil, fmt.Errorf("open content %s: %w", c, err)
	}
	return obj, nil
}

// wrapFile returns an object reading f through one of the store's pooled buffers.
func (s *Store) wrapFile(f *os.File) *ContentObject {
	obj := s.wrapReader(f)
	obj.f = f
	return obj
}

// wrapReader returns an object reading r through one of the store's pooled buffers.
func (s *Store) wrapReader(r io.Reader) *ContentObject {
	br, _ := s.readers.Get().(*bufio.Reader)
	if br == nil {
		br = bufio.NewReaderSize(r, 64<<10)
	} else {
		br.Reset(r)
	}
	return &ContentObject{br: br, s: s}
}

// parseHeader reads a stored object's header, leaving the reader at its payload.
func (o *ContentObject) parseHeader(compressed bool) error {
	st, err := o.f.Stat()
	if err != nil {
		return err
	}
	br := o.br
	skip := int64(0)
	if compressed {
		var size [compressedHeaderSize]byte
		if _, err := io.ReadFull(br, size[:]); err != nil {
			return fmt.Errorf("read payload size: %w", err)
		}
		o.Size = int64(binary.BigEndian.Uint64(size[:]))
		if o.Size < 0 {
			return fmt.Errorf("payload size %d out of range", uint64(o.Size))
		}
		skip = compressedHeaderSize
	}
	var pre [8]byte
	if _, err := io.ReadFull(br, pre[:]); err != nil {
		return fmt.Errorf("read header length: %w", err)
	}
	hlen := int64(binary.BigEndian.Uint32(pre[:4]))
	if hlen > MaxXattrsSize+4096 || skip+hlen+8 > st.Size() {
		return fmt.Errorf("header length %d out of range", hlen)
	}
	hb := make([]byte, hlen)
	if _, err := io.ReadFull(br, hb); err != nil {
		return fmt.Errorf("read header: %w", err)
	}
	if o.Header, err = ParseFileHeader(hb); err != nil {
		return err
	}
	if !compressed {
		o.Size = st.Size() - 8 - hlen
		return nil
	}
	o.z, err = o.s.newZReader(br, o.Size)
	return err
}

// VerifyContent rereads a content object (stored or derived) and checks its checksum.
func (s *Store) VerifyContent(c Checksum) error {
	obj, err := s.OpenContent(c)
	if err != nil {
		return fmt.Errorf("verify content %s: %w", c, err)
	}
	defer obj.Close()
	h := NewContentHash(obj.Header)
	if _, err := io.Copy(h, obj); err != nil {
		return fmt.Errorf("verify content %s: %w", c, err)
	}
	var got Checksum
	h.Sum(got[:0])
	if got != c {
		return fmt.Errorf("verify content %s: stored bytes hash to %s", c, got)
	}
	return nil
}

// Sync flushes the store's filesystem once, instead of an fsync per object.
func (s *Store) Sync() error {
	f, err := os.Open(s.root)
	if err != nil {
		return fmt.Errorf("sync store: %w", err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("sync store: %w", err)
	}
	return nil
}

// Derived content objects share the payload of another content object and differ in
// the header only (SELinux relabelling changes nothing else). The store keeps the
// header and the base object's checksum instead of a second copy of the payload:
// derived/xx/<rest> holds the base checksum, a newline, and the header in ostree's
// encoding. OpenContent and Has treat them like stored objects.
const derivedDir = "derived"

// maxDerivedEntry bounds a derived entry: a checksum and a header with its xattrs.
const maxDerivedEntry = 65 + MaxXattrsSize + 4096

func (s *Store) derivedPath(c Checksum) string {
	h := c.String()
	return filepath.Join(s.root, derivedDir, h[:2], h[2:])
}

// AddDerived records that content object c is base's payload with header h. The
// caller computed c (ContentChecksum of h and the payload); base must be stored as a
// file (the entry is then written atomically) or be an in-place object (c is then one
// too).
func (s *Store) AddDerived(c, base Checksum, h FileHeader) error {
	if err := h.Validate(); err != nil {
		return fmt.Errorf("derive %s: %w", c, err)
	}
	if !s.hasFile(base, ObjFile) {
		// An in-place base gives an in-place object: an entry on disk would name a
		// payload the store does not keep.
		if o, ok := s.inPlace.get(base); ok {
			o.header = &h
			s.inPlace.put(c, o)
			return nil
		}
		return fmt.Errorf("derive %s: base object %s is not stored", c, base)
	}
	s.pin(base) // a transient build must not drop it while c may still be read
	p := s.derivedPath(c)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("derive %s: %w", c, err)
	}
	data := append([]byte(base.String()+"\n"), h.Marshal()...)
	if err := fsutil.WriteFileAtomic(p, data); err != nil {
		return fmt.Errorf("derive %s: %w", c, err)
	}
	return nil
}

// derived reads the entry of derived object c.
func (s *Store) derived(c Checksum) (Checksum, FileHeader, error) {
	f, err := os.Open(s.derivedPath(c))
	if err != nil {
		return Checksum{}, FileHeader{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxDerivedEntry+1))
	if err != nil {
		return Checksum{}, FileHeader{}, err
	}
	if len(b) < 65 || len(b) > maxDerivedEntry || b[64] != '\n' {
		return Checksum{}, FileHeader{}, fmt.Errorf("derived entry of %s is damaged", c)
	}
	base, err := ParseChecksum(string(b[:64]))
	if err != nil {
		return Checksum{}, FileHeader{}, fmt.Errorf("derived entry of %s: %w", c, err)
	}
	h, err := ParseFileHeader(b[65:])
	if err != nil {
		return Checksum{}, FileHeader{}, fmt.Errorf("derived entry of %s: %w", c, err)
	}
	return base, h, nil
}

// PruneDerived removes derived entries last modified before cutoff that keep does not
// claim, and calls keepBase with the base of every remaining entry.
func (s *Store) PruneDerived(ctx context.Context, cutoff time.Time, dryRun bool, keep func(Checksum) bool, keepBase func(Checksum)) (fsutil.PruneStats, error) {
	dir := filepath.Join(s.root, derivedDir)
	parse := func(p string) (Checksum, bool) {
		d, name := filepath.Split(p)
		c, err := ParseChecksum(filepath.Base(filepath.Clean(d)) + name)
		return c, err == nil
	}
	st, err := fsutil.PruneFiles(ctx, dir, cutoff, dryRun, func(p string) bool {
		c, ok := parse(p)
		return !ok || keep(c)
	})
	if err != nil {
		return st, err
	}
	err = fsutil.WalkFiles(ctx, dir, func(p string, fi fs.FileInfo) error {
		c, ok := parse(p)
		if !ok || (fi.ModTime().Before(cutoff) && !keep(c)) {
			return nil // pruned (or would be, on a dry run)
		}
		if base, _, err := s.derived(c); err == nil {
			keepBase(base)
		}
		return nil
	})
	return st, err
}
