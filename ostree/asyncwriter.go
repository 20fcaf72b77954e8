package ostree

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"sync"

	"github.com/rechunker-dev/rechunker/internal/fsutil"
	"golang.org/x/sync/semaphore"
)

// AsyncOptions configure an AsyncWriter; zero values mean the defaults.
type AsyncOptions struct {
	// Workers is the number of goroutines doing file-system work (default 4: object
	// creation mostly waits on the kernel, so a few more than the cores overlap well).
	Workers int
	// SmallContent is the largest payload buffered in memory and written in the
	// background (default 256 KiB); larger payloads are streamed by the caller.
	SmallContent int64
	// MaxBuffered bounds the bytes held by queued writes (default 8 MiB: enough to keep
	// the workers busy; more only raises the peak memory).
	MaxBuffered int64
}

// AsyncWriter stores objects for a producer that reads them sequentially (a tar stream, a
// tree walk) and moves the file-system work to background goroutines. Creating an inode
// costs more than hashing the bytes that go in it, so a single goroutine doing both leaves
// the other cores idle. Checksums are computed by the caller's goroutine and returned at
// once; the objects are in the store only after Close returns nil. An error of a
// background write is returned by the next call and by Close. Memory stays bounded: small
// payloads are buffered up to MaxBuffered bytes in total, large ones are streamed.
//
// Each object is written at most once per writer and never when the store already has it.
type AsyncWriter struct {
	s      *Store
	ctx    context.Context
	o      AsyncOptions
	jobs   chan asyncJob
	budget *semaphore.Weighted
	pools  [32]sync.Pool // *[]byte by capacity class (power of two)
	wg     sync.WaitGroup

	mu     sync.Mutex
	seen   map[objectKey]struct{} // queued, not yet written
	err    error
	closed bool
}

type objectKey struct {
	sum Checksum
	t   ObjectType
}

type asyncJob struct {
	key    objectKey
	buf    *[]byte
	n      int // bytes of *buf in use
	weight int64
	class  int
}

const minBufClass = 12 // 4 KiB

// NewAsyncWriter starts the writer's goroutines; Close stops them.
func (s *Store) NewAsyncWriter(ctx context.Context, o AsyncOptions) *AsyncWriter {
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.SmallContent <= 0 {
		o.SmallContent = 256 << 10
	}
	if o.MaxBuffered <= 0 {
		o.MaxBuffered = 8 << 20
	}
	if limit := int64(1) << (bits.Len64(uint64(o.SmallContent+MaxXattrsSize+4096)) + 1); o.MaxBuffered < limit {
		// One buffer must always fit, or Write would wait forever.
		o.MaxBuffered = limit
	}
	w := &AsyncWriter{
		s: s, ctx: ctx, o: o,
		jobs:   make(chan asyncJob, 256),
		budget: semaphore.NewWeighted(o.MaxBuffered),
		seen:   map[objectKey]struct{}{},
	}
	for range o.Workers {
		w.wg.Add(1)
		go w.work()
	}
	return w
}

func (w *AsyncWriter) work() {
	defer w.wg.Done()
	for j := range w.jobs {
		if w.failed() == nil {
			if err := w.write(j); err != nil {
				w.fail(err)
			}
		}
		w.pools[j.class].Put(j.buf)
		w.budget.Release(j.weight)
		// Once written the object is in the store, and write skips what the store has:
		// seen only needs the objects in flight, so it stays small however many files
		// the tree has.
		w.mu.Lock()
		delete(w.seen, j.key)
		w.mu.Unlock()
	}
}

func (w *AsyncWriter) write(j asyncJob) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	if w.s.Has(j.key.sum, j.key.t) {
		return nil
	}
	data := (*j.buf)[:j.n]
	var err error
	if j.key.t == ObjFile {
		// The buffer holds the object's prefix (header length, header) then the payload.
		split := 8 + int(binary.BigEndian.Uint32(data[:4]))
		err = w.s.writeContentObject(j.key.sum, data[:split], data[split:])
	} else {
		err = w.s.writeObject(j.key.sum, j.key.t, data)
	}
	if err != nil {
		return fmt.Errorf("write %s %s: %w", j.key.t, j.key.sum, err)
	}
	return nil
}

func (w *AsyncWriter) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}

func (w *AsyncWriter) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// claim reports whether k still needs writing by this writer, and marks it.
func (w *AsyncWriter) claim(k objectKey) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.seen[k]; ok {
		return false
	}
	w.seen[k] = struct{}{}
	return true
}

// buffer takes a buffer of at least n bytes from the budget.
func (w *AsyncWriter) buffer(n int) (asyncJob, error) {
	class := bits.Len(uint(n - 1))
	if class < minBufClass {
		class = minBufClass
	}
	weight := int64(1) << class
	if err := w.budget.Acquire(w.ctx, weight); err != nil {
		return asyncJob{}, err
	}
	b, _ := w.pools[class].Get().(*[]byte)
	if b == nil {
		s := make([]byte, weight)
		b = &s
	}
	return asyncJob{buf: b, n: n, weight: weight, class: class}, nil
}

func (w *AsyncWriter) release(j asyncJob) {
	w.pools[j.class].Put(j.buf)
	w.budget.Release(j.weight)
}

func (w *AsyncWriter) queue(j asyncJob) error {
	if !w.claim(j.key) {
		w.release(j)
		return nil
	}
	select {
	case w.jobs <- j:
		return nil
	case <-w.ctx.Done():
		w.release(j)
		return w.ctx.Err()
	}
}

// WriteContent stores a content object like Store.WriteContent. size is the payload
// length the caller expects (a tar header's size); a payload of up to SmallContent bytes
// is read into memory and written in the background, anything else (or size < 0) is
// streamed now. It returns the checksum and the number of payload bytes read; a payload
// shorter than size is an error.
func (w *AsyncWriter) WriteContent(h FileHeader, payload io.Reader, size int64) (Checksum, int64, error) {
	if err := w.failed(); err != nil {
		return Checksum{}, 0, err
	}
	if size < 0 || size > w.o.SmallContent {
		return w.s.WriteContent(w.ctx, h, payload)
	}
	if err := h.Validate(); err != nil {
		return Checksum{}, 0, fmt.Errorf("write content: %w", err)
	}
	if h.IsSymlink() && size != 0 {
		return Checksum{}, 0, fmt.Errorf("write content: symlink with %d bytes of payload", size)
	}
	prefix := ContentPrefix(h)
	j, err := w.buffer(len(prefix) + int(size))
	if err != nil {
		return Checksum{}, 0, err
	}
	buf := (*j.buf)[:j.n]
	copy(buf, prefix)
	if size > 0 {
		n, err := io.ReadFull(fsutil.ContextReader(w.ctx, payload), buf[len(prefix):])
		if err != nil {
			w.release(j)
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			if err == io.ErrUnexpectedEOF {
				err = fmt.Errorf("payload ended after %d of %d bytes: %w", n, size, err)
			}
			return Checksum{}, int64(n), fmt.Errorf("write content: %w", err)
		}
	}
	j.key = objectKey{sum: sha256.Sum256(buf), t: ObjFile}
	if err := w.queue(j); err != nil {
		return Checksum{}, 0, err
	}
	return j.key.sum, size, nil
}

// WriteMetadata queues a metadata object like Store.WriteMetadata (it implements
// MetadataWriter, so Tree.Finalize can use it). data is copied.
func (w *AsyncWriter) WriteMetadata(t ObjectType, data []byte) (Checksum, error) {
	if t == ObjCommitMeta || t == ObjFile {
		return Checksum{}, fmt.Errorf("write %s object: not a self-named metadata object", t)
	}
	if err := w.failed(); err != nil {
		return Checksum{}, err
	}
	sum := Checksum(sha256.Sum256(data))
	k := objectKey{sum: sum, t: t}
	w.mu.Lock()
	_, dup := w.seen[k]
	w.mu.Unlock()
	if dup {
		return sum, nil
	}
	if int64(len(data)) > w.o.SmallContent {
		return sum, w.s.putBytes(sum, t, data)
	}
	j, err := w.buffer(len(data))
	if err != nil {
		return Checksum{}, err
	}
	copy(*j.buf, data)
	j.key = k
	if err := w.queue(j); err != nil {
		return Checksum{}, err
	}
	return sum, nil
}

// Close waits for every queued write and returns the first error. It must be called,
// also after an error, to stop the goroutines; calling it again returns the same result.
// The writer must not be used after Close.
func (w *AsyncWriter) Close() error {
	w.mu.Lock()
	closed := w.closed
	w.closed = true
	w.mu.Unlock()
	if !closed {
		close(w.jobs)
	}
	w.wg.Wait()
	return w.failed()
}
