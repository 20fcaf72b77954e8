package exporter

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/ostree"
	"github.com/rechunker-dev/rechunker/rechunk"
)

func TestNumericFields(t *testing.T) {
	cases := []struct {
		name  string
		width int
		v     uint64
		want  []byte
	}{
		{"mode", 8, 0o755, []byte("0000755\x00")},
		{"zero mtime", 12, 0, []byte("00000000000\x00")},
		{"largest octal uid", 8, 2097151, []byte("7777777\x00")},
		{"base-256 uid", 8, 2097152, []byte{0x80, 0, 0, 0, 0, 0x20, 0, 0}},
		{"base-256 size", 12, 1 << 33, []byte{0x80, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dst := make([]byte, c.width)
			numInto(dst, c.v)
			assert.Equal(t, c.want, dst)
		})
	}
}

func TestHeaderChecksumIsSevenDigits(t *testing.T) {
	h := newGNUHeader()
	h.setType(typeDir)
	require.NoError(t, copyPathInto(h[:lenName], "usr", false, false))
	h.setCksum()
	var sum int
	for i, b := range h {
		if i >= offCksum && i < offCksum+8 {
			b = ' '
		}
		sum += int(b)
	}
	field := string(h[offCksum : offCksum+8])
	assert.Equal(t, byte(0), field[7], "tar-rs ends the checksum with NUL, not NUL+space")
	assert.Equal(t, strings.Repeat("0", 7-len(octal(sum)))+octal(sum), field[:7])
	assert.Equal(t, "ustar  \x00", string(h[offMagic:offMagic+8]))
}

func octal(n int) string {
	var b []byte
	for n > 0 {
		b = append([]byte{byte('0' + n%8)}, b...)
		n /= 8
	}
	return string(b)
}

func TestCopyPathInto(t *testing.T) {
	cases := []struct {
		name, in, want string
		link           bool
		fail           bool
	}{
		{name: "plain", in: "usr/bin", want: "usr/bin"},
		{name: "dot prefix dropped", in: "./usr/bin", want: "usr/bin"},
		{name: "root entry", in: "./", want: "./"},
		{name: "trailing slash kept", in: "usr/", want: "usr/"},
		{name: "absolute rejected", in: "/usr", fail: true},
		{name: "dotdot rejected", in: "a/../b", fail: true},
		{name: "link keeps absolute", in: "/usr/bin/sh", want: "/usr/bin/sh", link: true},
		{name: "link keeps leading dot", in: "./sh", want: "./sh", link: true},
		{name: "link drops inner dot", in: "a/./b", want: "a/b", link: true},
		{name: "link collapses slashes", in: "a//b", want: "a/b", link: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			slot := make([]byte, 100)
			err := copyPathInto(slot, c.in, c.link, false)
			if c.fail {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, c.want, string(bytes.TrimRight(slot, "\x00")))
		})
	}
}

// TestLongNameEntry: tar-rs leaves the bytes of a failed first attempt in the
// name field; a "./" path over 100 bytes therefore carries pieces written before the
// truncated retry.
func TestLongNameEntry(t *testing.T) {
	var buf bytes.Buffer
	tw := newTarWriter(&buf)
	long := "./" + strings.Repeat("a", 60) + "/" + strings.Repeat("b", 38) + "/c"
	h := newGNUHeader()
	h.setType(typeDir)
	require.NoError(t, tw.appendData(&h, long, nil, 0))
	require.Equal(t, 3*blockSize, buf.Len(), "long-name header, its data block, the entry")
	b := buf.Bytes()
	assert.Equal(t, "././@LongLink", string(bytes.TrimRight(b[:100], "\x00")))
	assert.Equal(t, byte('L'), b[offType])
	assert.Equal(t, long+"\x00", string(b[blockSize:blockSize+len(long)+1]), "payload is the path as given")
	entry := b[2*blockSize : 3*blockSize]
	normalized := strings.TrimPrefix(long, "./")
	// The first attempt wrote "aaa…/bbb…/" (100 bytes) and failed on "c"; the retry
	// wrote the truncated path ("./aaa…/bbb…" minus "./", 98 bytes) and a NUL, so byte
	// 99 still holds the "/" of the first attempt.
	assert.Equal(t, normalized[:98], string(entry[:98]))
	assert.Equal(t, byte(0), entry[98])
	assert.Equal(t, byte('/'), entry[99])

	// Go's reader sees the long name.
	tr := tar.NewReader(bytes.NewReader(append(b, make([]byte, 1024)...)))
	hdr, err := tr.Next()
	require.NoError(t, err)
	assert.Equal(t, long, hdr.Name)
}

// TestChunkLayerStructure reads a chunk layer back with archive/tar.
func TestChunkLayerStructure(t *testing.T) {
	store := newStore(t)
	in := buildInput(t, store, sampleNodes())
	e, err := newExport(in, store, topLevelPlan(in), Options{Output: "oci:" + t.TempDir()})
	require.NoError(t, err)
	var usr int
	for i, l := range e.layers {
		n := l.name
		if n == "files of usr" {
			usr = i
		}
	}
	var buf bytes.Buffer
	require.NoError(t, writeLayer(context.Background(), &buf, in.Tree, store, e.cd, e.layers[usr].spec, 2, true))
	tr := tar.NewReader(&buf)
	var names []string
	byName := map[string]*tar.Header{}
	var prevObject string
	keySum := in.Tree.LookupFile("/usr/etc/private/key").Checksum
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		assert.Zero(t, h.ModTime.Unix(), h.Name)
		assert.Empty(t, h.Uname, h.Name)
		assert.Empty(t, h.Gname, h.Name)
		assert.Zero(t, h.Mode&^0o7777, "mode without type bits: %s", h.Name)
		names = append(names, h.Name)
		byName[h.Name] = h
		if strings.HasSuffix(h.Name, ".file") {
			assert.Equal(t, strings.TrimSuffix(h.Name, ".file")+".file-xattrs-link", prevObject, "xattrs entry right before %s", h.Name)
		}
		prevObject = h.Name
	}
	assert.Equal(t, "sysroot", names[0])
	assert.Equal(t, repoDir+"/config", names[4+256+len(repoSubdirs)])

	keyObj := objectTarPath(keySum, ostree.ObjFile)
	require.Contains(t, byName, keyObj)
	assert.Equal(t, map[string]string{"SCHILY.xattr.user.a": "1", "SCHILY.xattr.user.b": "two"}, byName[keyObj].PAXRecords)
	assert.Equal(t, byte(tar.TypeLink), byName["etc/private/key"].Typeflag)
	assert.Equal(t, keyObj, byName["etc/private/key"].Linkname)
	assert.Equal(t, byte(tar.TypeReg), byName["etc/empty"].Typeflag, "empty files are not hardlinked")
	assert.Equal(t, 1000, byName["etc/empty"].Uid)

	// Format 2: parents before children, root first, from the tree's metadata.
	idx := func(n string) int {
		for i, x := range names {
			if x == n {
				return i
			}
		}
		return -1
	}
	require.NotEqual(t, -1, idx("etc/private"), "parent directory entries present: %v", names)
	assert.Less(t, idx("etc"), idx("etc/private"))
	assert.Less(t, idx("etc/private"), idx("etc/private/key"))
	assert.Equal(t, 0o700, int(byName["etc/private"].Mode))
	assert.Equal(t, 1000, byName["etc/private"].Uid)
	assert.Equal(t, -1, idx("usr/etc"), "usr/etc is shown as etc")
}

// TestHardlinkHeaderReusesObjectHeader: like ostree-ext, a checkout entry is the object's
// header with the path replaced, so the name field keeps the object path's tail after
// the NUL and the fields other than type, size and link name are the object's.
func TestHardlinkHeaderReusesObjectHeader(t *testing.T) {
	store := newStore(t)
	in := buildInput(t, store, sampleNodes())
	sum := in.Tree.LookupFile("/usr/bin/sh").Checksum
	spec, _ := specFrom([]rechunk.FileRef{{Dir: "/usr/bin/", Name: "sh", File: in.Tree.LookupFile("/usr/bin/sh")}})
	var buf bytes.Buffer
	require.NoError(t, writeLayer(context.Background(), &buf, in.Tree, store, nil, spec, 1, true))
	raw := buf.Bytes()
	objPath := objectTarPath(sum, ostree.ObjFile)
	var link []byte
	for off := 0; off+blockSize <= len(raw); off += blockSize {
		if bytes.HasPrefix(raw[off:], []byte("usr/bin/sh\x00")) {
			link = raw[off : off+blockSize]
		}
	}
	require.NotNil(t, link)
	n := len("usr/bin/sh")
	assert.Equal(t, objPath[n+1:], string(link[n+1:len(objPath)]), "tail of the object path after the NUL")
	assert.Equal(t, byte(typeLink), link[offType])
	assert.Equal(t, objPath, string(bytes.TrimRight(link[offLinkname:offLinkname+lenLinkname], "\x00")))
}
