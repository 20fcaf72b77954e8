package ostree

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/ostree/gvariant"
)

// Checksums from `ostree ls -RC` of the TV1 and TV2 commits (ostree 2022.7).
const (
	csHello      = "44f778e59f0a4748d6b0c90a47347212a231c4ad1e8f7ea5c5dffc7749153a6b"
	csLink       = "f66efa496a72379413c44593de510dc344beb045294f1a543da87b2b6118db35"
	csRun        = "89b350d278ff59ba4780bc377b8ebfee8ade6b55c99fab1ec84e133bc6ea52c5"
	csXattrTxt   = "23d81c4d2a5b6635f6eeed0253823a98f381871d77f450abb284bdd95ffb062e"
	csXattrCanon = "94a164a03ad12ab79e30ff15099266f2f4bf63c6fcd18660c53584d91da47410"
	csEmptyTree  = "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
	csDirMeta755 = "446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488"
	csRootTV1    = "09b943a96c6d82943283e9d84744c66c93a3f661dd19ce6eeb07fca70c2ed749"
	csRootTV2    = "709c0e6e91618d52fb081c2b77a8c3a6b5e48dcdc6fbcaa6dde7aedaeea24aff"
	csSubTV1     = "6e9c5c15a92f2f1131b40780d516b69ee82e9b9e175a382aa32b3df8bc784426"
	csSubTV2     = "9ecd4a1d65796e53380120a1ed0b9190a37e4d3981f8c56460c5101bd3911ed5"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.NewReplacer(" ", "", "\n", "", "\t", "").Replace(s))
	require.NoError(t, err)
	return b
}

func mustSum(t testing.TB, s string) Checksum {
	t.Helper()
	c, err := ParseChecksum(s)
	require.NoError(t, err)
	return c
}

// tv1Tree builds the tree of test vector TV1 from ../shared/docs/ostree-objects.md.
func tv1Tree(t testing.TB, canonical bool) *Tree {
	t.Helper()
	tr := NewTree()
	reg := func(mode uint32, x Xattrs) FileHeader {
		return FileHeader{Mode: ModeRegular | mode, Xattrs: x.Normalize()}
	}
	add := func(d *Dir, name string, h FileHeader, payload string) {
		d.Files[name] = &File{Header: &h, Size: int64(len(payload)), Checksum: ContentChecksum(h, []byte(payload))}
	}
	add(tr.Root, "hello.txt", reg(0o644, nil), "hello\n")
	add(tr.Root, "run.sh", reg(0o755, nil), "#!/bin/sh\necho hi\n")
	add(tr.Root, "link", FileHeader{Mode: ModeSymlink | 0o777, Target: "hello.txt"}, "")
	tr.Root.Dirs["empty"] = NewDir(DirMeta{Mode: ModeDir | 0o755})
	sub := NewDir(DirMeta{Mode: ModeDir | 0o755})
	tr.Root.Dirs["sub"] = sub
	var x Xattrs
	if !canonical {
		x = Xattrs{{"user.component", []byte("foo")}, {"user.aaa", []byte("1")}}
	}
	add(sub, "xattr.txt", reg(0o644, x), "data\n")
	return tr
}

func TestTestVectors(t *testing.T) {
	tests := []struct {
		name      string
		canonical bool
		meta      Metadata
		subject   string
		body      string
		ts        uint64
		parent    string
		want      string
	}{
		{name: "TV1", subject: "test", ts: 1700000000, want: "bb0ddcdbaeade35c988cc39dae6793b3049f133a8a6a88a2cf6e1ea6d6f0aac6"},
		{name: "TV2", canonical: true, subject: "test", ts: 1700000000, want: "107732ca0ad2d15c86517a0c402f3cae8946a36763b28788946308d36d3faca0"},
		{name: "TV3", subject: "test", body: "a body", ts: 1700000000,
			meta: Metadata{{"ostree.ref-binding", gvariant.Variant{Type: "as", Value: []any{"test/bind"}}}},
			want: "ca3d6f765ea3d2d90a3c453f41051d8adfe12a5cc71e25435cb106b49396ab27"},
		{name: "TV4", subject: "test", ts: 1700000000,
			meta: Metadata{
				{"version", gvariant.Variant{Type: "s", Value: "42"}},
				{"a.key", gvariant.Variant{Type: "s", Value: "b"}},
				{"ostree.bootable", gvariant.Variant{Type: "b", Value: true}},
				{"ostree.ref-binding", gvariant.Variant{Type: "as", Value: []any{"test/meta"}}},
			},
			want: "ae8aabbb62cb92f779420e99b8343e23679666d41594d4947f899f56372bd7ad"},
		{name: "TV5", subject: "second", ts: 1700000100, parent: "bb0ddcdbaeade35c988cc39dae6793b3049f133a8a6a88a2cf6e1ea6d6f0aac6",
			want: "e53cd0c29c1b23960d034717da1615c3a6fcc32cb78c295d1b23358830743954"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := tv1Tree(t, tc.canonical)
			rt, rm, err := tr.Finalize(nil)
			require.NoError(t, err)
			c := Commit{Metadata: tc.meta, Subject: tc.subject, Body: tc.body, Timestamp: tc.ts, RootTree: rt, RootMeta: rm}
			if tc.parent != "" {
				p, err := ParseChecksum(tc.parent)
				require.NoError(t, err)
				c.Parent = p[:]
			}
			sum, err := c.Checksum()
			require.NoError(t, err)
			require.Equal(t, tc.want, sum.String())
			raw, err := c.Marshal()
			require.NoError(t, err)
			back, err := ParseCommit(raw)
			require.NoError(t, err)
			if c.Parent == nil {
				c.Parent = []byte{}
			}
			require.Equal(t, c, back)
		})
	}
}

// The byte dumps of §A.2 of ostree-objects.md: the hashed prefix (length, padding,
// header) of three content objects.
func TestContentObjectBytes(t *testing.T) {
	tests := []struct {
		name    string
		h       FileHeader
		payload string
		prefix  string
		want    string
	}{
		{
			name:    "hello.txt",
			h:       FileHeader{Mode: ModeRegular | 0o644},
			payload: "hello\n",
			prefix:  "00000012 00000000 | 00000000 00000000 000081a4 00000000 00 11",
			want:    csHello,
		},
		{
			name:   "symlink",
			h:      FileHeader{Mode: ModeSymlink | 0o777, Target: "hello.txt"},
			prefix: "0000001b 00000000 00000000 00000000 0000a1ff 00000000 68656c6c6f2e747874 00 1a",
			want:   csLink,
		},
		{
			name: "xattr.txt",
			h: FileHeader{Mode: ModeRegular | 0o644, Xattrs: Xattrs{
				{"user.component", []byte("foo")}, {"user.aaa", []byte("1")}}.Normalize()},
			payload: "data\n",
			prefix: "00000032 00000000 00000000 00000000 000081a4 00000000 00" +
				"757365722e61616100 31 09 757365722e636f6d706f6e656e7400 666f6f 0f 0b 1e 11",
			want: csXattrTxt,
		},
		{
			name: "xattr.txt canonical",
			h:    FileHeader{Mode: ModeRegular | 0o644}, payload: "data\n",
			prefix: "00000012 00000000 00000000 00000000 000081a4 00000000 00 11",
			want:   csXattrCanon,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, tc.h.Validate())
			want := unhex(t, strings.ReplaceAll(tc.prefix, "|", ""))
			assert.Equal(t, hex.EncodeToString(want), hex.EncodeToString(ContentPrefix(tc.h)))
			all := append(append([]byte{}, want...), tc.payload...)
			assert.Equal(t, tc.want, sha256Hex(all), "sha256 of prefix and payload")
			assert.Equal(t, tc.want, ContentChecksum(tc.h, []byte(tc.payload)).String())
			back, err := ParseFileHeader(want[8:])
			require.NoError(t, err)
			assert.Equal(t, tc.h, back)
		})
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestStandaloneConstants(t *testing.T) {
	dm := DirMeta{Mode: ModeDir | 0o755}
	assert.Equal(t, "00000000 00000000 000041ed", spaced(dm.Marshal(), 4))
	assert.Equal(t, csDirMeta755, dm.Checksum().String())

	empty := DirTree{}
	assert.Equal(t, []byte{0}, empty.Marshal())
	assert.Equal(t, csEmptyTree, empty.Checksum().String())

	back, err := ParseDirMeta(dm.Marshal())
	require.NoError(t, err)
	assert.Equal(t, dm, back)
}

func spaced(b []byte, n int) string {
	var parts []string
	for i := 0; i < len(b); i += n {
		parts = append(parts, hex.EncodeToString(b[i:min(i+n, len(b))]))
	}
	return strings.Join(parts, " ")
}

// TestTV1RootDirTree checks the 270-byte layout of TV1's root dirtree: 1-byte offsets
// inside both arrays, a 2-byte tuple offset because the whole exceeds 255 bytes.
func TestTV1RootDirTree(t *testing.T) {
	tr := tv1Tree(t, false)
	rt, rm, err := tr.Finalize(nil)
	require.NoError(t, err)
	assert.Equal(t, csRootTV1, rt.String())
	assert.Equal(t, csDirMeta755, rm.String())
	assert.Equal(t, csSubTV1, tr.Root.Dirs["sub"].TreeSum.String())
	assert.Equal(t, csEmptyTree, tr.Root.Dirs["empty"].TreeSum.String())

	c := func(s string) string { x := mustSum(t, s); return hex.EncodeToString(x[:]) }
	str := func(s string) string { return hex.EncodeToString(append([]byte(s), 0)) }
	want := unhex(t, str("hello.txt")+c(csHello)+"0a"+str("link")+c(csLink)+"05"+str("run.sh")+c(csRun)+"07"+"2b5179"+
		str("empty")+c(csEmptyTree)+c(csDirMeta755)+"2606"+str("sub")+c(csSubTV1)+c(csDirMeta755)+"2404"+"488e"+
		"7c00")
	require.Len(t, want, 270)
	got := tr.Root.DirTree().Marshal()
	assert.Equal(t, hex.EncodeToString(want), hex.EncodeToString(got))

	back, err := ParseDirTree(got)
	require.NoError(t, err)
	assert.Equal(t, tr.Root.DirTree(), back)

	sub := tr.Root.Dirs["sub"].DirTree().Marshal()
	assert.Equal(t, str("xattr.txt")+c(csXattrTxt)+"0a2b2c", hex.EncodeToString(sub), "45-byte sub dirtree")
}

func TestTV2Checksums(t *testing.T) {
	tr := tv1Tree(t, true)
	rt, _, err := tr.Finalize(nil)
	require.NoError(t, err)
	assert.Equal(t, csRootTV2, rt.String())
	assert.Equal(t, csSubTV2, tr.Root.Dirs["sub"].TreeSum.String())
	assert.Equal(t, csXattrCanon, tr.Root.Dirs["sub"].Files["xattr.txt"].Checksum.String())
}

func tv1Commit(t *testing.T) Commit {
	tr := tv1Tree(t, false)
	rt, rm, err := tr.Finalize(nil)
	require.NoError(t, err)
	return Commit{Subject: "test", Timestamp: 1700000000, RootTree: rt, RootMeta: rm}
}

func TestTV1CommitBytes(t *testing.T) {
	c := tv1Commit(t)
	got, err := c.Marshal()
	require.NoError(t, err)
	want := unhex(t, "7465737400 00 0000 000000006553f100"+csRootTV1+csDirMeta755+"300605000000")
	require.Len(t, want, 86)
	assert.Equal(t, hex.EncodeToString(want), hex.EncodeToString(got))
}

func TestTV3CommitBytesAndContentChecksum(t *testing.T) {
	c := tv1Commit(t)
	c.Body = "a body"
	c.Metadata = Metadata{{"ostree.ref-binding", gvariant.Variant{Type: "as", Value: []any{"test/bind"}}}}
	got, err := c.Marshal()
	require.NoError(t, err)
	require.Len(t, got, 134)
	wantStart := unhex(t, hex.EncodeToString([]byte("ostree.ref-binding\x00"))+"0000000000"+
		hex.EncodeToString([]byte("test/bind\x00"))+"0a00"+hex.EncodeToString([]byte("as"))+"13"+"27")
	assert.Equal(t, hex.EncodeToString(wantStart), hex.EncodeToString(got[:len(wantStart)]))
	assert.Equal(t, "104aea117b176f4f1e02f1a4b483a729657a4fed4f7fda002e5fb3a53ebb2cdc",
		ContentChecksumOfRoot(c.RootTree, c.RootMeta).String())

	md, err := c.Metadata.Marshal()
	require.NoError(t, err)
	back, err := ParseMetadata(md)
	require.NoError(t, err)
	assert.Equal(t, c.Metadata, back)
}

func TestTV4MetadataPadding(t *testing.T) {
	m := Metadata{
		{"version", gvariant.Variant{Type: "s", Value: "42"}},
		{"a.key", gvariant.Variant{Type: "s", Value: "b"}},
	}
	got, err := m.Marshal()
	require.NoError(t, err)
	want := hex.EncodeToString([]byte("version\x0042\x00\x00s")) + "080000" + hex.EncodeToString([]byte("a.key\x00"))
	assert.True(t, strings.HasPrefix(hex.EncodeToString(got), want), "got %x", got)
}

// TestLargeDirTree checks a dirtree over 64 KiB, which needs 4-byte framing offsets in
// the outer tuple and the files array, and that it parses back.
func TestLargeDirTree(t *testing.T) {
	var dt DirTree
	for i := 0; i < 2000; i++ {
		dt.Files = append(dt.Files, DirTreeFile{Name: strings.Repeat("f", 20) + string(rune('a'+i%26)) + hex.EncodeToString([]byte{byte(i >> 8), byte(i)}),
			Checksum: sha256.Sum256([]byte{byte(i)})})
	}
	b := dt.Marshal()
	require.Greater(t, len(b), 65535)
	// The tuple offset (end of the files array) is the last 4 bytes, little-endian.
	end := int(b[len(b)-4]) | int(b[len(b)-3])<<8 | int(b[len(b)-2])<<16 | int(b[len(b)-1])<<24
	assert.Equal(t, len(b)-4, end, "dirs array is empty, so files end where the offset starts")
	back, err := ParseDirTree(b)
	require.NoError(t, err)
	require.Len(t, back.Files, 2000)
	assert.True(t, bytes.Equal(b, back.Marshal()))
}

func TestDirTreeEncodeRejects(t *testing.T) {
	var c Checksum
	tests := []struct {
		name string
		dt   DirTree
		want string
	}{
		{"non-utf8 name", DirTree{Files: []DirTreeFile{{Name: "a\xff", Checksum: c}}}, "UTF-8"},
		{"slash", DirTree{Files: []DirTreeFile{{Name: "a/b", Checksum: c}}}, "contains '/'"},
		{"dot dot", DirTree{Dirs: []DirTreeDir{{Name: ".."}}}, "invalid file name"},
		{"duplicate file", DirTree{Files: []DirTreeFile{{Name: "a"}, {Name: "a"}}}, "twice"},
		{"file and dir", DirTree{Files: []DirTreeFile{{Name: "a"}}, Dirs: []DirTreeDir{{Name: "a"}}}, "both"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.dt.Encode()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Panics(t, func() { tc.dt.Marshal() })
		})
	}
}

func TestFileHeaderValidate(t *testing.T) {
	tests := []struct {
		name string
		h    FileHeader
		want string
	}{
		{"regular with target", FileHeader{Mode: ModeRegular | 0o644, Target: "x"}, "symlink target"},
		{"symlink without target", FileHeader{Mode: ModeSymlink | 0o777}, "empty target"},
		{"directory mode", FileHeader{Mode: ModeDir | 0o755}, "not a regular file"},
		{"non-utf8 target", FileHeader{Mode: ModeSymlink | 0o777, Target: "\xff"}, "UTF-8"},
		{"NUL target", FileHeader{Mode: ModeSymlink | 0o777, Target: "a\x00"}, "NUL"},
		{"empty xattr name", FileHeader{Mode: ModeRegular, Xattrs: Xattrs{{"", []byte("1")}}}, "xattr name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.h.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestFinalizeNamesBadPath(t *testing.T) {
	tr := NewTree()
	d := NewDir(DirMeta{Mode: ModeDir | 0o755})
	tr.Root.Dirs["etc"] = d
	d.Files["bad\xffname"] = &File{Header: &FileHeader{Mode: ModeRegular | 0o644}}
	_, _, err := tr.Finalize(nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "/etc")
}

func TestXattrsNormalize(t *testing.T) {
	x := Xattrs{{"user.b", []byte("2")}, {"user.empty", nil}, {"user.a", []byte("1")}, {"user.b", []byte("3")}}
	assert.Equal(t, Xattrs{{"user.a", []byte("1")}, {"user.b", []byte("3")}}, x.Normalize())
	assert.Nil(t, Xattrs{{"user.empty", []byte{}}}.Normalize())
	back, err := ParseXattrs(x.Normalize().Marshal())
	require.NoError(t, err)
	assert.Equal(t, x.Normalize(), back)
}

func TestHeaderTableSharesEqualHeaders(t *testing.T) {
	reg := func(uid uint32, mode uint32, x ...Xattr) FileHeader {
		return FileHeader{UID: uid, Mode: ModeRegular | mode, Xattrs: Xattrs(x).Normalize()}
	}
	tests := []struct {
		name  string
		a, b  FileHeader
		share bool
	}{
		{"equal", reg(0, 0o644), reg(0, 0o644), true},
		{"equal xattrs", reg(0, 0o644, Xattr{"user.a", []byte("1")}), reg(0, 0o644, Xattr{"user.a", []byte("1")}), true},
		{"owner differs", reg(0, 0o644), reg(1, 0o644), false},
		{"mode differs", reg(0, 0o644), reg(0, 0o755), false},
		{"xattr value differs", reg(0, 0o644, Xattr{"user.a", []byte("1")}), reg(0, 0o644, Xattr{"user.a", []byte("2")}), false},
		{"xattr split differs", reg(0, 0o644, Xattr{"user.a", []byte("1\x00user.b")}), reg(0, 0o644, Xattr{"user.a", []byte("1")}, Xattr{"user.b", []byte("")}), false},
		{"symlinks never shared", FileHeader{Mode: ModeSymlink | 0o777, Target: "x"}, FileHeader{Mode: ModeSymlink | 0o777, Target: "x"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ht HeaderTable
			a, b := ht.Intern(tc.a), ht.Intern(tc.b)
			require.Equal(t, tc.a, *a)
			require.Equal(t, tc.b, *b)
			require.Equal(t, tc.share, a == b)
		})
	}
}

// genericDirTree is the dirtree serialized by the generic gvariant encoder: the oracle
// for appendDirTree's hand-written framing. Entries must be sorted.
func genericDirTree(t testing.TB, dt DirTree) []byte {
	fv := make([]any, 0, len(dt.Files))
	for _, f := range dt.Files {
		c := f.Checksum
		fv = append(fv, []any{f.Name, c[:]})
	}
	dv := make([]any, 0, len(dt.Dirs))
	for _, d := range dt.Dirs {
		tr, m := d.Tree, d.Meta
		dv = append(dv, []any{d.Name, tr[:], m[:]})
	}
	b, err := gvariant.EncodeType(dirTreeType, []any{fv, dv})
	require.NoError(t, err)
	return b
}

// manyEntries makes n files and n directories with names of width characters.
func manyEntries(n, width int) DirTree {
	var dt DirTree
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("%0*d", width, i)
		dt.Files = append(dt.Files, DirTreeFile{Name: "f" + name, Checksum: sha256.Sum256([]byte(name))})
		dt.Dirs = append(dt.Dirs, DirTreeDir{Name: "d" + name, Tree: sha256.Sum256([]byte("t" + name)), Meta: sha256.Sum256([]byte("m" + name))})
	}
	return dt
}

// TestDirTreeEncodingMatchesGVariant: every framing-offset width (1, 2 and 4 bytes, in
// entries, arrays and the outer tuple) gives the generic encoder's bytes.
func TestDirTreeEncodingMatchesGVariant(t *testing.T) {
	long := strings.Repeat("x", 250) // an entry over 255 bytes: 2-byte offsets inside it
	tests := []struct {
		name string
		dt   DirTree
	}{
		{"empty", DirTree{}},
		{"one file", DirTree{Files: []DirTreeFile{{Name: "a", Checksum: sha256.Sum256([]byte("a"))}}}},
		{"one directory", DirTree{Dirs: []DirTreeDir{{Name: "etc", Tree: sha256.Sum256([]byte("t")), Meta: sha256.Sum256([]byte("m"))}}}},
		{"long names", DirTree{Files: []DirTreeFile{{Name: long}}, Dirs: []DirTreeDir{{Name: "d" + long}}}},
		{"a few entries (1-byte offsets)", manyEntries(2, 3)},
		{"arrays over 255 bytes (2-byte offsets)", manyEntries(40, 8)},
		{"over 64 KiB (4-byte offsets)", manyEntries(1200, 20)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.dt.Encode()
			require.NoError(t, err)
			assert.Equal(t, genericDirTree(t, tc.dt), got)
			back, err := ParseDirTree(got)
			require.NoError(t, err)
			assert.Equal(t, len(tc.dt.Files), len(back.Files))
			assert.Equal(t, len(tc.dt.Dirs), len(back.Dirs))
		})
	}
}

// TestDirTreeEncodeSortsUnsortedInput: unsorted entries are encoded sorted, without
// reordering the caller's slices.
func TestDirTreeEncodeSortsUnsortedInput(t *testing.T) {
	dt := DirTree{
		Files: []DirTreeFile{{Name: "b"}, {Name: "a"}},
		Dirs:  []DirTreeDir{{Name: "z"}, {Name: "c"}},
	}
	sorted := DirTree{
		Files: []DirTreeFile{{Name: "a"}, {Name: "b"}},
		Dirs:  []DirTreeDir{{Name: "c"}, {Name: "z"}},
	}
	got, err := dt.Encode()
	require.NoError(t, err)
	assert.Equal(t, genericDirTree(t, sorted), got)
	assert.Equal(t, "b", dt.Files[0].Name, "the caller's slice is not reordered")
	assert.Equal(t, "z", dt.Dirs[0].Name, "the caller's slice is not reordered")
}
