package rootfs

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/rechunker-dev/rechunker/ostree"
)

func newStore(t *testing.T) *ostree.Store {
	t.Helper()
	return newStoreAt(t, t.TempDir())
}

func newStoreAt(tb testing.TB, dir string) *ostree.Store {
	tb.Helper()
	s, err := ostree.OpenStore(dir)
	require.NoError(tb, err)
	return s
}

// write creates files from a compact spec: "name" -> content, "name/" -> directory,
// "name@" -> symlink to the content.
func write(t *testing.T, root string, spec map[string]string) {
	t.Helper()
	for name, v := range spec {
		p := filepath.Join(root, strings.TrimRight(name, "/@"))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		switch {
		case strings.HasSuffix(name, "/"):
			require.NoError(t, os.MkdirAll(p, 0o755))
		case strings.HasSuffix(name, "@"):
			require.NoError(t, os.Symlink(v, p))
		default:
			require.NoError(t, os.WriteFile(p, []byte(v), 0o644))
		}
	}
}

func setXattr(t *testing.T, p, name, value string) {
	t.Helper()
	if err := unix.Lsetxattr(p, name, []byte(value), 0); err != nil {
		t.Skipf("xattrs unsupported here (%s on %s): %v", name, p, err)
	}
}

// TestImportTV1 imports the tree of test vector TV1 and expects ostree's checksum.
func TestImportTV1(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("TV1 needs root-owned files: run as root")
	}
	dir := t.TempDir()
	write(t, dir, map[string]string{
		"hello.txt": "hello\n", "run.sh": "#!/bin/sh\necho hi\n", "link@": "hello.txt",
		"empty/": "", "sub/xattr.txt": "data\n",
	})
	require.NoError(t, os.Chmod(dir, 0o755))
	require.NoError(t, os.Chmod(filepath.Join(dir, "run.sh"), 0o755))
	setXattr(t, filepath.Join(dir, "sub/xattr.txt"), "user.component", "foo")
	setXattr(t, filepath.Join(dir, "sub/xattr.txt"), "user.aaa", "1")
	setXattr(t, filepath.Join(dir, "sub/xattr.txt"), "user.empty", "") // dropped, as ostree does

	s := newStore(t)
	tr, err := Import(context.Background(), dir, s, Options{})
	require.NoError(t, err)
	rt, rm, err := tr.Finalize(s)
	require.NoError(t, err)
	sum, err := ostree.Commit{Subject: "test", Timestamp: 1700000000, RootTree: rt, RootMeta: rm}.Checksum()
	require.NoError(t, err)
	assert.Equal(t, "bb0ddcdbaeade35c988cc39dae6793b3049f133a8a6a88a2cf6e1ea6d6f0aac6", sum.String())

	f := tr.LookupFile("/hello.txt")
	require.NotNil(t, f)
	obj, err := s.OpenContent(f.Checksum)
	require.NoError(t, err)
	defer obj.Close()
	b, err := io.ReadAll(obj)
	require.NoError(t, err)
	assert.Equal(t, "hello\n", string(b))
}

func TestImportModesLinksAndEmptyDirs(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{
		"bin/su": "suid", "bin/wall": "sgid", "tmp/": "", "a/b/c/": "", "data": "shared",
		"lnk@": "../../\xffraw target", // not UTF-8: rejected below, removed first
	})
	require.NoError(t, os.Remove(filepath.Join(dir, "lnk")))
	require.NoError(t, os.Symlink("some/where/../x", filepath.Join(dir, "lnk")))
	require.NoError(t, unix.Chmod(filepath.Join(dir, "bin/su"), 0o4755))
	require.NoError(t, unix.Chmod(filepath.Join(dir, "bin/wall"), 0o2711))
	require.NoError(t, unix.Chmod(filepath.Join(dir, "tmp"), 0o1777))
	require.NoError(t, os.Link(filepath.Join(dir, "data"), filepath.Join(dir, "bin/data-link")))
	require.NoError(t, os.Link(filepath.Join(dir, "data"), filepath.Join(dir, "a/data-link2")))

	s := newStore(t)
	tr, err := Import(context.Background(), dir, s, Options{})
	require.NoError(t, err)

	tests := []struct {
		path string
		mode uint32
	}{
		{"/bin/su", ostree.ModeRegular | 0o4755},
		{"/bin/wall", ostree.ModeRegular | 0o2711},
		{"/data", ostree.ModeRegular | 0o644},
		{"/lnk", ostree.ModeSymlink | 0o777},
	}
	for _, tc := range tests {
		f := tr.LookupFile(tc.path)
		require.NotNil(t, f, tc.path)
		assert.Equal(t, tc.mode, f.Header.Mode, tc.path)
		assert.Equal(t, uint32(os.Getuid()), f.Header.UID, tc.path)
	}
	assert.Equal(t, "some/where/../x", tr.LookupFile("/lnk").Header.Target)
	assert.Equal(t, uint32(ostree.ModeDir|0o1777), tr.LookupDir("/tmp").Meta.Mode)
	require.NotNil(t, tr.LookupDir("/a/b/c"))
	assert.Empty(t, tr.LookupDir("/a/b/c").Files)

	data := tr.LookupFile("/data")
	for _, p := range []string{"/bin/data-link", "/a/data-link2"} {
		l := tr.LookupFile(p)
		require.NotNil(t, l, p)
		assert.Equal(t, data.Checksum, l.Checksum, p)
		assert.Equal(t, data.Header, l.Header, p)
		assert.Equal(t, int64(6), l.Size, p)
	}
	assert.Equal(t, ostree.ContentChecksum(*data.Header, []byte("shared")), data.Checksum)
	require.NoError(t, s.VerifyContent(data.Checksum))
	_, _, err = tr.Finalize(s)
	require.NoError(t, err)
}

// TestImportDeterministic imports the same tree with one and with many workers.
func TestImportDeterministic(t *testing.T) {
	dir := t.TempDir()
	spec := map[string]string{}
	for i := 0; i < 300; i++ {
		spec[filepath.Join("d"+string(rune('a'+i%7)), "f"+strings.Repeat("x", i%13)+string(rune('a'+i%26)))] = strings.Repeat("y", i*37)
	}
	write(t, dir, spec)
	var sums []ostree.Checksum
	for _, w := range []int{1, 2, 8} {
		s := newStore(t)
		tr, err := Import(context.Background(), dir, s, Options{Workers: w})
		require.NoError(t, err)
		rt, _, err := tr.Finalize(s)
		require.NoError(t, err)
		sums = append(sums, rt)
	}
	assert.Equal(t, sums[0], sums[1])
	assert.Equal(t, sums[0], sums[2])
}

func TestImportSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"dev/keep": "k"})
	require.NoError(t, unix.Mkfifo(filepath.Join(dir, "dev/fifo"), 0o644))
	s := newStore(t)

	_, err := Import(context.Background(), dir, s, Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "/dev/fifo")
	assert.Contains(t, err.Error(), "fifo")

	var warnings []string
	tr, err := Import(context.Background(), dir, s, Options{SkipSpecial: true, Warn: func(m string) { warnings = append(warnings, m) }})
	require.NoError(t, err)
	assert.Nil(t, tr.LookupFile("/dev/fifo"))
	assert.NotNil(t, tr.LookupFile("/dev/keep"))
	require.Len(t, warnings, 1)
	assert.Contains(t, warnings[0], "/dev/fifo")

	if os.Getuid() == 0 {
		require.NoError(t, unix.Mknod(filepath.Join(dir, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		_, err := Import(context.Background(), dir, s, Options{})
		assert.ErrorContains(t, err, "/dev/fifo")
		require.NoError(t, os.Remove(filepath.Join(dir, "dev/fifo")))
		_, err = Import(context.Background(), dir, s, Options{})
		assert.ErrorContains(t, err, "/dev/null: a character device")
	}
}

func TestImportRejects(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  []string
	}{
		{"non-utf8 name", func(t *testing.T, dir string) {
			write(t, dir, map[string]string{"etc/ok": "x"})
			require.NoError(t, os.WriteFile(filepath.Join(dir, "etc", "bad\xffname"), nil, 0o644))
		}, []string{"/etc/bad\\xffname", "UTF-8"}},
		{"non-utf8 symlink target", func(t *testing.T, dir string) {
			require.NoError(t, os.Symlink("tar\xffget", filepath.Join(dir, "l")))
		}, []string{"/l", "UTF-8"}},
		{"unreadable file", func(t *testing.T, dir string) {
			if os.Getuid() == 0 {
				t.Skip("root reads mode-000 files")
			}
			require.NoError(t, os.WriteFile(filepath.Join(dir, "secret"), []byte("x"), 0))
		}, []string{"/secret", "permission denied"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(t, dir)
			_, err := Import(context.Background(), dir, newStore(t), Options{})
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}

	_, err := Import(context.Background(), filepath.Join(t.TempDir(), "missing"), newStore(t), Options{})
	assert.ErrorIs(t, err, syscall.ENOENT)
	f := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(f, nil, 0o644))
	_, err = Import(context.Background(), f, newStore(t), Options{})
	assert.ErrorContains(t, err, "not a directory")
}

func TestImportCanceled(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"a": "1", "b/c": "2"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Import(ctx, dir, newStore(t), Options{})
	assert.ErrorIs(t, err, context.Canceled)
}

func TestImportXattrs(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"f": "x", "d/": ""})
	setXattr(t, filepath.Join(dir, "f"), "user.zz", "last")
	setXattr(t, filepath.Join(dir, "f"), "user.aa", "first")
	big := bytes.Repeat([]byte{0xab}, 3000)
	setXattr(t, filepath.Join(dir, "f"), "user.big", string(big))
	setXattr(t, filepath.Join(dir, "d"), "user.dir", "v\x00")
	tr, err := Import(context.Background(), dir, newStore(t), Options{})
	require.NoError(t, err)
	assert.Equal(t, ostree.Xattrs{{Name: "user.aa", Value: []byte("first")}, {Name: "user.big", Value: big}, {Name: "user.zz", Value: []byte("last")}},
		tr.LookupFile("/f").Header.Xattrs)
	assert.Equal(t, ostree.Xattrs{{Name: "user.dir", Value: []byte("v\x00")}}, tr.LookupDir("/d").Meta.Xattrs)
}
