package ostree

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// payloadOf returns n bytes, half text and half noise, so compression does something.
func payloadOf(n int) []byte {
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	b := make([]byte, n)
	for i := range b {
		if i%2 == 0 {
			b[i] = byte('a' + i%7)
		} else {
			b[i] = byte(rng.Uint32())
		}
	}
	return b
}

func TestCompressedObjects(t *testing.T) {
	ctx := context.Background()
	h := FileHeader{Mode: ModeRegular | 0o755, UID: 1, Xattrs: Xattrs{{"user.component", []byte("x")}}}
	writers := map[string]func(s *Store, payload []byte) (Checksum, error){
		"stream": func(s *Store, p []byte) (Checksum, error) {
			c, _, err := s.WriteContent(ctx, h, bytes.NewReader(p))
			return c, err
		},
		"bytes": func(s *Store, p []byte) (Checksum, error) { return s.WriteContentBytes(h, p) },
		"async": func(s *Store, p []byte) (Checksum, error) {
			w := s.NewAsyncWriter(ctx, AsyncOptions{})
			c, _, err := w.WriteContent(h, bytes.NewReader(p), int64(len(p)))
			return c, errors.Join(err, w.Close())
		},
	}
	tests := []struct {
		size           int
		compress, want bool // want: stored compressed
	}{
		{0, true, false},
		{compressMinPayload - 1, true, false},
		{compressMinPayload, true, true},
		{300 << 10, true, true}, // larger than the async writer's buffered size
		{3 << 20, true, true},
		{3 << 20, false, false},
	}
	for name, write := range writers {
		for _, tc := range tests {
			t.Run(fmt.Sprintf("%s/%d/compress=%v", name, tc.size, tc.compress), func(t *testing.T) {
				s := newStore(t)
				s.SetCompressContent(tc.compress)
				payload := payloadOf(tc.size)
				c, err := write(s, payload)
				require.NoError(t, err)
				require.Equal(t, ContentChecksum(h, payload), c)
				assert.True(t, s.Has(c, ObjFile))
				_, err = os.Stat(s.compressedFile(c))
				assert.Equal(t, tc.want, err == nil, "size %d stored compressed", tc.size)
				_, err = os.Stat(s.ObjectFile(c, ObjFile))
				assert.Equal(t, !tc.want, err == nil, "size %d stored plain", tc.size)

				obj, err := s.OpenContent(c)
				require.NoError(t, err)
				assert.Equal(t, h, obj.Header)
				assert.Equal(t, int64(tc.size), obj.Size)
				got, err := io.ReadAll(obj)
				require.NoError(t, err)
				require.NoError(t, obj.Close())
				assert.True(t, bytes.Equal(payload, got), "payload of %d bytes read back", tc.size)
				require.NoError(t, s.VerifyContent(c))
			})
		}
	}
}

func TestCompressedObjectDamage(t *testing.T) {
	h := FileHeader{Mode: ModeRegular | 0o644}
	payload := payloadOf(64 << 10)
	tests := []struct {
		name   string
		damage func(t *testing.T, path string)
		want   string
	}{
		{"truncated", func(t *testing.T, p string) {
			st, err := os.Stat(p)
			require.NoError(t, err)
			require.NoError(t, os.Truncate(p, st.Size()-100))
		}, "store damaged"},
		{"size field too small", func(t *testing.T, p string) { patch(t, p, 0, []byte{0, 0, 0, 0, 0, 0, 0, 9}) }, "more payload than its size"},
		{"size field too large", func(t *testing.T, p string) { patch(t, p, 0, []byte{0, 0, 0, 0, 0, 2, 0, 0}) }, "ends"},
		{"header length out of range", func(t *testing.T, p string) { patch(t, p, 8, []byte{0x7f, 0, 0, 0}) }, "out of range"},
		{"payload byte flipped", func(t *testing.T, p string) { flipLastByte(t, p) }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			s.SetCompressContent(true)
			c, err := s.WriteContentBytes(h, payload)
			require.NoError(t, err)
			tc.damage(t, s.compressedFile(c))
			err = s.VerifyContent(c)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func patch(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteAt(b, off)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

func TestCompressedObjectsPruneAndDerive(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	s.SetCompressContent(true)
	h := FileHeader{Mode: ModeRegular | 0o644}
	payload := payloadOf(32 << 10)
	base, err := s.WriteContentBytes(h, payload)
	require.NoError(t, err)

	// A relabelled file shares a compressed payload like a plain one.
	h2 := FileHeader{Mode: ModeRegular | 0o644, Xattrs: Xattrs{{"security.selinux", []byte("a_t\x00")}}}
	sum := ContentChecksum(h2, payload)
	require.NoError(t, s.AddDerived(sum, base, h2))
	require.NoError(t, s.VerifyContent(sum))

	// Pruning sees a compressed object as a content object.
	old := time.Now().Add(-48 * time.Hour)
	require.NoError(t, os.Chtimes(s.compressedFile(base), old, old))
	var asked []ObjectType
	_, err = s.PruneObjects(ctx, time.Now().Add(-time.Hour), false, func(c Checksum, t ObjectType) bool {
		asked = append(asked, t)
		return c == base
	})
	require.NoError(t, err)
	assert.Equal(t, []ObjectType{ObjFile}, asked)
	assert.True(t, s.Has(base, ObjFile))
}
