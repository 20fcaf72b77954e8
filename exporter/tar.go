package exporter

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file is a tar header writer that reproduces, byte for byte, the GNU-format headers
// that the Rust tar crate (tar-rs 0.4.x, used by ostree-ext) emits, including its quirks.
//
// Why not archive/tar: Go's writer formats the header checksum as six octal digits, NUL,
// space ("012345\x00 ") where tar-rs writes seven digits and NUL ("0012345\x00"); it clears
// the name and link fields where tar-rs leaves bytes of a previous value after the NUL
// (ostree-ext reuses one header value for an object and all its hardlinks); it refuses to
// combine PAX records with GNU long-name entries in one header set (FormatGNU cannot carry
// PAX, FormatPAX never writes ././@LongLink); and it cleans paths. Every one of those
// changes the uncompressed bytes and so the diff_id. Matching tar-rs exactly makes our
// chunk layers byte-identical to rpm-ostree's when the chunking is the same, which lets
// bootc's diff_id-based reuse work across the two tools.

const blockSize = 512

// Field offsets of a GNU/ustar header.
const (
	offName     = 0
	lenName     = 100
	offMode     = 100
	offUID      = 108
	offGID      = 116
	offSize     = 124
	offMtime    = 136
	offCksum    = 148
	offType     = 156
	offLinkname = 157
	lenLinkname = 100
	offMagic    = 257
)

// Entry types.
const (
	typeReg     = '0'
	typeLink    = '1'
	typeSymlink = '2'
	typeDir     = '5'
	typePAX     = 'x'
	typeLongNm  = 'L'
	typeLongLnk = 'K'
)

// header is a 512-byte tar header manipulated the way tar-rs does: setters write into the
// fixed fields and leave the rest alone.
type header [blockSize]byte

// newGNUHeader is tar-rs Header::new_gnu: zeroed, magic "ustar " version " \0", mtime 0.
func newGNUHeader() header {
	var h header
	copy(h[offMagic:], "ustar  \x00")
	h.setMtime(0)
	return h
}

// newUstarHeader is tar-rs Header::new_ustar, used for PAX extension headers.
func newUstarHeader() header {
	var h header
	copy(h[offMagic:], "ustar\x0000")
	h.setMtime(0)
	return h
}

// octalInto writes val as octal right-aligned in dst with a trailing NUL and leading
// zeros; digits that do not fit are dropped, as tar-rs does.
func octalInto(dst []byte, val uint64) {
	o := strconv.FormatUint(val, 8)
	dst[len(dst)-1] = 0
	i := len(dst) - 2
	for j := len(o) - 1; i >= 0; i-- {
		if j >= 0 {
			dst[i] = o[j]
			j--
		} else {
			dst[i] = '0'
		}
	}
}

// numInto writes a numeric field, switching to the GNU base-256 form for values that
// do not fit in octal exactly where tar-rs does.
func numInto(dst []byte, v uint64) {
	if v >= 8589934592 || (v >= 2097152 && len(dst) == 8) {
		for i := range dst {
			dst[i] = 0
		}
		for i := 0; i < 8; i++ {
			dst[len(dst)-1-i] = byte(v >> (8 * i))
		}
		dst[0] |= 0x80
		return
	}
	octalInto(dst, v)
}

func (h *header) setMode(m uint32)  { octalInto(h[offMode:offMode+8], uint64(m)) }
func (h *header) setUID(v uint32)   { numInto(h[offUID:offUID+8], uint64(v)) }
func (h *header) setGID(v uint32)   { numInto(h[offGID:offGID+8], uint64(v)) }
func (h *header) setSize(v int64)   { numInto(h[offSize:offSize+12], uint64(v)) }
func (h *header) setMtime(v uint64) { numInto(h[offMtime:offMtime+12], v) }
func (h *header) setType(t byte)    { h[offType] = t }

// setCksum computes the checksum with the field taken as spaces and writes it as
// seven octal digits and a NUL.
func (h *header) setCksum() {
	var sum uint64
	for i, b := range h {
		if i >= offCksum && i < offCksum+8 {
			b = ' '
		}
		sum += uint64(b)
	}
	octalInto(h[offCksum:offCksum+8], sum)
}

var errTooLong = errors.New("provided value is too long")

// copyInto is tar-rs copy_into: writes b and, when room remains, one NUL; the rest of
// the slot keeps its previous bytes.
func copyInto(slot []byte, b string) error {
	if len(b) > len(slot) {
		return errTooLong
	}
	if strings.IndexByte(b, 0) >= 0 {
		return errors.New("provided value contains a nul byte")
	}
	n := copy(slot, b)
	if n < len(slot) {
		slot[n] = 0
	}
	return nil
}

type compKind int

const (
	compRoot compKind = iota
	compCur
	compParent
	compNormal
)

type component struct {
	kind compKind
	s    string
}

// components splits a Unix path as Rust's Path::components does: a leading "/" is the
// root, empty components and "." are dropped except a "." at the very start. They are
// appended to out, which lets callers keep them on the stack: this runs for every
// entry of every layer.
func components(p string, out []component) []component {
	rest := p
	if strings.HasPrefix(rest, "/") {
		out = append(out, component{compRoot, "/"})
		rest = strings.TrimLeft(rest, "/")
	} else if rest == "." || strings.HasPrefix(rest, "./") {
		out = append(out, component{compCur, "."})
		rest = strings.TrimLeft(rest[1:], "/")
	}
	for rest != "" {
		c, tail, _ := strings.Cut(rest, "/")
		rest = tail
		switch c {
		case "", ".":
		case "..":
			out = append(out, component{compParent, c})
		default:
			out = append(out, component{compNormal, c})
		}
	}
	return out
}

// copyPathInto is tar-rs copy_path_into_inner: it writes the path piece by piece (a
// component or a "/") and fails on the first piece that does not fit, leaving the
// pieces already written in place.
func copyPathInto(slot []byte, p string, isLink, truncatedGNU bool) error {
	var stack [32]component
	comps := components(p, stack[:0])
	emitted, needSlash := false, false
	for i, c := range comps {
		if !isLink {
			switch c.kind {
			case compRoot:
				return errors.New("paths in archives must be relative")
			case compParent:
				if !truncatedGNU || i < len(comps)-1 {
					return errors.New("paths in archives must not have `..`")
				}
			case compCur:
				if len(comps) != 1 {
					continue
				}
			}
		}
		if needSlash {
			if err := copyInto(slot, "/"); err != nil {
				return err
			}
			slot = slot[1:]
		}
		if err := copyInto(slot, c.s); err != nil {
			return err
		}
		slot = slot[len(c.s):]
		if c.s != "/" {
			needSlash = true
		}
		emitted = true
	}
	if !emitted {
		return errors.New("paths in archives must have at least one component")
	}
	if strings.HasSuffix(p, "/") {
		return copyInto(slot, "/")
	}
	return nil
}

// tarWriter writes tar entries the way tar-rs Builder does.
type tarWriter struct {
	w   io.Writer
	pad [blockSize]byte
	// hdr is the header being written: writing the caller's header to an io.Writer
	// would move every header to the heap, 2 KiB of garbage per entry.
	hdr header
	buf []byte
}

func newTarWriter(w io.Writer) *tarWriter { return &tarWriter{w: w, buf: make([]byte, 128<<10)} }

// appendRaw writes a finished header followed by data padded to a block.
func (t *tarWriter) appendRaw(h *header, data io.Reader, size int64) error {
	t.hdr = *h
	if _, err := t.w.Write(t.hdr[:]); err != nil {
		return err
	}
	if size == 0 {
		return nil
	}
	n, err := io.CopyBuffer(t.w, io.LimitReader(data, size), t.buf)
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("content ended after %d of %d bytes", n, size)
	}
	if r := size % blockSize; r != 0 {
		if _, err := t.w.Write(t.pad[:blockSize-r]); err != nil {
			return err
		}
	}
	return nil
}

// longEntry writes a ././@LongLink pseudo-entry (GNU 'L' or 'K') holding name and a NUL.
func (t *tarWriter) longEntry(kind byte, name string) error {
	h := newGNUHeader()
	copy(h[offName:], "././@LongLink")
	h.setMode(0o644)
	h.setUID(0)
	h.setGID(0)
	h.setMtime(0)
	h.setSize(int64(len(name) + 1))
	h.setType(kind)
	h.setCksum()
	return t.appendRaw(&h, strings.NewReader(name+"\x00"), int64(len(name)+1))
}

// preparePath sets the name field, writing a GNU long-name entry first when the path
// does not fit (tar-rs prepare_header_path). The long-name payload is the path exactly
// as given; the header keeps the normalized first 100 bytes.
func (t *tarWriter) preparePath(h *header, p string) error {
	err := copyPathInto(h[offName:offName+lenName], p, false, false)
	if err == nil {
		return nil
	}
	if len(p) < lenName {
		return fmt.Errorf("tar path %q: %w", p, err)
	}
	trunc := p[:lenName]
	for !utf8.ValidString(trunc) {
		trunc = trunc[:len(trunc)-1]
	}
	if err := copyPathInto(h[offName:offName+lenName], trunc, false, true); err != nil {
		return fmt.Errorf("tar path %q: %w", p, err)
	}
	return t.longEntry(typeLongNm, p)
}

// prepareLink sets the link name field, writing a GNU long-link entry first when it
// does not fit (tar-rs prepare_header_link).
func (t *tarWriter) prepareLink(h *header, target string) error {
	err := copyPathInto(h[offLinkname:offLinkname+lenLinkname], target, true, false)
	if err == nil {
		return nil
	}
	if len(target) < lenLinkname {
		return fmt.Errorf("tar link target %q: %w", target, err)
	}
	return t.longEntry(typeLongLnk, target)
}

// appendData is tar-rs Builder::append_data: set the path, checksum, write header+data.
func (t *tarWriter) appendData(h *header, p string, data io.Reader, size int64) error {
	if err := t.preparePath(h, p); err != nil {
		return err
	}
	h.setCksum()
	return t.appendRaw(h, data, size)
}

// appendLink is tar-rs Builder::append_link for a symlink or hardlink entry.
func (t *tarWriter) appendLink(h *header, p, target string) error {
	if err := t.preparePath(h, p); err != nil {
		return err
	}
	if err := t.prepareLink(h, target); err != nil {
		return err
	}
	h.setCksum()
	return t.appendRaw(h, nil, 0)
}

// setLinkNameLiteral is tar-rs set_link_name_literal: the bytes as given, no cleaning.
func (h *header) setLinkNameLiteral(target string) error {
	if err := copyInto(h[offLinkname:offLinkname+lenLinkname], target); err != nil {
		return fmt.Errorf("tar link target %q: %w", target, err)
	}
	return nil
}

// setLinkName is tar-rs set_link_name (no long-link fallback).
func (h *header) setLinkName(target string) error {
	if err := copyPathInto(h[offLinkname:offLinkname+lenLinkname], target, true, false); err != nil {
		return fmt.Errorf("tar link target %q: %w", target, err)
	}
	return nil
}

// appendPAX writes a PAX extended header with the records in the order given; nothing
// when there are none (tar-rs append_pax_extensions).
func (t *tarWriter) appendPAX(records []paxRecord) error {
	if len(records) == 0 {
		return nil
	}
	var b strings.Builder
	for _, r := range records {
		rest := 3 + len(r.key) + len(r.value)
		lenLen, max := 1, 10
		for rest+lenLen >= max {
			lenLen++
			max *= 10
		}
		fmt.Fprintf(&b, "%d %s=", rest+lenLen, r.key)
		b.WriteString(r.value)
		b.WriteByte('\n')
	}
	h := newUstarHeader()
	h.setSize(int64(b.Len()))
	h.setType(typePAX)
	h.setCksum()
	return t.appendRaw(&h, strings.NewReader(b.String()), int64(b.Len()))
}

type paxRecord struct{ key, value string }

// finish writes the two zero blocks that end an archive.
func (t *tarWriter) finish() error {
	var z [2 * blockSize]byte
	_, err := t.w.Write(z[:])
	return err
}
