// Package gvariant encodes and decodes the GVariant binary serialization in normal form.
//
// It covers the types ostree objects and their metadata use: the basic types
// (y b n q i u x t h d s o g), variants, arrays, maybes, tuples and dict entries.
// Values are plain Go values chosen by the type string:
//
//	y byte, b bool, n int16, q uint16, i/h int32, u uint32, x int64, t uint64, d float64,
//	s/o/g string, ay []byte, aT []any, mT nil or the value, (…) and {KV} []any, v Variant.
//
// Strings (s, o, g) must be valid UTF-8 without NUL bytes, and o and g must be a valid
// object path and signature, on encode and on decode, as GVariant requires. A nested maybe
// holding Nothing (Just Nothing) decodes to nil, the same as Nothing; ostree never uses it.
//
// Integers are written little-endian, as GVariant does on x86-64 and arm64; ostree stores
// its own fixed fields big-endian by byte-swapping before serializing, and callers do the
// same. Normal form matters because ostree hashes the serialized bytes.
package gvariant

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
)

// Variant is a value of type v: a child value together with its type string.
type Variant struct {
	Type  string
	Value any
}

// Type is a parsed GVariant type.
type Type struct {
	sig    string
	kind   byte // basic code, 'a', 'm', '(', '{', 'v'
	elem   *Type
	fields []*Type
	align  int
	fixed  int // fixed size, 0 when variable-size
}

// String returns the type string.
func (t *Type) String() string { return t.sig }

// ParseType parses a complete type string such as "(uuua(ayay))".
func ParseType(sig string) (*Type, error) {
	t, rest, err := parseOne(sig, 0)
	if err != nil {
		return nil, err
	}
	if rest != len(sig) {
		return nil, fmt.Errorf("gvariant: trailing characters in type %q", sig)
	}
	return t, nil
}

// MustParseType is ParseType for constant type strings.
func MustParseType(sig string) *Type {
	t, err := ParseType(sig)
	if err != nil {
		panic(err)
	}
	return t
}

const maxTypeDepth = 64

func parseOne(sig string, depth int) (*Type, int, error) {
	t, n, err := parseAt(sig, 0, depth)
	return t, n, err
}

func parseAt(sig string, pos, depth int) (*Type, int, error) {
	if depth > maxTypeDepth {
		return nil, 0, fmt.Errorf("gvariant: type %q nests too deeply", sig)
	}
	if pos >= len(sig) {
		return nil, 0, fmt.Errorf("gvariant: incomplete type %q", sig)
	}
	c := sig[pos]
	t := &Type{kind: c}
	switch c {
	case 'y', 'b':
		t.align, t.fixed = 1, 1
	case 'n', 'q':
		t.align, t.fixed = 2, 2
	case 'i', 'u', 'h':
		t.align, t.fixed = 4, 4
	case 'x', 't', 'd':
		t.align, t.fixed = 8, 8
	case 's', 'o', 'g':
		t.align = 1
	case 'v':
		t.align = 8
	case 'a', 'm':
		e, next, err := parseAt(sig, pos+1, depth+1)
		if err != nil {
			return nil, 0, err
		}
		t.elem, t.align = e, e.align
		t.sig = sig[pos:next]
		return t, next, nil
	case '(', '{':
		closer := byte(')')
		if c == '{' {
			closer = '}'
		}
		next := pos + 1
		t.align = 1
		for {
			if next >= len(sig) {
				return nil, 0, fmt.Errorf("gvariant: unterminated %q in type %q", string(c), sig)
			}
			if sig[next] == closer {
				next++
				break
			}
			f, n, err := parseAt(sig, next, depth+1)
			if err != nil {
				return nil, 0, err
			}
			t.fields = append(t.fields, f)
			if f.align > t.align {
				t.align = f.align
			}
			next = n
		}
		if c == '{' && len(t.fields) != 2 {
			return nil, 0, fmt.Errorf("gvariant: dict entry in %q must have two members", sig)
		}
		if c == '{' && !isBasic(t.fields[0].kind) {
			return nil, 0, fmt.Errorf("gvariant: dict entry key in %q is not a basic type", sig)
		}
		t.fixed = tupleFixedSize(t)
		t.sig = sig[pos:next]
		return t, next, nil
	default:
		return nil, 0, fmt.Errorf("gvariant: unsupported type code %q in %q", string(c), sig)
	}
	t.sig = sig[pos : pos+1]
	return t, pos + 1, nil
}

func isBasic(k byte) bool { return strings.IndexByte("ybnqiuxthdsog", k) >= 0 }

// checkString enforces what GVariant requires of s, o and g values: valid UTF-8 without
// NUL bytes, and for o and g the D-Bus object path and signature syntax.
func checkString(kind byte, s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return errors.New("string contains a NUL byte")
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("string %q is not valid UTF-8", s)
	}
	switch kind {
	case 'o':
		if !isObjectPath(s) {
			return fmt.Errorf("%q is not an object path", s)
		}
	case 'g':
		if !isSignature(s) {
			return fmt.Errorf("%q is not a signature", s)
		}
	}
	return nil
}

func isObjectPath(s string) bool {
	if s == "/" {
		return true
	}
	if !strings.HasPrefix(s, "/") || strings.HasSuffix(s, "/") {
		return false
	}
	for _, seg := range strings.Split(s[1:], "/") {
		if seg == "" {
			return false
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
				return false
			}
		}
	}
	return true
}

// isSignature accepts a concatenation of complete types without maybe types, as GLib's
// g_variant_is_signature does.
func isSignature(s string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte("ybnqiuxthdvasog(){}", s[i]) < 0 {
			return false
		}
	}
	for pos := 0; pos < len(s); {
		_, next, err := parseAt(s, pos, 0)
		if err != nil {
			return false
		}
		pos = next
	}
	return true
}

func tupleFixedSize(t *Type) int {
	if len(t.fields) == 0 {
		return 1 // the unit tuple is one zero byte
	}
	size := 0
	for _, f := range t.fields {
		if f.fixed == 0 {
			return 0
		}
		size = alignUp(size, f.align) + f.fixed
	}
	return alignUp(size, t.align)
}

func alignUp(n, a int) int { return (n + a - 1) / a * a }

// OffsetWidth is the framing-offset width GLib picks for a container with a body of
// bodyLen bytes and n offsets.
func OffsetWidth(bodyLen, n int) int {
	switch {
	case n == 0:
		return 0
	case bodyLen+n <= math.MaxUint8:
		return 1
	case bodyLen+2*n <= math.MaxUint16:
		return 2
	case uint64(bodyLen)+4*uint64(n) <= math.MaxUint32:
		return 4
	default:
		return 8
	}
}

// widthForSize is the offset width of an already-serialized container of the given size.
func widthForSize(size int) int {
	switch {
	case size == 0:
		return 0
	case size <= math.MaxUint8:
		return 1
	case size <= math.MaxUint16:
		return 2
	case uint64(size) <= math.MaxUint32:
		return 4
	default:
		return 8
	}
}

// AppendOffset appends framing offset v, w bytes wide, little-endian.
func AppendOffset(buf []byte, v, w int) []byte {
	for i := 0; i < w; i++ {
		buf = append(buf, byte(uint64(v)>>(8*i)))
	}
	return buf
}

// pad appends zero bytes until buf[base:] is a multiple of align long.
func pad(buf []byte, base, align int) []byte {
	for (len(buf)-base)%align != 0 {
		buf = append(buf, 0)
	}
	return buf
}

// Encode serializes v as the type sig in normal form.
func Encode(sig string, v any) ([]byte, error) {
	t, err := ParseType(sig)
	if err != nil {
		return nil, err
	}
	return EncodeType(t, v)
}

// EncodeType serializes v as t in normal form.
func EncodeType(t *Type, v any) ([]byte, error) {
	out, err := encode(nil, 0, t, v)
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []byte{} // an empty value is empty bytes, not nil
	}
	return out, nil
}

func typeErr(t *Type, v any) error {
	return fmt.Errorf("gvariant: cannot encode %T as %s", v, t.sig)
}

// encode appends the serialization of v to buf. Alignment is relative to buf[base:],
// where the top-level value starts: every container starts at a multiple of its own
// alignment, which is at least its children's, so padding against base is padding
// against each container's start. Appending into one buffer, instead of returning each
// child's bytes, keeps a dirtree of thousands of entries to a few allocations.
func encode(buf []byte, base int, t *Type, v any) ([]byte, error) {
	switch t.kind {
	case 'y':
		b, ok := v.(byte)
		if !ok {
			return nil, typeErr(t, v)
		}
		return append(buf, b), nil
	case 'b':
		b, ok := v.(bool)
		if !ok {
			return nil, typeErr(t, v)
		}
		if b {
			return append(buf, 1), nil
		}
		return append(buf, 0), nil
	case 'n':
		x, ok := v.(int16)
		if !ok {
			return nil, typeErr(t, v)
		}
		return binary.LittleEndian.AppendUint16(buf, uint16(x)), nil
	case 'q':
		x, ok := v.(uint16)
		if !ok {
			return nil, typeErr(t, v)
		}
		return binary.LittleEndian.AppendUint16(buf, x), nil
	case 'i', 'h':
		x, ok := v.(int32)
		if !ok {
			return nil, typeErr(t, v)
		}
		return binary.LittleEndian.AppendUint32(buf, uint32(x)), nil
	case 'u':
		x, ok := v.(uint32)
		if !ok {
			return nil, typeErr(t, v)
		}
		return binary.LittleEndian.AppendUint32(buf, x), nil
	case 'x':
		x, ok := v.(int64)
		if !ok {
			return nil, typeErr(t, v)
		}
		return binary.LittleEndian.AppendUint64(buf, uint64(x)), nil
	case 't':
		x, ok := v.(uint64)
		if !ok {
			return nil, typeErr(t, v)
		}
		return binary.LittleEndian.AppendUint64(buf, x), nil
	case 'd':
		x, ok := v.(float64)
		if !ok {
			return nil, typeErr(t, v)
		}
		return binary.LittleEndian.AppendUint64(buf, math.Float64bits(x)), nil
	case 's', 'o', 'g':
		s, ok := v.(string)
		if !ok {
			return nil, typeErr(t, v)
		}
		if err := checkString(t.kind, s); err != nil {
			return nil, fmt.Errorf("gvariant: encode %s: %w", t.sig, err)
		}
		return append(append(buf, s...), 0), nil
	case 'v':
		return encodeVariant(buf, base, v)
	case 'm':
		if v == nil {
			return buf, nil
		}
		buf, err := encode(buf, base, t.elem, v)
		if err != nil {
			return nil, err
		}
		if t.elem.fixed == 0 {
			buf = append(buf, 0)
		}
		return buf, nil
	case 'a':
		return encodeArray(buf, base, t, v)
	case '(', '{':
		return encodeTuple(buf, base, t, v)
	}
	return nil, typeErr(t, v)
}

// encodeVariant appends a v: the child, a zero byte and the child's type string. The
// child is aligned to 8 (a variant's alignment), so relative to base it is aligned.
func encodeVariant(buf []byte, base int, v any) ([]byte, error) {
	vv, ok := v.(Variant)
	if !ok {
		return nil, fmt.Errorf("gvariant: cannot encode %T as v", v)
	}
	ct, err := ParseType(vv.Type)
	if err != nil {
		return nil, err
	}
	buf, err = encode(buf, base, ct, vv.Value)
	if err != nil {
		return nil, err
	}
	return append(append(buf, 0), vv.Type...), nil
}

// encodeArray appends an array: the elements, each aligned, then (for variable-size
// elements) each element's end as a framing offset.
func encodeArray(buf []byte, base int, t *Type, v any) ([]byte, error) {
	if t.elem.kind == 'y' {
		b, ok := v.([]byte)
		if !ok {
			return nil, typeErr(t, v)
		}
		return append(buf, b...), nil
	}
	items, ok := v.([]any)
	if !ok {
		return nil, typeErr(t, v)
	}
	start := len(buf)
	var ends []int
	if t.elem.fixed == 0 {
		ends = make([]int, 0, len(items))
	}
	for _, it := range items {
		buf = pad(buf, base, t.elem.align)
		var err error
		if buf, err = encode(buf, base, t.elem, it); err != nil {
			return nil, err
		}
		if t.elem.fixed == 0 {
			ends = append(ends, len(buf)-start)
		}
	}
	return AppendEnds(buf, start, ends), nil
}

// AppendEnds appends the framing offsets of an array of variable-size elements that
// starts at buf[start]: each element's end, relative to start, as wide as the array's
// size needs. Nothing is appended for no elements.
func AppendEnds(buf []byte, start int, ends []int) []byte {
	w := OffsetWidth(len(buf)-start, len(ends))
	for _, e := range ends {
		buf = AppendOffset(buf, e, w)
	}
	return buf
}

// encodeTuple appends a tuple or dict entry: the fields, each aligned, then the end of
// every variable-size field but the last as framing offsets, last one first.
func encodeTuple(buf []byte, base int, t *Type, v any) ([]byte, error) {
	items, ok := v.([]any)
	if !ok || len(items) != len(t.fields) {
		return nil, typeErr(t, v)
	}
	if len(t.fields) == 0 {
		return append(buf, 0), nil
	}
	start := len(buf)
	var endsArr [8]int
	ends := endsArr[:0]
	for i, f := range t.fields {
		buf = pad(buf, base, f.align)
		var err error
		if buf, err = encode(buf, base, f, items[i]); err != nil {
			return nil, err
		}
		if f.fixed == 0 && i != len(t.fields)-1 {
			ends = append(ends, len(buf)-start)
		}
	}
	if t.fixed != 0 {
		return pad(buf, base, t.align), nil
	}
	w := OffsetWidth(len(buf)-start, len(ends))
	for i := len(ends) - 1; i >= 0; i-- {
		buf = AppendOffset(buf, ends[i], w)
	}
	return buf, nil
}

// ErrInvalid is wrapped by every decoding error.
var ErrInvalid = errors.New("invalid gvariant data")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Decode parses data as the type sig. It never panics on hostile input; it rejects
// data whose framing is inconsistent instead of guessing.
func Decode(sig string, data []byte) (any, error) {
	t, err := ParseType(sig)
	if err != nil {
		return nil, err
	}
	return DecodeType(t, data)
}

// DecodeType parses data as t.
func DecodeType(t *Type, data []byte) (any, error) {
	return decode(t, data, 0)
}

const maxDecodeDepth = 64

func readOffset(b []byte, w int) int {
	var v uint64
	for i := 0; i < w; i++ {
		v |= uint64(b[i]) << (8 * i)
	}
	if v > math.MaxInt32*2 {
		return -1
	}
	return int(v)
}

func decode(t *Type, data []byte, depth int) (any, error) {
	if depth > maxDecodeDepth {
		return nil, invalid("nesting deeper than %d", maxDecodeDepth)
	}
	if t.fixed != 0 && len(data) != t.fixed {
		return nil, invalid("%s needs %d bytes, have %d", t.sig, t.fixed, len(data))
	}
	switch t.kind {
	case 'y':
		return data[0], nil
	case 'b':
		if data[0] > 1 {
			return nil, invalid("boolean byte %d", data[0])
		}
		return data[0] == 1, nil
	case 'n':
		return int16(binary.LittleEndian.Uint16(data)), nil
	case 'q':
		return binary.LittleEndian.Uint16(data), nil
	case 'i', 'h':
		return int32(binary.LittleEndian.Uint32(data)), nil
	case 'u':
		return binary.LittleEndian.Uint32(data), nil
	case 'x':
		return int64(binary.LittleEndian.Uint64(data)), nil
	case 't':
		return binary.LittleEndian.Uint64(data), nil
	case 'd':
		return math.Float64frombits(binary.LittleEndian.Uint64(data)), nil
	case 's', 'o', 'g':
		if len(data) == 0 || data[len(data)-1] != 0 {
			return nil, invalid("string is not NUL-terminated")
		}
		s := string(data[:len(data)-1])
		if err := checkString(t.kind, s); err != nil {
			return nil, invalid("%s: %v", t.sig, err)
		}
		return s, nil
	case 'v':
		i := len(data) - 1
		for i >= 0 && data[i] != 0 {
			i--
		}
		if i < 0 {
			return nil, invalid("variant without a type separator")
		}
		ct, err := ParseType(string(data[i+1:]))
		if err != nil {
			return nil, invalid("variant type: %v", err)
		}
		val, err := decode(ct, data[:i], depth+1)
		if err != nil {
			return nil, err
		}
		return Variant{Type: ct.sig, Value: val}, nil
	case 'm':
		if len(data) == 0 {
			return nil, nil
		}
		if t.elem.fixed == 0 {
			if data[len(data)-1] != 0 {
				return nil, invalid("maybe without trailing zero")
			}
			data = data[:len(data)-1]
		}
		return decode(t.elem, data, depth+1)
	case 'a':
		if t.elem.kind == 'y' {
			return append([]byte{}, data...), nil
		}
		items := []any{}
		if len(data) == 0 {
			return items, nil
		}
		if t.elem.fixed != 0 {
			if len(data)%t.elem.fixed != 0 {
				return nil, invalid("array of %s has %d bytes", t.elem.sig, len(data))
			}
			for off := 0; off < len(data); off += t.elem.fixed {
				it, err := decode(t.elem, data[off:off+t.elem.fixed], depth+1)
				if err != nil {
					return nil, err
				}
				items = append(items, it)
			}
			return items, nil
		}
		w := widthForSize(len(data))
		last := readOffset(data[len(data)-w:], w)
		if last < 0 || last > len(data)-w || (len(data)-last)%w != 0 {
			return nil, invalid("array framing offset %d out of range", last)
		}
		n := (len(data) - last) / w
		start := 0
		for i := 0; i < n; i++ {
			end := readOffset(data[last+i*w:], w)
			start = alignUp(start, t.elem.align)
			if end < start || end > last {
				return nil, invalid("array element %d spans %d..%d of %d", i, start, end, last)
			}
			it, err := decode(t.elem, data[start:end], depth+1)
			if err != nil {
				return nil, err
			}
			items = append(items, it)
			start = end
		}
		return items, nil
	case '(', '{':
		if len(t.fields) == 0 {
			return []any{}, nil
		}
		w := widthForSize(len(data))
		offEnd := len(data) // offsets are read backwards from here
		items := make([]any, 0, len(t.fields))
		pos := 0
		for i, f := range t.fields {
			pos = alignUp(pos, f.align)
			var end int
			switch {
			case f.fixed != 0:
				end = pos + f.fixed
			case i == len(t.fields)-1:
				if t.fixed == 0 {
					end = offEnd
				}
			default:
				if offEnd-w < 0 {
					return nil, invalid("tuple %s has no room for framing offsets", t.sig)
				}
				end = readOffset(data[offEnd-w:], w)
				offEnd -= w
			}
			if t.fixed != 0 && f.fixed == 0 {
				return nil, invalid("fixed tuple with variable member")
			}
			if end < pos || end > offEnd || end > len(data) {
				return nil, invalid("tuple %s member %d spans %d..%d of %d", t.sig, i, pos, end, offEnd)
			}
			it, err := decode(f, data[pos:end], depth+1)
			if err != nil {
				return nil, err
			}
			items = append(items, it)
			pos = end
		}
		return items, nil
	}
	return nil, invalid("unsupported type %s", t.sig)
}
