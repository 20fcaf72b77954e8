package ostree

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// addInPlaceFile writes payload to a new file and records it as an in-place object.
func addInPlaceFile(t *testing.T, s *Store, h FileHeader, payload []byte) (Checksum, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(p, payload, 0o644))
	var st unix.Stat_t
	require.NoError(t, unix.Stat(p, &st))
	c := ContentChecksum(h, payload)
	require.NoError(t, s.AddInPlace(c, &h, p, IdentityOf(&st)))
	return c, p
}

// readInPlace opens c and reads its payload, returning the open or read error.
func readInPlace(s *Store, c Checksum) ([]byte, error) {
	obj, err := s.OpenContent(c)
	if err != nil {
		return nil, err
	}
	defer obj.Close()
	return io.ReadAll(obj)
}

func TestInPlaceObjects(t *testing.T) {
	h := FileHeader{Mode: ModeRegular | 0o644, UID: 3}
	payload := []byte("payload read from the input's own file\n")
	// Each case changes the source file after it was recorded; the object must then
	// fail to open or to read, with a message naming the file, never give other bytes.
	tests := []struct {
		name    string
		change  func(t *testing.T, path string)
		openErr string // error of OpenContent
		readErr string // error of reading the payload
	}{
		{name: "unchanged", change: func(*testing.T, string) {}},
		{name: "appended", change: func(t *testing.T, p string) {
			f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			require.NoError(t, err)
			_, err = f.WriteString("more")
			require.NoError(t, err)
			require.NoError(t, f.Close())
		}, openErr: "changed after it was imported (size"},
		{name: "rewritten, mtime restored", change: func(t *testing.T, p string) {
			var st unix.Stat_t
			require.NoError(t, unix.Stat(p, &st))
			require.NoError(t, os.WriteFile(p, []byte("PAYLOAD read from the input's own file\n"), 0o644))
			mt := time.Unix(st.Mtim.Unix())
			require.NoError(t, os.Chtimes(p, mt, mt))
		}, openErr: "(ctime)"},
		{name: "touched", change: func(t *testing.T, p string) {
			later := time.Now().Add(time.Hour)
			require.NoError(t, os.Chtimes(p, later, later))
		}, openErr: "(mtime)"},
		{name: "replaced", change: func(t *testing.T, p string) {
			require.NoError(t, os.WriteFile(p+".new", payload, 0o644))
			require.NoError(t, os.Rename(p+".new", p))
		}, openErr: "(inode)"},
		{name: "removed", change: func(t *testing.T, p string) {
			require.NoError(t, os.Remove(p))
		}, openErr: "no such file"},
		{name: "made a symlink", change: func(t *testing.T, p string) {
			require.NoError(t, os.Rename(p, p+".real"))
			require.NoError(t, os.Symlink(p+".real", p))
		}, openErr: "too many levels of symbolic links"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			c, p := addInPlaceFile(t, s, h, payload)
			assert.True(t, s.Has(c, ObjFile))
			assert.False(t, s.HasStored(c), "nothing of an in-place object is on disk")
			tc.change(t, p)
			got, err := readInPlace(s, c)
			switch {
			case tc.openErr != "":
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.openErr)
				assert.Contains(t, err.Error(), p)
			default:
				require.NoError(t, err)
				assert.Equal(t, payload, got)
				require.NoError(t, s.VerifyContent(c))
			}
		})
	}
}

func TestInPlaceRehash(t *testing.T) {
	// What identity cannot see (a rewrite on a file system whose timestamps did not
	// move) the rehash does: here the recorded checksum is of other bytes than the
	// file's, which is what such a rewrite looks like to the store.
	s := newStore(t)
	h := FileHeader{Mode: ModeRegular | 0o644}
	p := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(p, []byte("new bytes, same length"), 0o644))
	var st unix.Stat_t
	require.NoError(t, unix.Stat(p, &st))
	c := ContentChecksum(h, []byte("old bytes, same length"))
	require.NoError(t, s.AddInPlace(c, &h, p, IdentityOf(&st)))

	_, err := readInPlace(s, c)
	require.ErrorIs(t, err, ErrSourceChanged)
	assert.Contains(t, err.Error(), p)
	assert.ErrorIs(t, s.VerifyContent(c), ErrSourceChanged)
}

func TestInPlaceWithoutPayload(t *testing.T) {
	s := newStore(t)
	tests := []struct {
		name string
		h    FileHeader
	}{
		{"symlink", FileHeader{Mode: ModeSymlink | 0o777, Target: "../lib/x"}},
		{"empty file", FileHeader{Mode: ModeRegular | 0o600, UID: 5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ContentChecksum(tc.h, nil)
			require.NoError(t, s.AddInPlace(c, &tc.h, "", FileIdentity{}))
			obj, err := s.OpenContent(c)
			require.NoError(t, err)
			assert.Equal(t, tc.h, obj.Header)
			got, err := io.ReadAll(obj)
			require.NoError(t, err)
			assert.Empty(t, got)
			require.NoError(t, obj.Close())
			assert.ErrorIs(t, obj.Close(), os.ErrClosed)
			require.NoError(t, s.VerifyContent(c))
		})
	}
	// A payload needs a file to come from.
	h := FileHeader{Mode: ModeRegular | 0o644}
	assert.ErrorContains(t, s.AddInPlace(ContentChecksum(h, []byte("x")), &h, "", FileIdentity{Size: 1}), "no source file")
}

func TestInPlaceDerived(t *testing.T) {
	// Relabelling an in-place object gives an in-place object: no derived entry on
	// disk may name a payload the store does not keep.
	s := newStore(t)
	h := FileHeader{Mode: ModeRegular | 0o644}
	payload := []byte("shared payload")
	base, _ := addInPlaceFile(t, s, h, payload)
	h2 := FileHeader{Mode: ModeRegular | 0o644, Xattrs: Xattrs{{Name: "security.selinux", Value: []byte("system_u:object_r:bin_t:s0\x00")}}}
	sum := ContentChecksum(h2, payload)
	require.NoError(t, s.AddDerived(sum, base, h2))
	assert.True(t, s.Has(sum, ObjFile))
	assert.False(t, s.HasStored(sum))
	_, err := os.Lstat(s.derivedPath(sum))
	assert.ErrorIs(t, err, os.ErrNotExist)
	got, err := readInPlace(s, sum)
	require.NoError(t, err)
	assert.Equal(t, payload, got)
	require.NoError(t, s.VerifyContent(sum))
}

func TestInPlaceChangedWhileRead(t *testing.T) {
	// The identity is checked when the object is opened; a file cut short or grown
	// while it is read fails the read.
	tests := []struct {
		name   string
		change func(p string) error
		want   string
	}{
		{"truncated", func(p string) error { return os.Truncate(p, 3) }, "shorter"},
		{"grown", func(p string) error {
			return os.WriteFile(p, []byte("payload of the input file, and more of it"), 0o644)
		}, "longer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			c, p := addInPlaceFile(t, s, FileHeader{Mode: ModeRegular | 0o644}, []byte("payload of the input file"))
			obj, err := s.OpenContent(c)
			require.NoError(t, err)
			defer obj.Close()
			require.NoError(t, tc.change(p))
			_, err = io.ReadAll(obj)
			require.ErrorIs(t, err, ErrSourceChanged)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}
