package ostree

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// LsOptions selects the columns and depth of FormatLsOptions, named after `ostree ls` flags.
type LsOptions struct {
	Recursive bool // -R
	Checksums bool // -C
	Xattrs    bool // -X
}

// FormatLs prints the entry at p and, for a directory, its contents (all of them when
// recursive), byte for byte as `ostree ls -C` (`-RC` when recursive) prints them.
// The tree must be finalized so that directory checksums are set.
func FormatLs(w io.Writer, t *Tree, p string, recursive bool) error {
	return FormatLsOptions(w, t, p, LsOptions{Recursive: recursive, Checksums: true})
}

// FormatLsOptions is FormatLs with the columns of `ostree ls [-R] [-C] [-X]`.
func FormatLsOptions(w io.Writer, t *Tree, p string, o LsOptions) error {
	parts, err := SplitPath(p)
	if err != nil {
		return fmt.Errorf("ls %s: %w", p, err)
	}
	if o.Checksums && t.Root.TreeSum.IsZero() {
		return errors.New("ls: tree is not finalized")
	}
	bw := bufio.NewWriter(w)
	abs := "/" + strings.Join(parts, "/")
	d := t.Root
	for i, c := range parts {
		if sub := d.Dirs[c]; sub != nil {
			d = sub
			continue
		}
		if f := d.Files[c]; f != nil && i == len(parts)-1 {
			lsFile(bw, abs, f, o)
			return flushLs(bw, p)
		}
		if d.Files[c] != nil {
			return fmt.Errorf("ls %s: not a directory", abs)
		}
		return fmt.Errorf("ls %s: no such file or directory", abs)
	}
	lsDir(bw, abs, d, o)
	if err := lsChildren(bw, abs, d, o); err != nil {
		return fmt.Errorf("ls %s: %w", p, err)
	}
	return flushLs(bw, p)
}

func flushLs(bw *bufio.Writer, p string) error {
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("ls %s: %w", p, err)
	}
	return nil
}

// lsChildren lists d's entries in dirtree order (files, then directories), descending
// into each directory right after its own line when recursive, as ostree does.
func lsChildren(bw *bufio.Writer, p string, d *Dir, o LsOptions) error {
	for _, n := range d.FileNames() {
		lsFile(bw, path.Join(p, n), d.Files[n], o)
	}
	for _, n := range d.DirNames() {
		sub := d.Dirs[n]
		sp := path.Join(p, n)
		lsDir(bw, sp, sub, o)
		if o.Recursive {
			if err := lsChildren(bw, sp, sub, o); err != nil {
				return err
			}
		}
	}
	return nil
}

// lsPrefix is ostree's "%c0%04o %u %u %6" G_GUINT64_FORMAT " " column set.
func lsPrefix(bw *bufio.Writer, typ byte, mode, uid, gid uint32, size int64) {
	fmt.Fprintf(bw, "%c0%04o %d %d %6d ", typ, mode&^ModeTypeMask, uid, gid, size)
}

func lsDir(bw *bufio.Writer, p string, d *Dir, o LsOptions) {
	lsPrefix(bw, 'd', d.Meta.Mode, d.Meta.UID, d.Meta.GID, 0)
	if o.Checksums {
		bw.WriteString(d.TreeSum.String())
		bw.WriteByte(' ')
		bw.WriteString(d.MetaSum.String())
		bw.WriteByte(' ')
	}
	if o.Xattrs {
		lsXattrs(bw, d.Meta.Xattrs)
	}
	bw.WriteString(p)
	bw.WriteByte('\n')
}

func lsFile(bw *bufio.Writer, p string, f *File, o LsOptions) {
	typ := byte('-')
	size := f.Size
	if f.Header.IsSymlink() {
		typ, size = 'l', 0
	}
	lsPrefix(bw, typ, f.Header.Mode, f.Header.UID, f.Header.GID, size)
	if o.Checksums {
		bw.WriteString(f.Checksum.String())
		bw.WriteByte(' ')
	}
	if o.Xattrs {
		lsXattrs(bw, f.Header.Xattrs)
	}
	bw.WriteString(p)
	if f.Header.IsSymlink() {
		bw.WriteString(" -> ")
		bw.WriteString(f.Header.Target)
	}
	bw.WriteByte('\n')
}

// lsXattrs prints "{ X } " where X is the xattrs in GLib's g_variant_print text form
// with type annotations, as `ostree ls -X` does.
func lsXattrs(bw *bufio.Writer, x Xattrs) {
	bw.WriteString("{ ")
	if len(x) == 0 {
		bw.WriteString("@a(ayay) []")
	} else {
		bw.WriteByte('[')
		for i, a := range x {
			if i > 0 {
				bw.WriteString(", ")
			}
			// GLib annotates types only on the first element of an array.
			bw.WriteByte('(')
			printBytes(bw, append([]byte(a.Name), 0), i == 0)
			bw.WriteString(", ")
			printBytes(bw, a.Value, i == 0)
			bw.WriteByte(')')
		}
		bw.WriteByte(']')
	}
	bw.WriteString(" } ")
}

// printBytes prints an ay value the way g_variant_print does: as a b'…' bytestring
// when its only NUL is the last byte, otherwise as a list of hex bytes.
func printBytes(bw *bufio.Writer, b []byte, annotate bool) {
	if n := len(b); n > 0 && strings.IndexByte(string(b), 0) == n-1 {
		s := string(b[:n-1])
		q := byte('\'')
		if strings.IndexByte(s, '\'') >= 0 {
			q = '"'
		}
		bw.WriteByte('b')
		bw.WriteByte(q)
		bw.WriteString(gStrescape(s))
		bw.WriteByte(q)
		return
	}
	if len(b) == 0 {
		if annotate {
			bw.WriteString("@ay ")
		}
		bw.WriteString("[]")
		return
	}
	bw.WriteByte('[')
	for i, c := range b {
		if i > 0 {
			bw.WriteString(", ")
		} else if annotate {
			bw.WriteString("byte ")
		}
		fmt.Fprintf(bw, "0x%02x", c)
	}
	bw.WriteByte(']')
}

// gStrescape escapes like GLib's g_strescape with no exceptions.
func gStrescape(s string) string {
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\b':
			sb.WriteString(`\b`)
		case '\f':
			sb.WriteString(`\f`)
		case '\n':
			sb.WriteString(`\n`)
		case '\r':
			sb.WriteString(`\r`)
		case '\t':
			sb.WriteString(`\t`)
		case '\v':
			sb.WriteString(`\v`)
		case '\\':
			sb.WriteString(`\\`)
		case '"':
			sb.WriteString(`\"`)
		default:
			if c < ' ' || c >= 0o177 {
				fmt.Fprintf(&sb, "\\%03o", c)
			} else {
				sb.WriteByte(c)
			}
		}
	}
	return sb.String()
}
