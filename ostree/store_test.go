package ostree

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := OpenStore(t.TempDir())
	require.NoError(t, err)
	return s
}

func tmpEntries(t *testing.T, s *Store) []string {
	t.Helper()
	ents, err := os.ReadDir(s.Path("tmp"))
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestStoreContentRoundTrip(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	tests := []struct {
		name    string
		h       FileHeader
		payload []byte
		want    string
	}{
		{"hello.txt", FileHeader{Mode: ModeRegular | 0o644}, []byte("hello\n"), csHello},
		{"symlink", FileHeader{Mode: ModeSymlink | 0o777, Target: "hello.txt"}, nil, csLink},
		{"xattrs", FileHeader{Mode: ModeRegular | 0o644, Xattrs: Xattrs{{"user.aaa", []byte("1")}, {"user.component", []byte("foo")}}},
			[]byte("data\n"), csXattrTxt},
		{"empty file", FileHeader{Mode: ModeRegular | 0o600, UID: 7, GID: 8}, []byte{}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r io.Reader
			if tc.payload != nil {
				r = bytes.NewReader(tc.payload)
			}
			c, n, err := s.WriteContent(ctx, tc.h, r)
			require.NoError(t, err)
			assert.Equal(t, int64(len(tc.payload)), n)
			assert.Equal(t, ContentChecksum(tc.h, tc.payload), c)
			if tc.want != "" {
				assert.Equal(t, tc.want, c.String())
			}
			require.True(t, s.Has(c, ObjFile))
			require.NoError(t, s.VerifyContent(c))

			obj, err := s.OpenContent(c)
			require.NoError(t, err)
			defer obj.Close()
			assert.Equal(t, tc.h, obj.Header)
			assert.Equal(t, int64(len(tc.payload)), obj.Size)
			got, err := io.ReadAll(obj)
			require.NoError(t, err)
			assert.Equal(t, string(tc.payload), string(got))
		})
	}
	assert.Empty(t, tmpEntries(t, s))
}

func TestStoreWriteContentRejects(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	_, _, err := s.WriteContent(ctx, FileHeader{Mode: ModeSymlink | 0o777, Target: "x"}, bytes.NewReader([]byte("payload")))
	assert.ErrorContains(t, err, "symlink with 7 bytes")
	_, _, err = s.WriteContent(ctx, FileHeader{Mode: ModeDir | 0o755}, nil)
	assert.ErrorContains(t, err, "not a regular file")

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_, _, err = s.WriteContent(canceled, FileHeader{Mode: ModeRegular | 0o644}, bytes.NewReader([]byte("x")))
	assert.ErrorIs(t, err, context.Canceled)

	boom := errors.New("boom")
	_, _, err = s.WriteContent(ctx, FileHeader{Mode: ModeRegular | 0o644}, io.MultiReader(bytes.NewReader([]byte("partial")), errReader{boom}))
	assert.ErrorIs(t, err, boom)

	assert.Empty(t, tmpEntries(t, s), "failed writes leave no temporary files")
	objs, err := filepath.Glob(s.Path("objects", "*", "*"))
	require.NoError(t, err)
	assert.Empty(t, objs, "failed writes leave no objects")
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// TestStoreConcurrentWriters writes the same object from many goroutines, plus distinct
// objects, and checks every writer gets the same answer and the store stays intact.
func TestStoreConcurrentWriters(t *testing.T) {
	s := newStore(t)
	payload := make([]byte, 1<<20)
	_, err := rand.Read(payload)
	require.NoError(t, err)
	h := FileHeader{Mode: ModeRegular | 0o644}
	want := ContentChecksum(h, payload)

	const n = 16
	var wg sync.WaitGroup
	sums := make([]Checksum, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sums[i], _, errs[i] = s.WriteContent(context.Background(), h, bytes.NewReader(payload))
			if errs[i] == nil {
				// Distinct objects and metadata written at the same time.
				_, _, errs[i] = s.WriteContent(context.Background(), h, bytes.NewReader([]byte(fmt.Sprint(i))))
			}
			if errs[i] == nil {
				_, errs[i] = s.WriteMetadata(ObjDirMeta, DirMeta{Mode: ModeDir | 0o755}.Marshal())
			}
		}()
	}
	wg.Wait()
	for i := 0; i < n; i++ {
		require.NoError(t, errs[i])
		assert.Equal(t, want, sums[i])
	}
	require.NoError(t, s.VerifyContent(want))
	for i := 0; i < n; i++ {
		require.NoError(t, s.VerifyContent(ContentChecksum(h, []byte(fmt.Sprint(i)))))
	}
	_, err = s.ReadMetadata(ObjDirMeta, mustSum(t, csDirMeta755))
	require.NoError(t, err)
	assert.Empty(t, tmpEntries(t, s))
}

// TestStoreAtomicity watches an object's path while a large object is being written,
// plain and compressed: whenever the path exists it must hold the complete object.
func TestStoreAtomicity(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprintf("compress=%v", compress), func(t *testing.T) {
			s := newStore(t)
			s.SetCompressContent(compress)
			h := FileHeader{Mode: ModeRegular | 0o644}
			const size = 8 << 20
			sum := ContentChecksum(h, bytes.Repeat([]byte{'z'}, size))
			path := s.ObjectFile(sum, ObjFile)
			if compress {
				path = s.compressedFile(sum)
			}
			written := make(chan struct{})
			done := make(chan struct{})
			firstSize := int64(-1)
			go func() {
				defer close(done)
				for {
					if st, err := os.Stat(path); err == nil {
						firstSize = st.Size()
						return
					}
					select {
					case <-written:
						return
					default:
					}
				}
			}()
			got, _, err := s.WriteContent(context.Background(), h, io.LimitReader(repeatReader('z'), size))
			close(written)
			require.NoError(t, err)
			<-done
			assert.Equal(t, sum, got)
			st, err := os.Stat(path)
			require.NoError(t, err)
			if firstSize >= 0 {
				assert.Equal(t, st.Size(), firstSize, "a partially written object was visible")
			}
			require.NoError(t, s.VerifyContent(sum))
		})
	}
}

type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

func TestStoreCorruptionDetected(t *testing.T) {
	s := newStore(t)
	h := FileHeader{Mode: ModeRegular | 0o644}
	c, _, err := s.WriteContent(context.Background(), h, bytes.NewReader([]byte("hello\n")))
	require.NoError(t, err)
	flipLastByte(t, s.ObjectFile(c, ObjFile))
	err = s.VerifyContent(c)
	require.Error(t, err)
	assert.Contains(t, err.Error(), c.String())

	dt := DirTree{Files: []DirTreeFile{{Name: "hello.txt", Checksum: c}}}
	m, err := s.WriteMetadata(ObjDirTree, dt.Marshal())
	require.NoError(t, err)
	got, err := s.ReadMetadata(ObjDirTree, m)
	require.NoError(t, err)
	assert.Equal(t, dt.Marshal(), got)
	flipLastByte(t, s.ObjectFile(m, ObjDirTree))
	_, err = s.ReadMetadata(ObjDirTree, m)
	assert.ErrorContains(t, err, "checksum mismatch")

	// A truncated content object is refused when opened.
	c2, _, err := s.WriteContent(context.Background(), FileHeader{Mode: ModeRegular | 0o644, Xattrs: Xattrs{{"user.a", []byte("x")}}}, nil)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(s.ObjectFile(c2, ObjFile), 12))
	_, err = s.OpenContent(c2)
	assert.ErrorContains(t, err, "out of range")

	_, err = s.ReadMetadata(ObjCommit, Checksum{1})
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func flipLastByte(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	b[len(b)-1] ^= 0xff
	require.NoError(t, os.WriteFile(path, b, 0o644))
}

func TestStoreMetadataObjects(t *testing.T) {
	s := newStore(t)
	tr := tv1Tree(t, false)
	rt, rm, err := tr.Finalize(s)
	require.NoError(t, err)
	c := Commit{Subject: "test", Timestamp: 1700000000, RootTree: rt, RootMeta: rm}
	raw, err := c.Marshal()
	require.NoError(t, err)
	sum, err := s.WriteMetadata(ObjCommit, raw)
	require.NoError(t, err)
	assert.Equal(t, "bb0ddcdbaeade35c988cc39dae6793b3049f133a8a6a88a2cf6e1ea6d6f0aac6", sum.String())
	for _, d := range []*Dir{tr.Root, tr.Root.Dirs["sub"], tr.Root.Dirs["empty"]} {
		b, err := s.ReadMetadata(ObjDirTree, d.TreeSum)
		require.NoError(t, err)
		_, err = ParseDirTree(b)
		require.NoError(t, err)
		assert.True(t, s.Has(d.MetaSum, ObjDirMeta))
	}
	// sha256sum of every metadata file equals its name, as in an ostree repo.
	b, err := os.ReadFile(s.ObjectFile(sum, ObjCommit))
	require.NoError(t, err)
	assert.Equal(t, sum, sha256Sum(b))

	md := Metadata{{"k", mustVariant("s", "v")}}
	mb, err := md.Marshal()
	require.NoError(t, err)
	require.NoError(t, s.WriteCommitMeta(sum, mb))
	got, err := s.ReadMetadata(ObjCommitMeta, sum)
	require.NoError(t, err)
	assert.Equal(t, mb, got)

	_, err = s.WriteMetadata(ObjFile, []byte{0})
	assert.Error(t, err)
}

func TestOpenStoreRejectsForeignDir(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config"), []byte("[core]\nmode=bare\n"), 0o644))
	_, err := OpenStore(dir)
	assert.ErrorContains(t, err, "not a rechunker store")

	s, err := OpenStore(filepath.Join(t.TempDir(), "new"))
	require.NoError(t, err)
	_, err = OpenStore(s.Root())
	require.NoError(t, err, "reopening a store works")
}

func TestOpenStoreRemovesStaleTemps(t *testing.T) {
	dir := t.TempDir()
	_, err := OpenStore(dir)
	require.NoError(t, err)
	old := time.Now().Add(-2 * StaleTempAge)
	mk := func(p string, mtime time.Time) string {
		full := filepath.Join(dir, p)
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(t, os.WriteFile(full, []byte("x"), 0o644))
		require.NoError(t, os.Chtimes(full, mtime, mtime))
		return full
	}
	tests := []struct {
		path string
		age  time.Time
		kept bool
	}{
		{"tmp/content-old", old, false},
		{"tmp/content-new", time.Now(), true},
		{"layers/.tmp-record-old", old, false},
		{"blobs/sha256/.tmp-blob-old", old, false},
		{"blobs/sha256/.tmp-blob-new", time.Now(), true},
		{"blobs/sha256/abcdef", old, true}, // a real cache entry, never removed
		{"layers/sha256-1234", old, true},
	}
	for _, tc := range tests {
		mk(tc.path, tc.age)
	}
	_, err = OpenStore(dir)
	require.NoError(t, err)
	for _, tc := range tests {
		_, err := os.Stat(filepath.Join(dir, tc.path))
		if tc.kept {
			require.NoError(t, err, "%s must be kept", tc.path)
		} else {
			require.ErrorIs(t, err, os.ErrNotExist, "%s must be removed", tc.path)
		}
	}
}

func TestDerivedObjects(t *testing.T) {
	ctx := context.Background()
	s, err := OpenStore(t.TempDir())
	require.NoError(t, err)
	payload := []byte("shared payload of a relabelled file")
	h := FileHeader{Mode: ModeRegular | 0o644}
	base, _, err := s.WriteContent(ctx, h, bytes.NewReader(payload))
	require.NoError(t, err)
	h2 := FileHeader{Mode: ModeRegular | 0o644, Xattrs: Xattrs{{Name: "security.selinux", Value: []byte("system_u:object_r:bin_t:s0\x00")}}}
	sum := ContentChecksum(h2, payload)

	require.False(t, s.Has(sum, ObjFile))
	require.NoError(t, s.AddDerived(sum, base, h2))
	assert.True(t, s.Has(sum, ObjFile))
	obj, err := s.OpenContent(sum)
	require.NoError(t, err)
	got, err := io.ReadAll(obj)
	require.NoError(t, err)
	obj.Close()
	assert.Equal(t, h2, obj.Header)
	assert.Equal(t, payload, got)
	require.NoError(t, s.VerifyContent(sum))

	// A derived entry needs a stored base, and a wrong checksum is caught on verify.
	assert.ErrorContains(t, s.AddDerived(sum, sum, h2), "is not stored")
	bad := ContentChecksum(h, []byte("other"))
	require.NoError(t, s.AddDerived(bad, base, h2))
	assert.ErrorContains(t, s.VerifyContent(bad), "hash to")

	// Pruning: an old entry goes unless kept; a kept one keeps its base.
	old := time.Now().Add(-48 * time.Hour)
	require.NoError(t, os.Chtimes(s.derivedPath(sum), old, old))
	require.NoError(t, os.Chtimes(s.derivedPath(bad), old, old))
	var bases []Checksum
	st, err := s.PruneDerived(ctx, time.Now().Add(-time.Hour), false, func(c Checksum) bool { return c == sum }, func(c Checksum) { bases = append(bases, c) })
	require.NoError(t, err)
	assert.Equal(t, 1, st.Files)
	assert.Equal(t, []Checksum{base}, bases)
	assert.True(t, s.Has(sum, ObjFile))
	assert.False(t, s.Has(bad, ObjFile))

	// A damaged entry is an error naming the object, not a panic.
	require.NoError(t, os.WriteFile(s.derivedPath(sum), []byte("garbage"), 0o644))
	_, err = s.OpenContent(sum)
	assert.ErrorContains(t, err, "damaged")
}

// TestStoreHas asks for objects of every type the way the store looks them up (a path
// relative to the objects directory built without allocating), present, absent and
// compressed.
func TestStoreHas(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	require.NoError(t, err)
	meta := []byte("some dirmeta bytes")
	metaSum, err := s.WriteMetadata(ObjDirMeta, meta)
	require.NoError(t, err)
	plain, _, err := s.WriteContent(context.Background(), FileHeader{Mode: 0o100644}, bytes.NewReader([]byte("plain")))
	require.NoError(t, err)
	s.SetCompressContent(true)
	big := bytes.Repeat([]byte("compressed payload "), 2000)
	compressed, _, err := s.WriteContent(context.Background(), FileHeader{Mode: 0o100644}, bytes.NewReader(big))
	require.NoError(t, err)
	_, err = os.Stat(s.compressedFile(compressed))
	require.NoError(t, err, "the big payload is stored compressed")

	var missing Checksum
	missing[0] = 0xab
	for _, tc := range []struct {
		name string
		sum  Checksum
		t    ObjectType
		want bool
	}{
		{"dirmeta", metaSum, ObjDirMeta, true},
		{"dirmeta asked as dirtree", metaSum, ObjDirTree, false},
		{"plain content", plain, ObjFile, true},
		{"compressed content", compressed, ObjFile, true},
		{"absent content", missing, ObjFile, false},
		{"absent commit", missing, ObjCommit, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, s.Has(tc.sum, tc.t))
			assert.Equal(t, ObjectPath(tc.sum, tc.t), "objects/"+string(appendObjectRel(nil, tc.sum, tc.t)))
		})
	}
}
