package fsutil

import (
	"errors"
	"io"
	"sync"
)

// ReadAhead reads a source on its own goroutine, up to depth chunks ahead of the caller,
// so that reading (and whatever tap does with the bytes, e.g. hashing) overlaps the
// caller's work on what was already read. A sequential pipeline (read a layer, hash it,
// parse it, write objects) otherwise keeps one core busy and the other idle.
//
// The source is used only by the ReadAhead's goroutine until Close returns, so a reader
// that is not safe for concurrent use (a tar entry) may be handed over and used again
// after Close (at the end of what it had to give, or, after an early Close, at an
// unknown position). Memory is at most depth chunks, allocated as needed.
type ReadAhead struct {
	pool   *ChunkPool
	chunks chan raChunk
	free   chan []byte
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once

	cur []byte // unread part of the current chunk
	buf []byte // the current chunk's buffer, returned to free once read
	err error  // sticky: the source's error after its last bytes
}

type raChunk struct {
	buf []byte
	n   int
	err error
}

// errReadAheadClosed is returned by Read after Close.
var errReadAheadClosed = errors.New("read-ahead reader is closed")

// ChunkPool lends equally sized buffers to ReadAheads, so that one reader after
// another (a file after a file) reuses them instead of allocating.
type ChunkPool struct {
	size int
	p    sync.Pool // *[]byte
}

// NewChunkPool returns a pool of buffers of size bytes.
func NewChunkPool(size int) *ChunkPool { return &ChunkPool{size: size} }

func (c *ChunkPool) get() []byte {
	if b, ok := c.p.Get().(*[]byte); ok {
		return *b
	}
	return make([]byte, c.size)
}

func (c *ChunkPool) put(b []byte) {
	b = b[:cap(b)]
	c.p.Put(&b)
}

// NewReadAhead starts reading r in chunks of the pool's size. tap, if not nil, sees every
// chunk (on the reading goroutine, before the caller does) and must not fail; it is
// finished with all bytes read so far once Read returns the source's error (io.EOF).
// Close must be called, also after io.EOF: it returns the buffers to the pool.
func NewReadAhead(r io.Reader, pool *ChunkPool, depth int, tap io.Writer) *ReadAhead {
	a := &ReadAhead{
		pool:   pool,
		chunks: make(chan raChunk, depth),
		free:   make(chan []byte, depth),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go a.run(r, depth, tap)
	return a
}

func (a *ReadAhead) run(r io.Reader, depth int, tap io.Writer) {
	defer close(a.done)
	allocated := 0
	for {
		var buf []byte
		select {
		case buf = <-a.free:
		default:
			if allocated < depth {
				allocated++
				buf = a.pool.get()
				break
			}
			select {
			case buf = <-a.free:
			case <-a.stop:
				return
			}
		}
		n, err := fill(r, buf)
		if n > 0 && tap != nil {
			tap.Write(buf[:n])
		}
		select {
		case a.chunks <- raChunk{buf: buf, n: n, err: err}:
		case <-a.stop:
			return
		}
		if err != nil {
			return
		}
	}
}

// fill reads until buf is full or r fails; it returns the error with the bytes before it.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// next makes the next chunk current; it returns false with the error to report when
// there is none.
func (a *ReadAhead) next() error {
	if a.buf != nil {
		a.free <- a.buf // never blocks: free holds at most depth buffers
		a.buf = nil
	}
	for a.err == nil {
		select {
		case c := <-a.chunks:
			a.buf, a.cur, a.err = c.buf, c.buf[:c.n], c.err
			if len(a.cur) > 0 {
				return nil
			}
		case <-a.done:
			// Closed, or the goroutine stopped after its last chunk: take that first.
			select {
			case c := <-a.chunks:
				a.buf, a.cur, a.err = c.buf, c.buf[:c.n], c.err
				if len(a.cur) > 0 {
					return nil
				}
			default:
				a.err = errReadAheadClosed
			}
		}
	}
	return a.err
}

// Read reads what the goroutine read, in order, then the source's error.
func (a *ReadAhead) Read(p []byte) (int, error) {
	if len(a.cur) == 0 {
		if err := a.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, a.cur)
	a.cur = a.cur[n:]
	return n, nil
}

// WriteTo hands whole chunks to w (io.Copy uses it), saving a copy per chunk.
func (a *ReadAhead) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if len(a.cur) == 0 {
			if err := a.next(); err != nil {
				if err == io.EOF {
					err = nil
				}
				return total, err
			}
		}
		n, err := w.Write(a.cur)
		total += int64(n)
		a.cur = a.cur[n:]
		if err != nil {
			return total, err
		}
	}
}

// Close stops the goroutine and waits until it no longer uses the source. Unread chunks
// are dropped. It is safe to call more than once.
func (a *ReadAhead) Close() error {
	a.once.Do(func() {
		close(a.stop)
		<-a.done
		// Every buffer is now here: the current one, unread chunks, free ones.
		if a.buf != nil {
			a.pool.put(a.buf)
		}
		a.buf, a.cur, a.err = nil, nil, errReadAheadClosed
		for {
			select {
			case c := <-a.chunks:
				a.pool.put(c.buf)
			case b := <-a.free:
				a.pool.put(b)
			default:
				return
			}
		}
	})
	<-a.done
	return nil
}
