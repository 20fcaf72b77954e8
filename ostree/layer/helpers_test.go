package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/ostree"
)

// ent is one tar entry of a hand-built layer.
type ent struct {
	name   string
	typ    byte // tar type flag; 0 means regular file
	body   string
	link   string
	mode   int64 // default 0644 for files, 0755 for dirs
	uid    int
	gid    int
	xattrs map[string]string
}

func dir(name string) ent             { return ent{name: name, typ: tar.TypeDir} }
func file(name, body string) ent      { return ent{name: name, body: body} }
func symlink(name, target string) ent { return ent{name: name, typ: tar.TypeSymlink, link: target} }
func hardlink(name, target string) ent {
	return ent{name: name, typ: tar.TypeLink, link: target}
}

// mkTar writes entries as a PAX tar, the format umoci and buildah produce.
func mkTar(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, Uid: e.uid, Gid: e.gid, Format: tar.FormatPAX}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if len(e.xattrs) > 0 {
			h.PAXRecords = map[string]string{}
			for k, v := range e.xattrs {
				h.PAXRecords["SCHILY.xattr."+k] = v
			}
		}
		require.NoError(t, tw.WriteHeader(h), e.name)
		if h.Typeflag == tar.TypeReg {
			_, err := io.WriteString(tw, e.body)
			require.NoError(t, err)
		}
	}
	require.NoError(t, tw.Close())
	return buf.Bytes()
}

// rawHeader builds a ustar header block by hand, for names and records Go's writer refuses.
func rawHeader(name string, typ byte, size int, link string) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[157:257], link)
	copy(b[100:108], "0000644\x00")
	copy(b[108:116], "0000000\x00")
	copy(b[116:124], "0000000\x00")
	copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	copy(b[136:148], "00000000000\x00")
	b[156] = typ
	copy(b[257:263], "ustar\x00")
	copy(b[263:265], "00")
	for i := 148; i < 156; i++ {
		b[i] = ' '
	}
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func pad(b []byte) []byte {
	if r := len(b) % 512; r != 0 {
		b = append(b, make([]byte, 512-r)...)
	}
	return b
}

func newStore(t testing.TB) *ostree.Store {
	t.Helper()
	s, err := ostree.OpenStore(t.TempDir())
	require.NoError(t, err)
	return s
}

// applyAll applies layers in order to a fresh tree.
func applyAll(t testing.TB, s *ostree.Store, layers ...[]byte) (*ostree.Tree, []string, error) {
	t.Helper()
	tree := ostree.NewTree()
	var warnings []string
	for i, l := range layers {
		if _, err := Apply(context.Background(), tree, s, bytes.NewReader(l), Options{Warn: func(m string) { warnings = append(warnings, m) }}); err != nil {
			return tree, warnings, fmt.Errorf("layer %d: %w", i, err)
		}
	}
	return tree, warnings, nil
}

// dump lists a tree one entry per line: path, type, mode, owner, xattrs, and the content
// of regular files as read back from the store (so it checks the store too).
func dump(t testing.TB, s *ostree.Store, tree *ostree.Tree) []string {
	t.Helper()
	var out []string
	xs := func(x ostree.Xattrs) string {
		var p []string
		for _, a := range x {
			p = append(p, a.Name+"="+string(a.Value))
		}
		sort.Strings(p)
		if len(p) == 0 {
			return ""
		}
		return " [" + strings.Join(p, ",") + "]"
	}
	require.NoError(t, tree.Walk(func(p string, d *ostree.Dir, f *ostree.File) error {
		if d != nil {
			out = append(out, fmt.Sprintf("%s d %04o %d:%d%s", p, d.Meta.Mode&0o7777, d.Meta.UID, d.Meta.GID, xs(d.Meta.Xattrs)))
			return nil
		}
		h := f.Header
		if h.IsSymlink() {
			out = append(out, fmt.Sprintf("%s l %04o %d:%d%s -> %s", p, h.Mode&0o7777, h.UID, h.GID, xs(h.Xattrs), h.Target))
			return nil
		}
		obj, err := s.OpenFileContent(f)
		require.NoError(t, err)
		body, err := io.ReadAll(obj)
		require.NoError(t, err)
		obj.Close()
		require.Equal(t, obj.Header, *h, p)
		require.Equal(t, f.Size, int64(len(body)), p)
		require.Equal(t, ostree.ContentChecksum(*h, body), f.Checksum, p)
		out = append(out, fmt.Sprintf("%s f %04o %d:%d%s %q", p, h.Mode&0o7777, h.UID, h.GID, xs(h.Xattrs), body))
		return nil
	}))
	return out
}
