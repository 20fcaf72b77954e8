package ostree

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// storeModes runs a test with O_TMPFILE objects (when the filesystem has them) and with
// the named temporary file fallback.
func storeModes(t *testing.T, fn func(t *testing.T, s *Store)) {
	for _, anon := range []bool{true, false} {
		name := map[bool]string{true: "tmpfile", false: "named"}[anon]
		t.Run(name, func(t *testing.T) {
			s := newStore(t)
			if anon && !s.anonTemp.Load() {
				t.Skip("no O_TMPFILE on this filesystem")
			}
			s.anonTemp.Store(anon)
			fn(t, s)
			assert.Empty(t, tmpEntries(t, s), "no temporary files left")
		})
	}
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

// TestAsyncWriterMatchesStore: every kind of object written through an AsyncWriter gets
// the checksum the synchronous writers compute and verifies on disk.
func TestAsyncWriterMatchesStore(t *testing.T) {
	storeModes(t, func(t *testing.T, s *Store) {
		reg := FileHeader{UID: 1, GID: 2, Mode: ModeRegular | 0o644, Xattrs: Xattrs{{"user.x", []byte("1")}}}
		link := FileHeader{Mode: ModeSymlink | 0o777, Target: "../target"}
		small := randomBytes(t, 3000)
		big := randomBytes(t, 3<<20) // over SmallContent: streamed
		cases := []struct {
			name    string
			h       FileHeader
			payload []byte
		}{
			{"empty", reg, nil},
			{"small", reg, small},
			{"exactly small limit", reg, big[:1<<20]},
			{"big", reg, big},
			{"symlink", link, nil},
		}
		w := s.NewAsyncWriter(context.Background(), AsyncOptions{SmallContent: 1 << 20, MaxBuffered: 1})
		var want []Checksum
		for _, c := range cases {
			sum, n, err := w.WriteContent(c.h, bytes.NewReader(c.payload), int64(len(c.payload)))
			require.NoError(t, err, c.name)
			assert.Equal(t, int64(len(c.payload)), n, c.name)
			assert.Equal(t, ContentChecksum(c.h, c.payload), sum, c.name)
			want = append(want, sum)
		}
		meta := DirMeta{Mode: ModeDir | 0o755}.Marshal()
		msum, err := w.WriteMetadata(ObjDirMeta, meta)
		require.NoError(t, err)
		assert.Equal(t, mustSum(t, csDirMeta755), msum)
		_, err = w.WriteMetadata(ObjFile, meta)
		assert.ErrorContains(t, err, "not a self-named metadata object")
		require.NoError(t, w.Close())
		require.NoError(t, w.Close(), "closing twice")

		for i, sum := range want {
			require.NoError(t, s.VerifyContent(sum), cases[i].name)
			obj, err := s.OpenContent(sum)
			require.NoError(t, err)
			got, err := io.ReadAll(obj)
			obj.Close()
			require.NoError(t, err)
			assert.Equal(t, len(cases[i].payload), len(got), cases[i].name)
			assert.Equal(t, cases[i].h, obj.Header, cases[i].name)
		}
		back, err := s.ReadMetadata(ObjDirMeta, msum)
		require.NoError(t, err)
		assert.Equal(t, meta, back)
	})
}

// TestAsyncWriterSkipsExisting: an object the store has is neither rewritten nor
// replaced (same inode), and duplicates within one writer are written once.
func TestAsyncWriterSkipsExisting(t *testing.T) {
	storeModes(t, func(t *testing.T, s *Store) {
		h := FileHeader{Mode: ModeRegular | 0o644}
		sum, err := s.WriteContentBytes(h, []byte("hello"))
		require.NoError(t, err)
		assert.Equal(t, ContentChecksum(h, []byte("hello")), sum)
		ino := func(c Checksum) uint64 {
			st, err := os.Stat(s.ObjectFile(c, ObjFile))
			require.NoError(t, err)
			return st.Sys().(*syscall.Stat_t).Ino
		}
		before := ino(sum)
		again, err := s.WriteContentBytes(h, []byte("hello"))
		require.NoError(t, err)
		assert.Equal(t, sum, again)
		w := s.NewAsyncWriter(context.Background(), AsyncOptions{})
		for range 10 {
			got, _, err := w.WriteContent(h, strings.NewReader("hello"), 5)
			require.NoError(t, err)
			assert.Equal(t, sum, got)
			_, _, err = w.WriteContent(h, strings.NewReader("other"), 5)
			require.NoError(t, err)
		}
		require.NoError(t, w.Close())
		assert.Equal(t, before, ino(sum))
		require.NoError(t, s.VerifyContent(ContentChecksum(h, []byte("other"))))
	})
}

func TestAsyncWriterErrors(t *testing.T) {
	h := FileHeader{Mode: ModeRegular | 0o644}
	t.Run("short payload", func(t *testing.T) {
		s := newStore(t)
		w := s.NewAsyncWriter(context.Background(), AsyncOptions{})
		_, n, err := w.WriteContent(h, strings.NewReader("abc"), 10)
		assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
		assert.ErrorContains(t, err, "payload ended after 3 of 10 bytes")
		assert.Equal(t, int64(3), n)
		require.NoError(t, w.Close(), "nothing was queued")
	})
	t.Run("invalid header", func(t *testing.T) {
		s := newStore(t)
		w := s.NewAsyncWriter(context.Background(), AsyncOptions{})
		_, _, err := w.WriteContent(FileHeader{Mode: ModeDir | 0o755}, nil, 0)
		assert.ErrorContains(t, err, "not a regular file or symlink")
		_, _, err = w.WriteContent(FileHeader{Mode: ModeSymlink | 0o777, Target: "x"}, strings.NewReader("a"), 1)
		assert.ErrorContains(t, err, "symlink with 1 bytes of payload")
		require.NoError(t, w.Close())
	})
	t.Run("background failure reaches the caller", func(t *testing.T) {
		s := newStore(t)
		s.anonTemp.Store(false)
		// Nowhere to create temporary files.
		require.NoError(t, os.RemoveAll(s.Path("tmp")))
		require.NoError(t, os.WriteFile(s.Path("tmp"), nil, 0o644))
		w := s.NewAsyncWriter(context.Background(), AsyncOptions{})
		var err error
		for i := 0; i < 1000 && err == nil; i++ {
			_, _, err = w.WriteContent(h, strings.NewReader(strings.Repeat("x", i)), int64(i))
		}
		cerr := w.Close()
		require.Error(t, cerr)
		assert.ErrorContains(t, cerr, "write file")
		if err != nil {
			assert.Equal(t, cerr, err, "a later call returns the background error")
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		s := newStore(t)
		ctx, cancel := context.WithCancel(context.Background())
		w := s.NewAsyncWriter(ctx, AsyncOptions{})
		cancel()
		_, _, err := w.WriteContent(h, strings.NewReader("abc"), 3)
		if err == nil {
			err = w.Close()
		}
		assert.ErrorIs(t, err, context.Canceled)
		w.Close()
	})
}

// TestAsyncWriterBoundedMemory writes many objects through a tiny budget: the producer
// waits for the workers instead of buffering everything, and every object arrives.
func TestAsyncWriterBoundedMemory(t *testing.T) {
	s := newStore(t)
	h := FileHeader{Mode: ModeRegular | 0o644}
	w := s.NewAsyncWriter(context.Background(), AsyncOptions{Workers: 2, SmallContent: 64 << 10, MaxBuffered: 1})
	payload := randomBytes(t, 64<<10)
	var sums []Checksum
	for i := range 200 {
		p := append([]byte{byte(i), byte(i >> 8)}, payload[:i*300]...)
		sum, _, err := w.WriteContent(h, bytes.NewReader(p), int64(len(p)))
		require.NoError(t, err)
		sums = append(sums, sum)
	}
	require.NoError(t, w.Close())
	for _, sum := range sums {
		require.NoError(t, s.VerifyContent(sum))
	}
}
