package ostree

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The xattr texts below were checked against `ostree ls -X` of files carrying them.

// Output of `ostree ls -RC tv/plain` and `ostree ls -RCX tv/plain` for TV1 (ostree 2022.7).
const tv1LsRC = `d00755 0 0      0 09b943a96c6d82943283e9d84744c66c93a3f661dd19ce6eeb07fca70c2ed749 446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488 /
-00644 0 0      6 44f778e59f0a4748d6b0c90a47347212a231c4ad1e8f7ea5c5dffc7749153a6b /hello.txt
l00777 0 0      0 f66efa496a72379413c44593de510dc344beb045294f1a543da87b2b6118db35 /link -> hello.txt
-00755 0 0     18 89b350d278ff59ba4780bc377b8ebfee8ade6b55c99fab1ec84e133bc6ea52c5 /run.sh
d00755 0 0      0 6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d 446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488 /empty
d00755 0 0      0 6e9c5c15a92f2f1131b40780d516b69ee82e9b9e175a382aa32b3df8bc784426 446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488 /sub
-00644 0 0      5 23d81c4d2a5b6635f6eeed0253823a98f381871d77f450abb284bdd95ffb062e /sub/xattr.txt
`

const tv1LsRCX = `d00755 0 0      0 09b943a96c6d82943283e9d84744c66c93a3f661dd19ce6eeb07fca70c2ed749 446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488 { @a(ayay) [] } /
-00644 0 0      6 44f778e59f0a4748d6b0c90a47347212a231c4ad1e8f7ea5c5dffc7749153a6b { @a(ayay) [] } /hello.txt
l00777 0 0      0 f66efa496a72379413c44593de510dc344beb045294f1a543da87b2b6118db35 { @a(ayay) [] } /link -> hello.txt
-00755 0 0     18 89b350d278ff59ba4780bc377b8ebfee8ade6b55c99fab1ec84e133bc6ea52c5 { @a(ayay) [] } /run.sh
d00755 0 0      0 6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d 446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488 { @a(ayay) [] } /empty
d00755 0 0      0 6e9c5c15a92f2f1131b40780d516b69ee82e9b9e175a382aa32b3df8bc784426 446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488 { @a(ayay) [] } /sub
-00644 0 0      5 23d81c4d2a5b6635f6eeed0253823a98f381871d77f450abb284bdd95ffb062e { [(b'user.aaa', [byte 0x31]), (b'user.component', [0x66, 0x6f, 0x6f])] } /sub/xattr.txt
`

func finalizedTV1(t *testing.T) *Tree {
	tr := tv1Tree(t, false)
	_, _, err := tr.Finalize(nil)
	require.NoError(t, err)
	return tr
}

func lines(s string, idx ...int) string {
	all := strings.SplitAfter(s, "\n")
	var b strings.Builder
	for _, i := range idx {
		b.WriteString(all[i])
	}
	return b.String()
}

func TestFormatLs(t *testing.T) {
	tr := finalizedTV1(t)
	tests := []struct {
		name string
		path string
		opt  LsOptions
		want string
	}{
		{"recursive root", "/", LsOptions{Recursive: true, Checksums: true}, tv1LsRC},
		{"recursive with xattrs", "/", LsOptions{Recursive: true, Checksums: true, Xattrs: true}, tv1LsRCX},
		{"one level", "/", LsOptions{Checksums: true}, lines(tv1LsRC, 0, 1, 2, 3, 4, 5)},
		{"subdirectory", "/sub", LsOptions{Recursive: true, Checksums: true}, lines(tv1LsRC, 5, 6)},
		{"relative path", "sub", LsOptions{Checksums: true}, lines(tv1LsRC, 5, 6)},
		{"a file", "/sub/xattr.txt", LsOptions{Recursive: true, Checksums: true}, lines(tv1LsRC, 6)},
		{"a symlink", "/link", LsOptions{Checksums: true}, lines(tv1LsRC, 2)},
		{"without checksums", "/sub", LsOptions{}, "d00755 0 0      0 /sub\n-00644 0 0      5 /sub/xattr.txt\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			require.NoError(t, FormatLsOptions(&b, tr, tc.path, tc.opt))
			assert.Equal(t, tc.want, b.String())
		})
	}
	var b bytes.Buffer
	require.NoError(t, FormatLs(&b, tr, "/", true))
	assert.Equal(t, tv1LsRC, b.String())
}

// TestFormatLsColumns checks ostree's "%c0%04o %u %u %6u" columns: special mode bits,
// large ids and sizes wider than six digits.
func TestFormatLsColumns(t *testing.T) {
	tr := NewTree()
	h := FileHeader{UID: 1000, GID: 4294967294, Mode: ModeRegular | 0o4755}
	tr.Root.Files["suid"] = &File{Header: &h, Size: 12345678, Checksum: ContentChecksum(h, nil)}
	tr.Root.Dirs["tmp"] = NewDir(DirMeta{Mode: ModeDir | 0o1777, UID: 5})
	_, _, err := tr.Finalize(nil)
	require.NoError(t, err)
	var b bytes.Buffer
	require.NoError(t, FormatLsOptions(&b, tr, "/", LsOptions{Recursive: true}))
	assert.Equal(t, "d00755 0 0      0 /\n-04755 1000 4294967294 12345678 /suid\nd01777 5 0      0 /tmp\n", b.String())
}

func TestFormatLsXattrText(t *testing.T) {
	tests := []struct {
		name string
		x    Xattrs
		want string
	}{
		{"selinux label with NUL", Xattrs{{"security.selinux", []byte("system_u:object_r:bin_t:s0\x00")}},
			"{ [(b'security.selinux', b'system_u:object_r:bin_t:s0')] } "},
		{"escapes", Xattrs{{"user.a", []byte("it's\t\xc3\x00")}},
			`{ [(b'user.a', b"it's\t\303")] } `},
		{"control bytes", Xattrs{{"user.a", []byte{0x61, 0x09, 0x62}}},
			"{ [(b'user.a', [byte 0x61, 0x09, 0x62])] } "},
		{"quote, backslash, newline, DEL", Xattrs{{"user.q", []byte("\"\\\n\x7f\x00")}},
			`{ [(b'user.q', b'\"\\\n\177')] } `},
		{"inner NUL", Xattrs{{"user.a", []byte{0, 1}}, {"user.b", []byte{0}}},
			"{ [(b'user.a', [byte 0x00, 0x01]), (b'user.b', b'')] } "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := NewTree()
			tr.Root.Meta.Xattrs = tc.x
			_, _, err := tr.Finalize(nil)
			require.NoError(t, err)
			var b bytes.Buffer
			require.NoError(t, FormatLsOptions(&b, tr, "/", LsOptions{Xattrs: true}))
			assert.Equal(t, "d00755 0 0      0 "+tc.want+"/\n", b.String())
		})
	}
}

func TestFormatLsErrors(t *testing.T) {
	tr := finalizedTV1(t)
	tests := []struct{ path, want string }{
		{"/nonexist", "no such file"},
		{"/hello.txt/x", "not a directory"},
		{"/..", "escapes"},
	}
	for _, tc := range tests {
		err := FormatLs(&bytes.Buffer{}, tr, tc.path, true)
		require.Error(t, err, tc.path)
		assert.Contains(t, err.Error(), tc.want)
	}
	assert.ErrorContains(t, FormatLs(&bytes.Buffer{}, tv1Tree(t, false), "/", true), "not finalized")
}
