package ostree

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/ostree/gvariant"
)

func FuzzParseDirTree(f *testing.F) {
	tr := tv1Tree(f, false)
	_, _, err := tr.Finalize(nil)
	require.NoError(f, err)
	f.Add(tr.Root.DirTree().Marshal())
	f.Add(tr.Root.Dirs["sub"].DirTree().Marshal())
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseDirTree(data)
		if err != nil {
			return
		}
		enc, err := d.Encode()
		require.NoError(t, err, "a parsed dirtree must encode")
		back, err := ParseDirTree(enc)
		require.NoError(t, err)
		require.Equal(t, d, back)
		enc2, err := back.Encode()
		require.NoError(t, err)
		require.True(t, bytes.Equal(enc, enc2))
	})
}

func FuzzParseCommit(f *testing.F) {
	for _, c := range []Commit{
		{Subject: "test", Timestamp: 1700000000},
		{Subject: "s", Body: "b", Parent: make([]byte, 32), Metadata: Metadata{{"version", mustVariant("s", "1")}}},
	} {
		b, err := c.Marshal()
		require.NoError(f, err)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCommit(data)
		if err != nil {
			return
		}
		enc, err := c.Marshal()
		require.NoError(t, err, "a parsed commit must encode")
		back, err := ParseCommit(enc)
		require.NoError(t, err)
		require.Equal(t, c, back)
	})
}

func FuzzParseFileHeader(f *testing.F) {
	f.Add(FileHeader{Mode: ModeSymlink | 0o777, Target: "hello.txt"}.Marshal())
	f.Add(FileHeader{Mode: ModeRegular | 0o644, Xattrs: Xattrs{{"user.a", []byte("1")}}}.Marshal())
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseFileHeader(data)
		if err != nil {
			return
		}
		back, err := ParseFileHeader(h.Marshal())
		require.NoError(t, err)
		require.Equal(t, h, back)
	})
}

func mustVariant(typ string, v any) gvariant.Variant { return gvariant.Variant{Type: typ, Value: v} }
