// Package layer applies OCI image layers (tar streams) to an in-memory ostree tree,
// streaming file contents into an object store, with the semantics a container engine
// uses when it unpacks a layer on top of the lower ones: whiteouts, opaque directories,
// hardlinks, symlinks, xattrs, numeric ownership and setuid/setgid/sticky bits.
//
// The result is the tree `ostree commit` would see if the image were mounted, which is
// what rpm-ostree commits. Two details follow from that:
//   - symlinks always get mode 0777 (the kernel ignores a symlink's mode; lstat says 0777);
//   - device nodes, fifos and sockets cannot be stored by ostree, so they are skipped with
//     a warning, and whatever a lower layer had at that path is removed (the unpacked
//     image would have the special file there). Images routinely carry /dev entries.
//
// It can also record a layer's effect as a compact record (see Options.Record) and replay
// it later without the tar (Replay), which makes re-importing a known layer cheap.
//
// It does not decompress, fetch or verify blobs; that is the caller's job.
package layer

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/rechunker-dev/rechunker/ostree"
)

// Options configure Apply and Replay.
type Options struct {
	// Warn receives non-fatal messages (skipped special files). Nil discards them.
	Warn func(string)
	// Record, when set, receives a replayable record of the layer's effect (see Replay).
	// It is written only as the layer is applied; on error its content is incomplete and
	// must be discarded.
	Record io.Writer
	// Blob, when not zero, is the store's in-place blob (ostree.Store.AddBlob) that the
	// uncompressed tar given to Apply is read from, byte for byte from its start: regular
	// files' payloads are then hashed and left where they are (File.Loc) instead of being
	// written to the store. Replay gives recorded in-place files their location in it.
	Blob ostree.BlobID
}

// Stats counts what a layer did.
type Stats struct {
	Entries   int   // tar entries applied (including whiteouts and skipped ones)
	Files     int   // regular files written (hardlinks not included)
	Symlinks  int   // symlinks written
	Dirs      int   // directory entries
	Hardlinks int   // hardlinks resolved
	Whiteouts int   // .wh.NAME entries
	Opaques   int   // .wh..wh..opq entries
	Skipped   int   // device nodes, fifos and sockets left out
	Bytes     int64 // payload bytes of the regular files written
}

const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
	// maxSymlinkHops bounds symlink resolution in parent paths, like the kernel's ELOOP.
	maxSymlinkHops = 40
)

// Apply reads one uncompressed layer tar from r and applies it to t, writing every regular
// file and symlink into store as it streams by. Errors name the tar entry; the caller adds
// which layer it was. On error t is partly modified and must be discarded.
func Apply(ctx context.Context, t *ostree.Tree, store *ostree.Store, r io.Reader, o Options) (Stats, error) {
	a := newApplier(t, o.Warn)
	var rec *recordWriter
	if o.Record != nil {
		var err error
		if rec, err = newRecordWriter(o.Record); err != nil {
			return Stats{}, err
		}
	}
	// Reading the tar, hashing and applying stay on this goroutine (they are ordered);
	// creating the object files runs in the background.
	w := store.NewAsyncWriter(ctx, ostree.AsyncOptions{})
	c := &contents{w: w, store: store, blob: o.Blob}
	if o.Blob != 0 {
		// Not a Seeker (the tar reader would skip by seeking): every byte is counted.
		c.pos = &countingReader{r: r}
		r = c.pos
	}
	st, err := apply(ctx, a, rec, c, r)
	if cerr := w.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("store layer contents: %w", cerr)
	}
	return st, err
}

func apply(ctx context.Context, a *applier, rec *recordWriter, c *contents, r io.Reader) (Stats, error) {
	tr := tar.NewReader(r)
	last := ""
	for {
		if err := ctx.Err(); err != nil {
			return a.stats, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if errors.Is(err, tar.ErrFieldTooLong) {
				err = fmt.Errorf("%w (a PAX header over 1 MiB: xattrs or names beyond what ostree stores)", err)
			}
			if last == "" {
				return a.stats, fmt.Errorf("read first tar header: %w", err)
			}
			return a.stats, fmt.Errorf("read tar header after entry %q: %w", last, err)
		}
		last = hdr.Name
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue // PAX global header: no file, nothing we use
		}
		op, ok, err := parseEntry(c, hdr, tr)
		if err != nil {
			return a.stats, fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
		if !ok {
			continue
		}
		if err := a.apply(op); err != nil {
			return a.stats, fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
		if rec != nil {
			if err := rec.write(op); err != nil {
				return a.stats, fmt.Errorf("record entry %q: %w", hdr.Name, err)
			}
		}
	}
	if rec != nil {
		if err := rec.close(a.stats.Entries); err != nil {
			return a.stats, fmt.Errorf("record: %w", err)
		}
	}
	return a.stats, nil
}

// contents is where apply puts the content objects of a layer's files.
type contents struct {
	w     *ostree.AsyncWriter
	store *ostree.Store
	blob  ostree.BlobID   // in place: regular files' payloads stay in this blob
	pos   *countingReader // the tar stream's position in blob
	buf   []byte
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// regular returns the File of a regular file entry whose payload is body.
func (c *contents) regular(h *ostree.FileHeader, hdr *tar.Header, body io.Reader) (ostree.File, error) {
	if c.blob == 0 || sparse(hdr) {
		sum, n, err := c.w.WriteContent(*h, body, hdr.Size)
		if err != nil {
			return ostree.File{}, err
		}
		if n != hdr.Size {
			return ostree.File{}, fmt.Errorf("read %d of %d bytes", n, hdr.Size)
		}
		return ostree.File{Header: h, Size: n, Checksum: sum}, nil
	}
	if err := h.Validate(); err != nil {
		return ostree.File{}, err
	}
	if c.buf == nil {
		c.buf = make([]byte, 256<<10)
	}
	start := c.pos.n
	hash := ostree.NewContentHash(*h)
	n, err := io.CopyBuffer(hash, body, c.buf)
	if err != nil {
		return ostree.File{}, err
	}
	if n != hdr.Size {
		return ostree.File{}, fmt.Errorf("read %d of %d bytes", n, hdr.Size)
	}
	if c.pos.n-start != n {
		// A regular entry's payload follows its header; only sparse entries (left to
		// the store above) are stored otherwise.
		return ostree.File{}, fmt.Errorf("payload of %d bytes spans %d bytes of the layer", n, c.pos.n-start)
	}
	loc, err := c.store.BlobLoc(c.blob, start, n)
	if err != nil {
		return ostree.File{}, err
	}
	f := ostree.File{Header: h, Size: n, Loc: loc}
	hash.Sum(f.Checksum[:0])
	return f, nil
}

// sparse reports whether a regular entry is a GNU sparse file, whose payload in the tar
// is not its content byte for byte.
func sparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// parseEntry turns one tar header into an operation, streaming a regular file's payload
// into the store (or hashing it in place). ok is false for entries that have no effect.
func parseEntry(c *contents, hdr *tar.Header, body io.Reader) (op, bool, error) {
	parts, err := splitEntryPath(hdr.Name)
	if err != nil {
		return op{}, false, err
	}
	p := strings.Join(parts, "/")
	for _, c := range parts {
		if strings.HasPrefix(c, whiteoutPrefix+whiteoutPrefix) && c != opaqueMarker {
			// AUFS metadata (.wh..wh.plnk/..., .wh..wh.orph): not part of the image's files.
			return op{}, false, nil
		}
	}
	if len(parts) > 0 {
		base := parts[len(parts)-1]
		dir := strings.Join(parts[:len(parts)-1], "/")
		switch {
		case base == opaqueMarker:
			return op{kind: opOpaque, path: dir}, true, nil
		case strings.HasPrefix(base, whiteoutPrefix):
			name := base[len(whiteoutPrefix):]
			if err := ostree.ValidName(name); err != nil {
				return op{}, false, fmt.Errorf("whiteout of an invalid name: %w", err)
			}
			return op{kind: opWhiteout, path: joinPath(dir, name)}, true, nil
		}
	}
	uid, gid, err := owner(hdr)
	if err != nil {
		return op{}, false, err
	}
	perm := uint32(hdr.Mode) & 0o7777
	switch hdr.Typeflag {
	case tar.TypeDir:
		x, err := xattrs(hdr)
		if err != nil {
			return op{}, false, err
		}
		return op{kind: opDir, path: p, meta: ostree.DirMeta{UID: uid, GID: gid, Mode: ostree.ModeDir | perm, Xattrs: x}}, true, nil
	case tar.TypeReg, tar.TypeCont, tar.TypeGNUSparse:
		x, err := xattrs(hdr)
		if err != nil {
			return op{}, false, err
		}
		if p == "" {
			return op{}, false, errors.New("a regular file cannot replace the root directory")
		}
		h := &ostree.FileHeader{UID: uid, GID: gid, Mode: ostree.ModeRegular | perm, Xattrs: x}
		f, err := c.regular(h, hdr, body)
		if err != nil {
			return op{}, false, err
		}
		o := op{kind: opFile, path: p, file: f}
		if f.Loc.InPlace() {
			o.offset = uint64(f.Loc.Offset()) + 1
		}
		return o, true, nil
	case tar.TypeSymlink:
		x, err := xattrs(hdr)
		if err != nil {
			return op{}, false, err
		}
		if p == "" {
			return op{}, false, errors.New("a symlink cannot replace the root directory")
		}
		h := ostree.FileHeader{UID: uid, GID: gid, Mode: ostree.ModeSymlink | 0o777, Target: hdr.Linkname, Xattrs: x}
		sum, _, err := c.w.WriteContent(h, nil, 0)
		if err != nil {
			return op{}, false, err
		}
		return op{kind: opFile, path: p, file: ostree.File{Header: &h, Checksum: sum}}, true, nil
	case tar.TypeLink:
		if p == "" {
			return op{}, false, errors.New("a hardlink cannot replace the root directory")
		}
		tparts, err := splitEntryPath(hdr.Linkname)
		if err != nil {
			return op{}, false, fmt.Errorf("hardlink target %q: %w", hdr.Linkname, err)
		}
		if len(tparts) == 0 {
			return op{}, false, errors.New("hardlink to the root directory")
		}
		return op{kind: opLink, path: p, target: strings.Join(tparts, "/")}, true, nil
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if p == "" {
			return op{}, false, errors.New("a special file cannot replace the root directory")
		}
		return op{kind: opSkip, path: p, target: specialKind(hdr.Typeflag)}, true, nil
	default:
		return op{}, false, fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
	}
}

func specialKind(t byte) string {
	switch t {
	case tar.TypeChar:
		return "character device"
	case tar.TypeBlock:
		return "block device"
	default:
		return "fifo"
	}
}

// splitEntryPath cleans a tar entry name into path components relative to the layer
// root. A leading "./" is normal, and absolute names are taken relative to the root as
// container engines unpack them; names whose ".." would leave the root and names ostree
// cannot store are errors rather than silently rewritten.
func splitEntryPath(name string) ([]string, error) {
	if !utf8.ValidString(name) {
		return nil, errors.New("path is not valid UTF-8 (ostree cannot store it)")
	}
	// One allocation per path: a rebuild splits every path of every layer record.
	out := make([]string, 0, strings.Count(name, "/")+1)
	for rest, more := name, true; more; {
		var c string
		c, rest, more = strings.Cut(rest, "/")
		switch c {
		case "", ".":
		case "..":
			if len(out) == 0 {
				return nil, errors.New("path escapes the layer root")
			}
			out = out[:len(out)-1]
		default:
			if err := ostree.ValidName(c); err != nil {
				return nil, err
			}
			out = append(out, c)
		}
	}
	return out, nil
}

func joinPath(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

func owner(hdr *tar.Header) (uint32, uint32, error) {
	if hdr.Uid < 0 || hdr.Uid > math.MaxUint32 || hdr.Gid < 0 || hdr.Gid > math.MaxUint32 {
		return 0, 0, fmt.Errorf("uid %d / gid %d out of range", hdr.Uid, hdr.Gid)
	}
	return uint32(hdr.Uid), uint32(hdr.Gid), nil
}

const paxXattrPrefix = "SCHILY.xattr."

// xattrs collects the entry's extended attributes from PAX SCHILY.xattr.* records (and the
// reader's legacy Xattrs map, which mirrors them) in ostree's normalized form.
func xattrs(hdr *tar.Header) (ostree.Xattrs, error) {
	var x ostree.Xattrs
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, paxXattrPrefix); ok {
			x = append(x, ostree.Xattr{Name: name, Value: []byte(v)})
		}
	}
	//lint:ignore SA1019 writers that only fill Header.Xattrs still produce these records
	for name, v := range hdr.Xattrs { //nolint:staticcheck
		if _, dup := hdr.PAXRecords[paxXattrPrefix+name]; !dup {
			x = append(x, ostree.Xattr{Name: name, Value: []byte(v)})
		}
	}
	x = x.Normalize()
	if err := checkXattrs(x); err != nil {
		return nil, err
	}
	return x, nil
}

func checkXattrs(x ostree.Xattrs) error {
	for _, a := range x {
		if a.Name == "" || strings.IndexByte(a.Name, 0) >= 0 {
			return fmt.Errorf("invalid xattr name %q", a.Name)
		}
	}
	if n := len(x.Marshal()); n > ostree.MaxXattrsSize {
		return fmt.Errorf("xattrs take %d bytes, over ostree's limit of %d", n, ostree.MaxXattrsSize)
	}
	return nil
}
