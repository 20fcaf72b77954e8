package gvariant

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	require.NoError(t, err)
	return b
}

// The expected bytes are worked out by hand from the GVariant specification (alignment,
// padding, framing-offset width), not produced by this encoder.
func TestEncodeDecode(t *testing.T) {
	tests := []struct {
		name string
		sig  string
		v    any
		want string
	}{
		{"byte", "y", byte(0x2a), "2a"},
		{"bool", "b", true, "01"},
		{"int16", "n", int16(-2), "feff"},
		{"uint16", "q", uint16(0x1234), "3412"},
		{"int32", "i", int32(-1), "ffffffff"},
		{"handle", "h", int32(3), "03000000"},
		{"uint32 little-endian", "u", uint32(0x01020304), "04030201"},
		{"int64", "x", int64(-2), "feffffffffffffff"},
		{"uint64", "t", uint64(1), "0100000000000000"},
		{"double", "d", 1.0, "000000000000f03f"},
		{"string", "s", "hello", "68656c6c6f00"},
		{"empty string", "s", "", "00"},
		{"utf-8 string", "s", "é", "c3a900"},
		{"object path", "o", "/a/b_1", "2f612f625f3100"},
		{"root object path", "o", "/", "2f00"},
		{"signature", "g", "a{sv}", "617b73767d00"},
		{"empty signature", "g", "", "00"},
		{"variant string", "v", Variant{"s", "42"}, "34320000 73"},
		{"variant uint32", "v", Variant{"u", uint32(7)}, "07000000 00 75"},
		{"variant of variant", "v", Variant{"v", Variant{"y", byte(1)}}, "01 00 79 00 76"},
		{"variant of array", "v", Variant{"as", []any{"a"}}, "6100 02 00 6173"},
		{"maybe nothing", "ms", nil, ""},
		{"maybe just variable", "ms", "a", "6100 00"},
		{"maybe just fixed", "mu", uint32(5), "05000000"},
		{"maybe just empty array", "mas", []any{}, "00"},
		{"maybe just fixed tuple", "m(yy)", []any{byte(1), byte(2)}, "0102"},
		{"bytes", "ay", []byte{1, 2}, "0102"},
		{"empty bytes", "ay", []byte{}, ""},
		{"fixed array", "au", []any{uint32(1), uint32(2)}, "01000000 02000000"},
		{"empty string array", "as", []any{}, ""},
		{"string array", "as", []any{"a", "bc"}, "6100 626300 02 05"},
		{"array of byte arrays", "aay", []any{[]byte{1}, []byte{}, []byte{2, 3}}, "01 0203 01 01 03"},
		{"tuple aligns t to 8", "(yt)", []any{byte(1), uint64(2)}, "01 00000000000000 0200000000000000"},
		{"fixed tuple padded to its alignment", "(ty)", []any{uint64(2), byte(1)}, "0200000000000000 01 00000000000000"},
		{"tuple aligns q to 2", "(yq)", []any{byte(1), uint16(2)}, "01 00 0200"},
		{"tuple offset for non-last string", "(sy)", []any{"a", byte(7)}, "6100 07 02"},
		{"tuple no offset for last string", "(ys)", []any{byte(7), "a"}, "07 6100"},
		{"tuple pads after string", "(su)", []any{"ab", uint32(3)}, "616200 00 03000000 03"},
		{"tuple offsets reversed", "(sss)", []any{"a", "b", "c"}, "6100 6200 6300 04 02"},
		{"unit tuple", "()", []any{}, "00"},
		{"array of unit tuples", "a()", []any{[]any{}, []any{}}, "00 00"},
		// Dict entries are 8-aligned because of v, so padding sits between entries.
		{"dict padding", "a{sv}", []any{
			[]any{"a", Variant{"u", uint32(1)}},
			[]any{"bc", Variant{"s", "x"}},
		}, "6100 000000000000 01000000 00 75 02 00 626300 0000000000 78000073 03 0f 1d"},
		{"dict with basic key", "a{yy}", []any{[]any{byte(1), byte(2)}}, "0102"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := unhex(t, tc.want)
			got, err := Encode(tc.sig, tc.v)
			require.NoError(t, err)
			assert.Equal(t, hex.EncodeToString(want), hex.EncodeToString(got))
			back, err := Decode(tc.sig, got)
			require.NoError(t, err)
			assert.Equal(t, tc.v, back)
		})
	}
}

// TestOffsetWidth checks GLib's rule: a container of body B with n offsets uses 1-byte
// offsets while B+n <= 0xff, 2-byte while B+2n <= 0xffff, else 4 bytes.
func TestOffsetWidth(t *testing.T) {
	tests := []struct {
		name      string
		strLen    int // one string of this many bytes (plus NUL) in an "as"
		wantWidth int
	}{
		{"1 byte at the limit", 253, 1},
		{"2 bytes just over", 254, 2},
		{"2 bytes at the limit", 65532, 2},
		{"4 bytes just over", 65533, 4},
		{"4 bytes well over 64KiB", 100000, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := strings.Repeat("x", tc.strLen)
			got, err := Encode("as", []any{s})
			require.NoError(t, err)
			body := tc.strLen + 1
			require.Len(t, got, body+tc.wantWidth)
			off := got[body:]
			var end int
			for i := len(off) - 1; i >= 0; i-- {
				end = end<<8 | int(off[i])
			}
			assert.Equal(t, body, end, "framing offset is the little-endian end of the element")
			back, err := Decode("as", got)
			require.NoError(t, err)
			assert.Equal(t, []any{s}, back)
		})
	}
}

func TestTupleOffsetWidth(t *testing.T) {
	// A 300-byte first member forces 2-byte offsets in the tuple.
	a := strings.Repeat("a", 299)
	got, err := Encode("(ss)", []any{a, "b"})
	require.NoError(t, err)
	require.Len(t, got, 300+2+2)
	assert.Equal(t, []byte{0x2c, 0x01}, got[len(got)-2:])
	back, err := Decode("(ss)", got)
	require.NoError(t, err)
	assert.Equal(t, []any{a, "b"}, back)
}

func TestEncodeRejects(t *testing.T) {
	tests := []struct {
		name string
		sig  string
		v    any
		want string
	}{
		{"invalid utf-8 string", "s", "a\xffb", "UTF-8"},
		{"invalid utf-8 in array", "as", []any{"ok", "\xc3"}, "UTF-8"},
		{"NUL in string", "s", "a\x00b", "NUL"},
		{"bad object path", "o", "a/b", "object path"},
		{"object path trailing slash", "o", "/a/", "object path"},
		{"object path bad char", "o", "/a-b", "object path"},
		{"signature with maybe", "g", "ms", "signature"},
		{"incomplete signature", "g", "a{s", "signature"},
		{"wrong Go type", "u", int32(1), "cannot encode"},
		{"wrong tuple arity", "(uu)", []any{uint32(1)}, "cannot encode"},
		{"bad variant type", "v", Variant{"z", byte(1)}, "unsupported type"},
		{"bytes as []any", "ay", []any{byte(1)}, "cannot encode"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Encode(tc.sig, tc.v)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func nestedVariants(n int) []byte {
	b := []byte{1}
	inner := "y"
	for i := 0; i < n; i++ {
		b = append(append(b, 0), inner...)
		inner = "v"
	}
	return b
}

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name string
		sig  string
		data []byte
	}{
		{"string without NUL", "s", []byte("a")},
		{"empty string data", "s", nil},
		{"string with inner NUL", "s", []byte("a\x00b\x00")},
		{"string not utf-8", "s", []byte("\xff\x00")},
		{"object path not a path", "o", []byte("a\x00")},
		{"signature with maybe", "g", []byte("my\x00")},
		{"bool out of range", "b", []byte{2}},
		{"short uint32", "u", []byte{1, 2, 3}},
		{"long uint32", "u", []byte{1, 2, 3, 4, 5}},
		{"array offset past end", "as", []byte{'a', 0, 9}},
		{"array offsets going backwards", "as", []byte{'a', 0, 'b', 0, 4, 2}},
		{"array of fixed with remainder", "au", []byte{1, 2, 3, 4, 5}},
		{"variant without separator", "v", []byte{1, 2}},
		{"variant with empty type", "v", []byte{1, 0}},
		{"variant with bad type", "v", []byte{1, 0, 'z'}},
		{"variant with two types", "v", []byte{1, 0, 'y', 'y'}},
		{"variant nested too deeply", "v", nestedVariants(100)},
		{"maybe without trailing zero", "ms", []byte("a\x00b")},
		{"tuple offset past end", "(ss)", []byte{'a', 0, 'b', 0, 9}},
		{"tuple with no room for offsets", "(ss)", nil},
		{"tuple member crossing offsets", "(sy)", []byte{'a', 0, 7}},
		{"fixed tuple wrong size", "(yt)", []byte{1, 2}},
		{"dict key not utf-8", "a{sv}", []byte{0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0, 'y', 2, 11}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.sig, tc.data)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInvalid)
		})
	}
}

func TestDecodeNestedVariantsWithinLimit(t *testing.T) {
	v, err := Decode("v", nestedVariants(10))
	require.NoError(t, err)
	for i := 0; i < 9; i++ {
		vv, ok := v.(Variant)
		require.True(t, ok)
		v = vv.Value
	}
	assert.Equal(t, Variant{"y", byte(1)}, v)
}

func TestParseType(t *testing.T) {
	good := []struct{ sig, str string }{
		{"(uuuusa(ayay))", "(uuuusa(ayay))"},
		{"a{sv}", "a{sv}"},
		{"mmay", "mmay"},
		{"()", "()"},
	}
	for _, g := range good {
		ty, err := ParseType(g.sig)
		require.NoError(t, err, g.sig)
		assert.Equal(t, g.str, ty.String())
	}
	bad := []string{"", "a", "(", "(u", "{sv", "{s}", "{svv}", "{vs}", "{ays}", "z", "ss", "a{sv}}",
		strings.Repeat("a", 100) + "y"}
	for _, b := range bad {
		_, err := ParseType(b)
		assert.Error(t, err, "type %q", b)
	}
}

func TestDecodeCopiesBytes(t *testing.T) {
	data := []byte{1, 2, 3}
	v, err := Decode("ay", data)
	require.NoError(t, err)
	data[0] = 9
	assert.Equal(t, []byte{1, 2, 3}, v, "decoded bytes must not alias the input")
}

// fuzzTypes are the types ostree objects and their metadata use, plus a few that
// exercise maybes, variants and alignment.
var fuzzTypes = []string{
	"(uuuusa(ayay))",         // file header
	"(uuua(ayay))",           // dirmeta
	"(a(say)a(sayay))",       // dirtree
	"(a{sv}aya(say)sstayay)", // commit
	"a{sv}",                  // commit metadata
	"(tuuuusa(ayay))",        // archive file header
	"v",
	"mas",
	"(yqutmsmy)",
	"a{s(ayob)}",
	"aag",
}

func FuzzDecode(f *testing.F) {
	seeds := []struct {
		typ int
		v   any
	}{
		{0, []any{uint32(0), uint32(0), uint32(0xa4810000), uint32(0), "", []any{[]any{[]byte("user.a\x00"), []byte("1")}}}},
		{1, []any{uint32(0), uint32(0), uint32(0xed410000), []any{}}},
		{2, []any{[]any{[]any{"a", make([]byte, 32)}}, []any{[]any{"d", make([]byte, 32), make([]byte, 32)}}}},
		{3, []any{[]any{[]any{"version", Variant{"s", "1"}}}, []byte{}, []any{}, "s", "b", uint64(1), make([]byte, 32), make([]byte, 32)}},
		{6, Variant{"a{sv}", []any{[]any{"k", Variant{"mu", uint32(3)}}}}},
		{7, []any{"x", "yz"}},
		{8, []any{byte(1), uint16(2), uint32(3), uint64(4), "s", nil}},
		{9, []any{[]any{"k", []any{[]byte{1}, "/o", true}}}},
		{10, []any{[]any{"a{sv}", "(u)"}}},
	}
	for _, s := range seeds {
		b, err := Encode(fuzzTypes[s.typ], s.v)
		require.NoError(f, err, fuzzTypes[s.typ])
		f.Add(byte(s.typ), b)
	}
	types := make([]*Type, len(fuzzTypes))
	for i, s := range fuzzTypes {
		types[i] = MustParseType(s)
	}
	f.Fuzz(func(t *testing.T, which byte, data []byte) {
		ty := types[int(which)%len(types)]
		v, err := DecodeType(ty, data)
		if err != nil {
			return
		}
		enc, err := EncodeType(ty, v)
		require.NoError(t, err, "a decoded value must encode again")
		v2, err := DecodeType(ty, enc)
		require.NoError(t, err, "normal form must decode")
		require.Equal(t, v, v2)
		enc2, err := EncodeType(ty, v2)
		require.NoError(t, err)
		require.True(t, bytes.Equal(enc, enc2), "normal form must be stable")
	})
}
