package layer

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/ostree"
)

func TestApply(t *testing.T) {
	tests := []struct {
		name   string
		layers [][]ent
		want   []string
		warns  []string
	}{
		{
			name: "types, modes, owners and xattrs",
			layers: [][]ent{{
				{name: "./", typ: tar.TypeDir, mode: 0o755},
				{name: "./bin/", typ: tar.TypeDir, mode: 0o40755}, // mode with type bits, as buildah writes
				{name: "./bin/su", body: "su", mode: 0o104755},
				{name: "./bin/wall", body: "w", mode: 0o2755, gid: 5},
				{name: "./tmp/", typ: tar.TypeDir, mode: 0o1777},
				{name: "./home/u/", typ: tar.TypeDir, mode: 0o700, uid: 1000, gid: 1000},
				{name: "./home/u/x", body: "data\n", mode: 0o100600, uid: 1000, gid: 1000,
					xattrs: map[string]string{"user.component": "foo", "user.aaa": "1", "user.empty": ""}},
				{name: "./home/u/link", typ: tar.TypeSymlink, link: "x", mode: 0o755, uid: 1000, gid: 1000},
				{name: "etc", typ: tar.TypeDir, mode: 0o755, xattrs: map[string]string{"security.selinux": "system_u:object_r:etc_t:s0"}},
			}},
			want: []string{
				"/ d 0755 0:0",
				"/bin d 0755 0:0",
				"/bin/su f 4755 0:0 \"su\"",
				"/bin/wall f 2755 0:5 \"w\"",
				"/etc d 0755 0:0 [security.selinux=system_u:object_r:etc_t:s0]",
				"/home d 0755 0:0",
				"/home/u d 0700 1000:1000",
				"/home/u/link l 0777 1000:1000 -> x",
				"/home/u/x f 0600 1000:1000 [user.aaa=1,user.component=foo] \"data\\n\"",
				"/tmp d 1777 0:0",
			},
		},
		{
			name:   "implicit parents are root-owned 0755",
			layers: [][]ent{{{name: "a/b/c", body: "c", uid: 7, gid: 7, mode: 0o600}}},
			want:   []string{"/ d 0755 0:0", "/a d 0755 0:0", "/a/b d 0755 0:0", "/a/b/c f 0600 7:7 \"c\""},
		},
		{
			name: "whiteout hides a lower file and a lower directory",
			layers: [][]ent{
				{file("a/x", "x"), file("a/y", "y"), file("d/sub/z", "z")},
				{file("a/.wh.x", ""), file(".wh.d", "")},
			},
			want: []string{"/ d 0755 0:0", "/a d 0755 0:0", "/a/y f 0644 0:0 \"y\""},
		},
		{
			name:   "whiteout of a missing file is ignored",
			layers: [][]ent{{file("a", "a")}, {file(".wh.nothere", ""), file("no/such/.wh.dir", "")}},
			want:   []string{"/ d 0755 0:0", "/a f 0644 0:0 \"a\""},
		},
		{
			name: "whiteout applies only to lower layers",
			layers: [][]ent{
				{file("a", "old")},
				{file("a", "new"), file(".wh.a", "")},
			},
			want: []string{"/ d 0755 0:0", "/a f 0644 0:0 \"new\""},
		},
		{
			name: "opaque directory hides lower children, keeps this layer's",
			layers: [][]ent{
				{file("d/x", "x"), file("d/sub/y", "y"), file("keep", "k")},
				{dir("d/"), file("d/z", "z"), file("d/.wh..wh..opq", ""), file("d/new/w", "w")},
			},
			want: []string{
				"/ d 0755 0:0", "/keep f 0644 0:0 \"k\"", "/d d 0755 0:0", "/d/z f 0644 0:0 \"z\"",
				"/d/new d 0755 0:0", "/d/new/w f 0644 0:0 \"w\"",
			},
		},
		{
			name: "hardlinks inside a layer and to a lower layer share the File",
			layers: [][]ent{
				{{name: "bin/a", body: "A", mode: 0o755, xattrs: map[string]string{"user.k": "v"}}},
				{file("bin/b", "B"), hardlink("bin/b2", "bin/b"), hardlink("usr/a", "./bin/a")},
			},
			want: []string{
				"/ d 0755 0:0", "/bin d 0755 0:0", "/bin/a f 0755 0:0 [user.k=v] \"A\"", "/bin/b f 0644 0:0 \"B\"",
				"/bin/b2 f 0644 0:0 \"B\"", "/usr d 0755 0:0", "/usr/a f 0755 0:0 [user.k=v] \"A\"",
			},
		},
		{
			name: "file replaces directory and directory replaces file",
			layers: [][]ent{
				{file("d/x", "x"), file("f", "f")},
				{file("d", "now a file"), dir("f"), file("f/inside", "i")},
			},
			want: []string{"/ d 0755 0:0", "/d f 0644 0:0 \"now a file\"", "/f d 0755 0:0", "/f/inside f 0644 0:0 \"i\""},
		},
		{
			name: "directory entry updates metadata and keeps children",
			layers: [][]ent{
				{dir("d"), file("d/x", "x")},
				{{name: "d", typ: tar.TypeDir, mode: 0o750, uid: 3, gid: 4, xattrs: map[string]string{"user.a": "b"}}},
			},
			want: []string{"/ d 0755 0:0", "/d d 0750 3:4 [user.a=b]", "/d/x f 0644 0:0 \"x\""},
		},
		{
			name:   "duplicate entries: last wins",
			layers: [][]ent{{file("a", "one"), file("a", "two"), symlink("l", "a"), symlink("l", "b")}},
			want:   []string{"/ d 0755 0:0", "/a f 0644 0:0 \"two\"", "/l l 0777 0:0 -> b"},
		},
		{
			name: "symlink replaces file; file replaces symlink",
			layers: [][]ent{
				{file("a", "a"), symlink("b", "a")},
				{symlink("a", "/etc/x"), file("b", "b")},
			},
			want: []string{"/ d 0755 0:0", "/a l 0777 0:0 -> /etc/x", "/b f 0644 0:0 \"b\""},
		},
		{
			name: "entries below a symlinked directory land in its target",
			layers: [][]ent{
				{dir("usr/lib"), symlink("lib", "usr/lib"), symlink("usr/lib64", "/usr/lib")},
				{file("lib/foo", "foo"), file("usr/lib64/bar", "bar"), file("lib/.wh.foo2", "")},
			},
			want: []string{
				"/ d 0755 0:0", "/lib l 0777 0:0 -> usr/lib", "/usr d 0755 0:0", "/usr/lib64 l 0777 0:0 -> /usr/lib",
				"/usr/lib d 0755 0:0", "/usr/lib/bar f 0644 0:0 \"bar\"", "/usr/lib/foo f 0644 0:0 \"foo\"",
			},
		},
		{
			name: "device nodes and fifos are skipped and remove what was there",
			layers: [][]ent{
				{file("dev/null", "not a device")},
				{{name: "dev/null", typ: tar.TypeChar}, {name: "dev/sda", typ: tar.TypeBlock}, {name: "run/fifo", typ: tar.TypeFifo}},
			},
			want: []string{"/ d 0755 0:0", "/dev d 0755 0:0", "/run d 0755 0:0"},
			warns: []string{
				"skipping character device /dev/null: ostree cannot store it",
				"skipping block device /dev/sda: ostree cannot store it",
				"skipping fifo /run/fifo: ostree cannot store it",
			},
		},
		{
			name:   "AUFS metadata entries are ignored",
			layers: [][]ent{{file(".wh..wh.plnk/123.456", "x"), dir(".wh..wh.orph"), file("a", "a")}},
			want:   []string{"/ d 0755 0:0", "/a f 0644 0:0 \"a\""},
		},
		{
			name:   "dot-dot inside the root is cleaned",
			layers: [][]ent{{file("a/../b", "b")}},
			want:   []string{"/ d 0755 0:0", "/b f 0644 0:0 \"b\""},
		},
		{
			// Container engines unpack absolute names below the image root.
			name:   "absolute names and hardlink targets are relative to the root",
			layers: [][]ent{{dir("/etc"), file("//etc/passwd", "x"), hardlink("/etc/p2", "/etc/passwd")}},
			want:   []string{"/ d 0755 0:0", "/etc d 0755 0:0", "/etc/passwd f 0644 0:0 \"x\"", "/etc/p2 f 0644 0:0 \"x\""},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			var raw [][]byte
			for _, l := range tc.layers {
				raw = append(raw, mkTar(t, l...))
			}
			tree, warns, err := applyAll(t, s, raw...)
			require.NoError(t, err)
			assert.ElementsMatch(t, tc.want, dump(t, s, tree))
			assert.Equal(t, tc.warns, warns)
		})
	}
}

func TestApplyStats(t *testing.T) {
	s := newStore(t)
	tree := ostree.NewTree()
	l := mkTar(t, dir("d"), file("d/a", "12345"), hardlink("d/b", "d/a"), symlink("l", "d/a"),
		file(".wh.x", ""), file("d/.wh..wh..opq", ""), ent{name: "c", typ: tar.TypeChar})
	st, err := Apply(context.Background(), tree, s, bytes.NewReader(l), Options{})
	require.NoError(t, err)
	assert.Equal(t, Stats{Entries: 7, Files: 1, Symlinks: 1, Dirs: 1, Hardlinks: 1, Whiteouts: 1, Opaques: 1, Skipped: 1, Bytes: 5}, st)
}

func gz(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, err := w.Write(b)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return buf.Bytes()
}

func TestApplyErrors(t *testing.T) {
	big := strings.Repeat("v", ostree.MaxXattrsSize+1)
	good := mkTar(t, file("first", "1"), file("second", strings.Repeat("x", 4000)))
	corrupt := append([]byte(nil), good...)
	corrupt[1024+148] ^= 0x5 // checksum field of the second header
	tests := []struct {
		name   string
		layers [][]byte
		gzip   bool // the last layer is read through gzip
		want   []string
	}{
		{name: "truncated gzip", layers: [][]byte{gz(t, good)[:len(gz(t, good))/2]}, gzip: true, want: []string{"unexpected EOF"}},
		{name: "truncated tar inside a file", layers: [][]byte{good[:2048]}, want: []string{`entry "second"`, "unexpected EOF"}},
		{name: "corrupt tar header", layers: [][]byte{corrupt}, want: []string{`after entry "first"`, "invalid tar header"}},
		{name: "dot-dot escapes", layers: [][]byte{mkTar(t, file("a/../../etc/passwd", "x"))}, want: []string{`entry "a/../../etc/passwd"`, "escapes the layer root"}},
		{name: "leading dot-dot", layers: [][]byte{mkTar(t, file("../x", "x"))}, want: []string{"escapes the layer root"}},
		{name: "absolute dot-dot escapes", layers: [][]byte{mkTar(t, file("/../etc/passwd", "x"))}, want: []string{`entry "/../etc/passwd"`, "escapes the layer root"}},
		{name: "hardlink target escapes", layers: [][]byte{mkTar(t, hardlink("a", "../../x"))}, want: []string{"hardlink target", "escapes"}},
		{name: "hardlink to a missing target", layers: [][]byte{mkTar(t, file("a", "a"), hardlink("b", "nothere"))},
			want: []string{`entry "b"`, `hardlink target "nothere" does not exist`}},
		{name: "hardlink to a directory", layers: [][]byte{mkTar(t, dir("d"), hardlink("b", "d"))}, want: []string{"is a directory"}},
		{name: "hardlink to a whited-out file", layers: [][]byte{mkTar(t, file("a", "a")), mkTar(t, file(".wh.a", ""), hardlink("b", "a"))},
			want: []string{"does not exist"}},
		{name: "non-UTF-8 name", layers: [][]byte{rawTar("caf\xe9", tar.TypeReg, "x", "")}, want: []string{"not valid UTF-8", `entry "caf\xe9"`}},
		{name: "non-UTF-8 symlink target", layers: [][]byte{rawTar("l", tar.TypeSymlink, "", "tar\xff")}, want: []string{`entry "l"`, "not valid UTF-8"}},
		{name: "xattr over ostree's limit", layers: [][]byte{paxXattrTar("big", "user.big", big)}, want: []string{"header field too long", "xattrs"}},
		{name: "name over NAME_MAX", layers: [][]byte{mkTar(t, file("usr/"+strings.Repeat("n", 300), "x"))}, want: []string{"is 300 bytes, over the 255"}},
		{name: "symlink target over PATH_MAX", layers: [][]byte{mkTar(t, symlink("l", strings.Repeat("t/", 32<<10)))}, want: []string{`entry "l"`, "is 65536 bytes, over the 4095"}},
		{name: "empty symlink target", layers: [][]byte{rawTar("l", tar.TypeSymlink, "", "")}, want: []string{`entry "l"`, "empty target"}},
		{name: "file under a regular file", layers: [][]byte{mkTar(t, file("a", "a"), file("a/b", "b"))}, want: []string{`entry "a/b"`, `"a" is not a directory`}},
		{name: "symlink loop in a parent", layers: [][]byte{mkTar(t, symlink("a", "b"), symlink("b", "a"), file("a/x", "x"))}, want: []string{"too many levels of symbolic links"}},
		{name: "file replaces root", layers: [][]byte{rawTar(".", tar.TypeReg, "", "")}, want: []string{"root directory"}},
		{name: "unsupported type", layers: [][]byte{rawTar("v", 'D', "", "")}, want: []string{"unsupported tar entry type"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			tree := ostree.NewTree()
			var err error
			for _, l := range tc.layers {
				var r io.Reader = bytes.NewReader(l)
				if tc.gzip {
					zr, zerr := gzip.NewReader(r)
					require.NoError(t, zerr)
					r = zr
				}
				if _, err = Apply(context.Background(), tree, s, r, Options{}); err != nil {
					break
				}
			}
			require.Error(t, err)
			t.Log(err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

// rawTar is a one-entry tar built by hand, for names Go's writer refuses.
func rawTar(name string, typ byte, body, link string) []byte {
	return append(pad(append(rawHeader(name, typ, len(body), link), body...)), make([]byte, 1024)...)
}

// paxXattrTar writes a PAX extended header carrying one xattr record by hand (Go's writer
// refuses records over 1 MiB), followed by the file it describes.
func paxXattrTar(name, key, value string) []byte {
	rec := " SCHILY.xattr." + key + "=" + value + "\n"
	n := len(rec)
	for len(strconv.Itoa(n))+len(rec) != n {
		n = len(strconv.Itoa(n)) + len(rec)
	}
	rec = strconv.Itoa(n) + rec
	out := pad(append(rawHeader("PaxHeaders/"+name, tar.TypeXHeader, len(rec), ""), rec...))
	return append(out, rawTar(name, tar.TypeReg, "", "")...)
}

func TestCheckXattrsLimit(t *testing.T) {
	x := ostree.Xattrs{{Name: "user.big", Value: bytes.Repeat([]byte("v"), ostree.MaxXattrsSize)}}
	err := checkXattrs(x)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "over ostree's limit")
	require.NoError(t, checkXattrs(ostree.Xattrs{{Name: "user.ok", Value: []byte("v")}}))
}

func TestContextCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Apply(ctx, ostree.NewTree(), newStore(t), bytes.NewReader(mkTar(t, file("a", "a"))), Options{})
	require.ErrorIs(t, err, context.Canceled)
}
