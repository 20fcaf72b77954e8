package ostree

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// File is a regular file or symlink in a tree: its content object's header, payload size
// and checksum. Hardlinked paths are separate File values with the same checksum, exactly
// as ostree sees them.
type File struct {
	// Header is never nil. Files with equal metadata may share one header (see
	// HeaderTable): never modify it through a File, point the File to a new one.
	Header   *FileHeader
	Size     int64 // payload bytes; 0 for symlinks
	Checksum Checksum
	// Loc is where the payload is read from when it is not a file of the store: a
	// layer blob of the input, read in place (blob.go). Zero means the store.
	Loc Loc
}

// HeaderTable interns file headers. An image has a few dozen distinct combinations of
// owner, mode and xattrs across 10^5 files; sharing them halves the memory of a File,
// which is most of a tree. The zero value is ready to use; not safe for concurrent use.
type HeaderTable struct {
	m map[headerKey]*FileHeader
}

type headerKey struct {
	uid, gid, mode, rdev uint32
	xattrs               string
}

// Intern returns a shared header equal to h. Symlink headers are not shared: their
// targets are nearly all distinct.
func (t *HeaderTable) Intern(h FileHeader) *FileHeader {
	if h.Target != "" {
		return &h
	}
	k := headerKey{uid: h.UID, gid: h.GID, mode: h.Mode, rdev: h.Rdev}
	if len(h.Xattrs) > 0 {
		var b strings.Builder
		for _, x := range h.Xattrs {
			// Names have no NUL; the value length makes the encoding unambiguous.
			fmt.Fprintf(&b, "%s\x00%d\x00", x.Name, len(x.Value))
			b.Write(x.Value)
		}
		k.xattrs = b.String()
	}
	if p := t.m[k]; p != nil {
		return p
	}
	if t.m == nil {
		t.m = map[headerKey]*FileHeader{}
	}
	p := &h
	t.m[k] = p
	return p
}

// Dir is a directory in a tree.
type Dir struct {
	Meta  DirMeta
	Files map[string]*File // regular files and symlinks
	Dirs  map[string]*Dir

	// Set by Tree.Finalize.
	TreeSum Checksum
	MetaSum Checksum
}

// NewDir returns an empty directory with the given metadata.
func NewDir(meta DirMeta) *Dir {
	return &Dir{Meta: meta, Files: map[string]*File{}, Dirs: map[string]*Dir{}}
}

// FileNames returns the file entry names sorted in ostree order.
func (d *Dir) FileNames() []string { return sortedKeys(d.Files) }

// DirNames returns the subdirectory names sorted in ostree order.
func (d *Dir) DirNames() []string { return sortedKeys(d.Dirs) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// DirTree returns the dirtree object of d; subdirectories must already be finalized.
func (d *Dir) DirTree() DirTree {
	dt := DirTree{Files: make([]DirTreeFile, 0, len(d.Files)), Dirs: make([]DirTreeDir, 0, len(d.Dirs))}
	for _, n := range d.FileNames() {
		dt.Files = append(dt.Files, DirTreeFile{Name: n, Checksum: d.Files[n].Checksum})
	}
	for _, n := range d.DirNames() {
		s := d.Dirs[n]
		dt.Dirs = append(dt.Dirs, DirTreeDir{Name: n, Tree: s.TreeSum, Meta: s.MetaSum})
	}
	return dt
}

// Tree is the in-memory tree of a commit: metadata only, content lives in a Store.
type Tree struct {
	Root    *Dir
	headers HeaderTable
	files   []File // NewFile's slab
}

// InternHeader returns a header equal to h, shared with the tree's other files that
// have the same metadata. Not safe for concurrent use.
func (t *Tree) InternHeader(h FileHeader) *FileHeader { return t.headers.Intern(h) }

// fileSlab is how many Files NewFile allocates at once.
const fileSlab = 1024

// NewFile returns a new File equal to f. Files come from slabs: a File is 56 bytes,
// which a File of its own rounds up to the allocator's 64, and a desktop image has
// 300k of them. Not safe for concurrent use.
func (t *Tree) NewFile(f File) *File {
	if len(t.files) == 0 {
		t.files = make([]File, fileSlab)
	}
	p := &t.files[0]
	*p = f
	t.files = t.files[1:]
	return p
}

// NewTree returns a tree with an empty root owned by root, mode 0755.
func NewTree() *Tree {
	return &Tree{Root: NewDir(DirMeta{Mode: ModeDir | 0o755})}
}

// SplitPath cleans an absolute or relative slash path into its components.
// It rejects ".." that would leave the root.
func SplitPath(p string) ([]string, error) {
	var out []string
	for _, c := range strings.Split(p, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			if len(out) == 0 {
				return nil, fmt.Errorf("path %q escapes the root", p)
			}
			out = out[:len(out)-1]
		default:
			out = append(out, c)
		}
	}
	return out, nil
}

// LookupDir returns the directory at p, or nil.
func (t *Tree) LookupDir(p string) *Dir {
	parts, err := SplitPath(p)
	if err != nil {
		return nil
	}
	d := t.Root
	for _, c := range parts {
		d = d.Dirs[c]
		if d == nil {
			return nil
		}
	}
	return d
}

// LookupFile returns the file or symlink at p without following symlinks, or nil.
func (t *Tree) LookupFile(p string) *File {
	dir, base := path.Split(path.Clean("/" + p))
	d := t.LookupDir(dir)
	if d == nil || base == "" {
		return nil
	}
	return d.Files[base]
}

// WalkFunc is called for each entry; exactly one of d and f is non-nil. p is the
// absolute path ("/" for the root).
type WalkFunc func(p string, d *Dir, f *File) error

// Walk visits the tree depth-first in dirtree order: a directory, then its files sorted
// by name, then its subdirectories sorted by name.
func (t *Tree) Walk(fn WalkFunc) error {
	return walk("/", t.Root, fn)
}

func walk(p string, d *Dir, fn WalkFunc) error {
	if err := fn(p, d, nil); err != nil {
		return err
	}
	for _, n := range d.FileNames() {
		if err := fn(path.Join(p, n), nil, d.Files[n]); err != nil {
			return err
		}
	}
	for _, n := range d.DirNames() {
		if err := walk(path.Join(p, n), d.Dirs[n], fn); err != nil {
			return err
		}
	}
	return nil
}

// MetadataWriter stores metadata objects; *Store implements it.
type MetadataWriter interface {
	WriteMetadata(t ObjectType, data []byte) (Checksum, error)
}

// Finalize computes every directory's dirtree and dirmeta checksums bottom-up and, when
// w is not nil, writes those objects. Call it again after changing the tree.
func (t *Tree) Finalize(w MetadataWriter) (rootTree, rootMeta Checksum, err error) {
	if err := finalize("/", t.Root, w); err != nil {
		return Checksum{}, Checksum{}, err
	}
	return t.Root.TreeSum, t.Root.MetaSum, nil
}

func finalize(p string, d *Dir, w MetadataWriter) error {
	for n, s := range d.Dirs {
		if err := finalize(path.Join(p, n), s, w); err != nil {
			return err
		}
	}
	tree, err := d.DirTree().Encode()
	if err != nil {
		return fmt.Errorf("directory %s: %w", p, err)
	}
	meta := d.Meta.Marshal()
	d.TreeSum = sha256Sum(tree)
	d.MetaSum = sha256Sum(meta)
	if w != nil {
		if _, err := w.WriteMetadata(ObjDirTree, tree); err != nil {
			return fmt.Errorf("directory %s: %w", p, err)
		}
		if _, err := w.WriteMetadata(ObjDirMeta, meta); err != nil {
			return fmt.Errorf("directory %s: %w", p, err)
		}
	}
	return nil
}

// Stats summarizes a tree.
type Stats struct {
	Dirs, Files, Symlinks int
	Bytes                 int64 // sum of payload sizes over all paths
}

// Stats counts the tree's entries.
func (t *Tree) Stats() Stats {
	var s Stats
	_ = t.Walk(func(_ string, d *Dir, f *File) error {
		switch {
		case d != nil:
			s.Dirs++
		case f.Header.IsSymlink():
			s.Symlinks++
		default:
			s.Files++
			s.Bytes += f.Size
		}
		return nil
	})
	return s
}
