package fsutil

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// failAfter returns data then err.
type failAfter struct {
	r   io.Reader
	err error
}

func (f *failAfter) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		err = f.err
	}
	return n, err
}

func TestReadAhead(t *testing.T) {
	errBroken := errors.New("disk on fire")
	data := make([]byte, 100_003)
	rand.New(rand.NewSource(1)).Read(data)
	tests := []struct {
		name      string
		size      int
		chunk     int
		depth     int
		oneByte   bool  // the source returns one byte per Read
		fail      error // the source's error after its data (nil: io.EOF)
		viaWriteT bool  // read with io.Copy (WriteTo) instead of Read
	}{
		{name: "empty", size: 0, chunk: 16, depth: 2},
		{name: "shorter than a chunk", size: 10, chunk: 16, depth: 2},
		{name: "exactly one chunk", size: 16, chunk: 16, depth: 2},
		{name: "many chunks", size: len(data), chunk: 4096, depth: 4},
		{name: "many chunks, depth 1", size: len(data), chunk: 1000, depth: 1},
		{name: "one byte per read", size: 5000, chunk: 512, depth: 3, oneByte: true},
		{name: "WriteTo", size: len(data), chunk: 4096, depth: 2, viaWriteT: true},
		{name: "error after data", size: 9000, chunk: 4096, depth: 2, fail: errBroken},
		{name: "error after data, WriteTo", size: 9000, chunk: 4096, depth: 2, fail: errBroken, viaWriteT: true},
		{name: "error at once", size: 0, chunk: 4096, depth: 2, fail: errBroken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var src io.Reader = bytes.NewReader(data[:tc.size])
			if tc.oneByte {
				src = iotest.OneByteReader(src)
			}
			if tc.fail != nil {
				src = &failAfter{r: src, err: tc.fail}
			}
			tap := sha256.New()
			a := NewReadAhead(src, NewChunkPool(tc.chunk), tc.depth, tap)
			defer a.Close()
			var got bytes.Buffer
			var err error
			if tc.viaWriteT {
				_, err = io.Copy(&got, a)
			} else {
				_, err = io.Copy(&got, struct{ io.Reader }{a}) // Read only
			}
			if tc.fail != nil {
				require.ErrorIs(t, err, tc.fail)
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, data[:tc.size], got.Bytes(), "bytes in order, none lost or repeated")
			want := sha256.Sum256(data[:tc.size])
			assert.Equal(t, want[:], tap.Sum(nil), "the tap saw every byte before the end was reported")
			// The end is sticky.
			n, err := a.Read(make([]byte, 10))
			assert.Zero(t, n)
			assert.Error(t, err)
		})
	}
}

// blockingReader serves a few bytes, then blocks until released.
type blockingReader struct {
	release chan struct{}
	served  bool
}

func (b *blockingReader) Read(p []byte) (int, error) {
	if !b.served {
		b.served = true
		return copy(p, "abc"), nil
	}
	<-b.release
	return 0, io.EOF
}

func TestReadAheadCloseEarly(t *testing.T) {
	t.Run("unread chunks are dropped and the goroutine ends", func(t *testing.T) {
		big := bytes.NewReader(make([]byte, 1<<20))
		a := NewReadAhead(big, NewChunkPool(1024), 4, nil)
		buf := make([]byte, 10)
		_, err := a.Read(buf)
		require.NoError(t, err)
		require.NoError(t, a.Close())
		require.NoError(t, a.Close(), "closing twice is harmless")
		_, err = a.Read(buf)
		assert.ErrorIs(t, err, errReadAheadClosed)
		select {
		case <-a.done:
		default:
			t.Fatal("Close returned before the reading goroutine ended")
		}
		assert.Greater(t, big.Len(), 0, "reading stopped before the end: at most depth chunks ahead")
	})
	t.Run("Close waits for a read in progress", func(t *testing.T) {
		src := &blockingReader{release: make(chan struct{})}
		a := NewReadAhead(src, NewChunkPool(2), 2, nil)
		got := make([]byte, 2)
		_, err := io.ReadFull(a, got)
		require.NoError(t, err)
		assert.Equal(t, "ab", string(got))
		closed := make(chan struct{})
		go func() { a.Close(); close(closed) }()
		select {
		case <-closed:
			t.Fatal("Close returned while the goroutine was still reading the source")
		case <-time.After(50 * time.Millisecond):
		}
		close(src.release)
		<-closed
	})
}
