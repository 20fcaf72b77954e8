package rechunk

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/ostree"
)

// TestResolverEntry checks that package paths resolve to positions in the resolver's
// file list (the sources' only key for a file) or to directories.
func TestResolverEntry(t *testing.T) {
	b := newTestTree(t, nil)
	b.file("/usr/bin/a", []byte("a"))
	b.file("/usr/bin/b", []byte("b"))
	b.file("/usr/lib/z", []byte("z"))
	b.file("/usr/etc/conf", []byte("c"))
	b.symlink("/bin", "usr/bin")
	b.symlink("/usr/bin/link", "a")
	r := newResolver(b.finalize())
	for _, c := range []struct {
		in       string
		wantFile string // path of the file it names, or ""
		wantDir  string
	}{
		{"/usr/bin/a", "/usr/bin/a", ""},
		{"usr/bin/b", "/usr/bin/b", ""},
		{"/bin/b", "/usr/bin/b", ""},
		{"/usr/bin/link", "/usr/bin/link", ""}, // the last component is not followed
		{"/etc/conf", "/usr/etc/conf", ""},
		{"/usr/lib/../lib/z", "/usr/lib/z", ""},
		{"/bin", "/bin", ""}, // a symlink a package may own
		{"/usr/bin", "", "/usr/bin"},
		{"/usr/bin/missing", "", ""},
		{"/missing/a", "", ""},
		{"/", "", ""},
	} {
		t.Run(c.in, func(t *testing.T) {
			i, dir := r.entry(c.in)
			assert.Equal(t, c.wantDir, dir)
			if c.wantFile == "" {
				assert.Equal(t, -1, i)
				return
			}
			require.GreaterOrEqual(t, i, 0)
			assert.Equal(t, c.wantFile, r.files[i].Path())
		})
	}
}

func TestPermute(t *testing.T) {
	for _, c := range []struct {
		name string
		dest []int32
	}{
		{"empty", nil},
		{"identity", []int32{0, 1, 2}},
		{"reverse", []int32{3, 2, 1, 0}},
		{"one cycle", []int32{1, 2, 3, 0}},
		{"two cycles", []int32{1, 0, 3, 4, 2}},
	} {
		t.Run(c.name, func(t *testing.T) {
			files := make([]FileRef, len(c.dest))
			want := make([]FileRef, len(c.dest))
			for i, d := range c.dest {
				files[i] = FileRef{Name: string(rune('a' + i))}
				want[d] = files[i]
			}
			permute(files, append([]int32(nil), c.dest...))
			assert.Equal(t, want, files)
		})
	}
}

func TestDistinctSize(t *testing.T) {
	sum := func(prefix byte, last byte) ostree.Checksum {
		var c ostree.Checksum
		c[0], c[31] = prefix, last
		return c
	}
	file := func(c ostree.Checksum, size int64) FileRef {
		return FileRef{Dir: "/", Name: "f", File: &ostree.File{Checksum: c, Size: size}}
	}
	for _, c := range []struct {
		name string
		refs []FileRef
		want int64
	}{
		{"none", nil, 0},
		{"distinct", []FileRef{file(sum(1, 0), 10), file(sum(2, 0), 20)}, 30},
		{"hardlinks count once", []FileRef{file(sum(1, 0), 10), file(sum(2, 0), 20), file(sum(1, 0), 10)}, 30},
		{"same prefix, different objects", []FileRef{file(sum(1, 1), 10), file(sum(1, 2), 20), file(sum(1, 1), 10)}, 30},
		{"interleaved duplicates", []FileRef{file(sum(3, 0), 5), file(sum(1, 9), 7), file(sum(3, 0), 5), file(sum(1, 9), 7), file(sum(1, 8), 1)}, 13},
	} {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, distinctSize(c.refs))
		})
	}
}

func TestChildPath(t *testing.T) {
	for _, c := range []struct {
		p, dir, name, want string
		reused             bool
	}{
		{"/usr/lib", "/usr", "lib", "/usr/lib", true},
		{"/usr", "/", "usr", "/usr", true},
		{"/lib/x", "/usr/lib", "x", "/usr/lib/x", false}, // through the /lib symlink
		{"/usr/lib/../lib", "/usr", "lib", "/usr/lib", false},
		{"/usrXlib", "/usr", "lib", "/usr/lib", false},
	} {
		got := childPath(c.p, c.dir, c.name)
		assert.Equal(t, c.want, got, "%+v", c)
		if c.reused {
			assert.Same(t, unsafe.StringData(c.p), unsafe.StringData(got), "%+v: p itself is returned", c)
		}
	}
}
