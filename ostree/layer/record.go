package layer

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"unicode/utf8"

	"golang.org/x/sync/errgroup"

	"github.com/klauspost/compress/gzip"
	"github.com/rechunker-dev/rechunker/ostree"
)

// A record is the effect of one layer as a list of operations, so that a layer already
// imported once can be re-applied without its tar. Format (all inside one gzip stream):
//
//	magic "RCLR", uvarint version
//	ops: kind byte, path string, then by kind
//	  dir:  uid, gid, mode (uvarint), xattrs
//	  file: uid, gid, mode (uvarint), symlink target string, xattrs, size uvarint, 32-byte checksum,
//	        uvarint in-place offset + 1 (0: the content object is in the store)
//	  link: target string          skip: description string
//	  whiteout, opaque: nothing
//	end: kind 0x7f, uvarint number of ops
//
// string = uvarint length + bytes; xattrs = uvarint count + (name string, value string)...
// The version changes whenever Apply's interpretation of a tar changes, which makes older
// records unusable instead of wrong.
const (
	recordMagic   = "RCLR"
	recordVersion = 2
	maxRecordStr  = ostree.MaxXattrsSize
)

// ErrRecordUnusable means a record cannot be replayed (corrupt, from another version, or
// referring to content objects the store no longer has); the tree is untouched and the
// caller should apply the layer's tar instead.
var ErrRecordUnusable = errors.New("layer record unusable")

type recordWriter struct {
	gz  *gzip.Writer
	w   *bufio.Writer
	buf []byte
}

func newRecordWriter(w io.Writer) (*recordWriter, error) {
	gz, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	rw := &recordWriter{gz: gz, w: bufio.NewWriterSize(gz, 64<<10)}
	rw.w.WriteString(recordMagic)
	rw.uvarint(recordVersion)
	return rw, nil
}

func (rw *recordWriter) uvarint(v uint64) {
	rw.buf = binary.AppendUvarint(rw.buf[:0], v)
	rw.w.Write(rw.buf)
}

func (rw *recordWriter) str(s string) {
	rw.uvarint(uint64(len(s)))
	rw.w.WriteString(s)
}

func (rw *recordWriter) xattrs(x ostree.Xattrs) {
	rw.uvarint(uint64(len(x)))
	for _, a := range x {
		rw.str(a.Name)
		rw.str(string(a.Value))
	}
}

func (rw *recordWriter) write(o op) error {
	rw.w.WriteByte(byte(o.kind))
	rw.str(o.path)
	switch o.kind {
	case opDir:
		rw.uvarint(uint64(o.meta.UID))
		rw.uvarint(uint64(o.meta.GID))
		rw.uvarint(uint64(o.meta.Mode))
		rw.xattrs(o.meta.Xattrs)
	case opFile:
		h := o.file.Header
		rw.uvarint(uint64(h.UID))
		rw.uvarint(uint64(h.GID))
		rw.uvarint(uint64(h.Mode))
		rw.str(h.Target)
		rw.xattrs(h.Xattrs)
		rw.uvarint(uint64(o.file.Size))
		rw.w.Write(o.file.Checksum[:])
		rw.uvarint(o.offset)
	case opLink, opSkip:
		rw.str(o.target)
	}
	// bufio keeps the first error and returns it from every later call.
	_, err := rw.w.Write(nil)
	return err
}

func (rw *recordWriter) close(n int) error {
	rw.w.WriteByte(byte(opEnd))
	rw.uvarint(uint64(n))
	if err := rw.w.Flush(); err != nil {
		return err
	}
	return rw.gz.Close()
}

type recordReader struct {
	r   *bufio.Reader
	n   int
	buf []byte // str's scratch: a string costs one allocation, not two
	sum ostree.Checksum
}

func newRecordReader(r io.Reader) (*recordReader, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, err
	}
	rr := &recordReader{r: bufio.NewReaderSize(gz, 64<<10)}
	var magic [len(recordMagic)]byte
	if _, err := io.ReadFull(rr.r, magic[:]); err != nil {
		return nil, err
	}
	if string(magic[:]) != recordMagic {
		return nil, errors.New("not a layer record")
	}
	v, err := binary.ReadUvarint(rr.r)
	if err != nil {
		return nil, err
	}
	if v != recordVersion {
		return nil, fmt.Errorf("record version %d, want %d", v, recordVersion)
	}
	return rr, nil
}

func (rr *recordReader) u32() (uint32, error) {
	v, err := binary.ReadUvarint(rr.r)
	if err != nil {
		return 0, err
	}
	if v > 1<<32-1 {
		return 0, fmt.Errorf("value %d out of range", v)
	}
	return uint32(v), nil
}

func (rr *recordReader) str() (string, error) {
	n, err := binary.ReadUvarint(rr.r)
	if err != nil {
		return "", err
	}
	if n > maxRecordStr {
		return "", fmt.Errorf("string of %d bytes", n)
	}
	if uint64(cap(rr.buf)) < n {
		rr.buf = make([]byte, n)
	}
	b := rr.buf[:n]
	if _, err := io.ReadFull(rr.r, b); err != nil {
		return "", err
	}
	return string(b), nil
}

func (rr *recordReader) xattrs() (ostree.Xattrs, error) {
	n, err := binary.ReadUvarint(rr.r)
	if err != nil {
		return nil, err
	}
	if n > ostree.MaxXattrsSize/8 {
		return nil, fmt.Errorf("%d xattrs", n)
	}
	var x ostree.Xattrs
	for range n {
		name, err := rr.str()
		if err != nil {
			return nil, err
		}
		val, err := rr.str()
		if err != nil {
			return nil, err
		}
		x = append(x, ostree.Xattr{Name: name, Value: []byte(val)})
	}
	return x, nil
}

func (rr *recordReader) ids() (uid, gid, mode uint32, err error) {
	if uid, err = rr.u32(); err != nil {
		return
	}
	if gid, err = rr.u32(); err != nil {
		return
	}
	mode, err = rr.u32()
	return
}

// next returns the next operation, or io.EOF after a well-formed end marker.
func (rr *recordReader) next() (op, error) {
	k, err := rr.r.ReadByte()
	if err != nil {
		return op{}, unexpected(err)
	}
	o := op{kind: opKind(k)}
	if o.kind == opEnd {
		n, err := binary.ReadUvarint(rr.r)
		if err != nil {
			return op{}, unexpected(err)
		}
		if n != uint64(rr.n) {
			return op{}, fmt.Errorf("record ends after %d operations, says %d", rr.n, n)
		}
		if _, err := rr.r.ReadByte(); err != io.EOF {
			return op{}, errors.New("data after the end of the record")
		}
		return op{}, io.EOF
	}
	if o.path, err = rr.str(); err != nil {
		return op{}, unexpected(err)
	}
	switch o.kind {
	case opDir:
		m := &o.meta
		if m.UID, m.GID, m.Mode, err = rr.ids(); err == nil {
			m.Xattrs, err = rr.xattrs()
		}
	case opFile:
		h := new(ostree.FileHeader)
		o.file.Header = h
		if h.UID, h.GID, h.Mode, err = rr.ids(); err != nil {
			break
		}
		if h.Target, err = rr.str(); err != nil {
			break
		}
		if h.Xattrs, err = rr.xattrs(); err != nil {
			break
		}
		var size uint64
		if size, err = binary.ReadUvarint(rr.r); err != nil {
			break
		}
		if size > 1<<62 {
			err = fmt.Errorf("file size %d", size)
			break
		}
		o.file.Size = int64(size)
		// Read through rr.sum: reading into o itself would move every op to the heap.
		if _, err = io.ReadFull(rr.r, rr.sum[:]); err != nil {
			break
		}
		o.file.Checksum = rr.sum
		if o.offset, err = binary.ReadUvarint(rr.r); err == nil && o.offset != 0 && h.IsSymlink() {
			err = errors.New("symlink with an in-place payload")
		}
	case opLink, opSkip:
		o.target, err = rr.str()
	case opWhiteout, opOpaque:
	default:
		err = fmt.Errorf("unknown operation %d", k)
	}
	if err != nil {
		return op{}, unexpected(err)
	}
	rr.n++
	return o, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Replay applies a record written by Apply (Options.Record) to t. It first reads the
// whole record and checks that every content object it names is in store; if not, or if
// the record is damaged or from another format version, it returns an error wrapping
// ErrRecordUnusable and leaves t untouched. Errors after that (say, a hardlink to a lower
// layer's file that this tree lacks) are the same Apply would give.
func Replay(ctx context.Context, t *ostree.Tree, store *ostree.Store, r io.ReadSeeker, o Options) (Stats, error) {
	if err := checkRecord(ctx, store, o.Blob, r); err != nil {
		if ctx.Err() != nil {
			return Stats{}, ctx.Err()
		}
		return Stats{}, fmt.Errorf("%w: %w", ErrRecordUnusable, err)
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return Stats{}, fmt.Errorf("%w: %w", ErrRecordUnusable, err)
	}
	rr, err := newRecordReader(r)
	if err != nil {
		return Stats{}, fmt.Errorf("%w: %w", ErrRecordUnusable, err)
	}
	a := newApplier(t, o.Warn)
	for {
		if err := ctx.Err(); err != nil {
			return a.stats, err
		}
		op, err := rr.next()
		if err == io.EOF {
			return a.stats, nil
		}
		if err != nil {
			return a.stats, fmt.Errorf("replay record: %w", err)
		}
		if op.offset != 0 && o.Blob != 0 {
			// Checked by checkRecord; the payload is rehashed when it is read.
			if op.file.Loc, err = store.BlobLoc(o.Blob, int64(op.offset-1), op.file.Size); err != nil {
				return a.stats, fmt.Errorf("entry %q: %w", op.path, err)
			}
		}
		if err := a.apply(op); err != nil {
			return a.stats, fmt.Errorf("entry %q: %w", op.path, err)
		}
	}
}

// checkOp rejects what Apply could never have produced, so a damaged record cannot put
// invalid names or headers into a tree.
func checkOp(o op) error {
	if err := checkCleanPath(o.path); err != nil {
		return err
	}
	switch o.kind {
	case opDir:
		if o.meta.Mode&ostree.ModeTypeMask != ostree.ModeDir {
			return fmt.Errorf("directory mode %#o", o.meta.Mode)
		}
		return checkXattrs(o.meta.Xattrs)
	case opFile:
		h := o.file.Header
		if err := h.Validate(); err != nil {
			return err
		}
		if !utf8.ValidString(h.Target) {
			return errors.New("symlink target is not valid UTF-8")
		}
		return checkXattrs(h.Xattrs)
	case opLink:
		if o.target == "" {
			return errors.New("hardlink without a target")
		}
		return checkCleanPath(o.target)
	}
	return nil
}

// checkCleanPath accepts "" (the root) and names ostree can store joined by single
// slashes: the paths splitEntryPath's parts join back to. It checks in place, without
// splitting, since a rebuild checks every path of every record.
func checkCleanPath(p string) error {
	for rest, more := p, p != ""; more; {
		var c string
		c, rest, more = strings.Cut(rest, "/")
		if err := ostree.ValidName(c); err != nil {
			return fmt.Errorf("path %q is not clean: %w", p, err)
		}
	}
	return nil
}

// checkRecord checks a record before it is replayed: every operation is one Apply could
// have produced, and every content object is in the store or, recorded in place, lies
// within blob (when not zero).
func checkRecord(ctx context.Context, store *ostree.Store, blob ostree.BlobID, r io.Reader) error {
	// Asking the store for each object is one system call per file, most of a rebuild's
	// replay: batches of them run on every core while the record is parsed.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0) + 1)
	var batch []op
	flush := func() {
		b := batch
		batch = make([]op, 0, hasBatch)
		g.Go(func() error {
			for _, o := range b {
				if !store.Has(o.file.Checksum, ostree.ObjFile) {
					return fmt.Errorf("entry %q: content object %s is not in the store", o.path, o.file.Checksum)
				}
			}
			return nil
		})
	}
	err := eachOp(gctx, r, func(o op) error {
		if err := checkOp(o); err != nil {
			return fmt.Errorf("entry %q: %w", o.path, err)
		}
		if o.kind == opFile && o.offset != 0 && blob != 0 {
			// In the layer blob: a bounds check, checked here rather than batched.
			if _, err := store.BlobLoc(blob, int64(o.offset-1), o.file.Size); err != nil {
				return fmt.Errorf("entry %q: %w", o.path, err)
			}
			return nil
		}
		if o.kind == opFile {
			if batch = append(batch, o); len(batch) == hasBatch {
				flush()
			}
		}
		return nil
	})
	if len(batch) > 0 && err == nil {
		flush()
	}
	if werr := g.Wait(); werr != nil {
		return werr // the first missing object, not the cancellation it caused
	}
	return err
}

// hasBatch is how many objects one goroutine of checkRecord looks up.
const hasBatch = 2048

// eachOp calls fn with every operation of a record.
func eachOp(ctx context.Context, r io.Reader, fn func(op) error) error {
	rr, err := newRecordReader(r)
	if err != nil {
		return err
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		o, err := rr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(o); err != nil {
			return err
		}
	}
}

// RecordObjects calls fn with the checksum of every content object a record names
// (store pruning keeps them while the record is kept).
func RecordObjects(ctx context.Context, r io.Reader, fn func(ostree.Checksum)) error {
	return eachOp(ctx, r, func(o op) error {
		if o.kind == opFile {
			fn(o.file.Checksum)
		}
		return nil
	})
}
