// Package ostree owns the ostree object model: the byte-exact encodings and checksums of
// content, dirmeta, dirtree and commit objects, the in-memory tree of a commit, and an
// on-disk content-addressed object store. It knows nothing of planning, image formats
// or bootc; those live in rechunk/, exporter/ and bootc/.
package ostree

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"math/bits"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/rechunker-dev/rechunker/ostree/gvariant"
)

// ObjectType names an ostree object kind by its file suffix.
type ObjectType string

// Object kinds as ostree names their files.
const (
	ObjFile       ObjectType = "file"
	ObjDirTree    ObjectType = "dirtree"
	ObjDirMeta    ObjectType = "dirmeta"
	ObjCommit     ObjectType = "commit"
	ObjCommitMeta ObjectType = "commitmeta"
)

// GVariant formats of the objects, in ostree's own terms (ostree-core.h).
const (
	// FileHeaderFormat: uid, gid, mode, rdev, symlink target, xattrs.
	FileHeaderFormat = "(uuuusa(ayay))"
	// DirMetaFormat: uid, gid, mode, xattrs.
	DirMetaFormat = "(uuua(ayay))"
	// DirTreeFormat: files (name, content checksum), dirs (name, tree checksum, meta checksum).
	DirTreeFormat = "(a(say)a(sayay))"
	// CommitFormat: metadata, parent, related, subject, body, timestamp, root tree, root meta.
	CommitFormat = "(a{sv}aya(say)sstayay)"
	// XattrsFormat is the xattr list shared by the formats above.
	XattrsFormat = "a(ayay)"
	// MetadataFormat is commit metadata and detached commit metadata.
	MetadataFormat = "a{sv}"
)

// File-type bits of st_mode, which ostree keeps in every mode it hashes.
const (
	ModeTypeMask = 0o170000
	ModeDir      = 0o040000
	ModeRegular  = 0o100000
	ModeSymlink  = 0o120000
)

// MaxXattrsSize is the largest xattr blob ostree's importer accepts.
const MaxXattrsSize = 1 << 20

var (
	fileHeaderType = gvariant.MustParseType(FileHeaderFormat)
	dirMetaType    = gvariant.MustParseType(DirMetaFormat)
	dirTreeType    = gvariant.MustParseType(DirTreeFormat)
	commitType     = gvariant.MustParseType(CommitFormat)
	xattrsType     = gvariant.MustParseType(XattrsFormat)
	metadataType   = gvariant.MustParseType(MetadataFormat)
)

// Checksum is a sha256 object name.
type Checksum [32]byte

// String returns the 64-character lower-case hex form ostree prints.
func (c Checksum) String() string { return hex.EncodeToString(c[:]) }

// IsZero reports whether c is unset.
func (c Checksum) IsZero() bool { return c == Checksum{} }

// ParseChecksum parses a 64-character hex checksum.
func ParseChecksum(s string) (Checksum, error) {
	var c Checksum
	if len(s) != 64 {
		return c, fmt.Errorf("checksum %q: want 64 hex characters", s)
	}
	if _, err := hex.Decode(c[:], []byte(s)); err != nil {
		return c, fmt.Errorf("checksum %q: %w", s, err)
	}
	if strings.ToLower(s) != s {
		return c, fmt.Errorf("checksum %q: not lower-case", s)
	}
	return c, nil
}

// ObjectPath is the path of an object relative to a repository's objects/ directory's
// parent: objects/ab/cdef….suffix.
func ObjectPath(c Checksum, t ObjectType) string {
	h := c.String()
	return "objects/" + h[:2] + "/" + h[2:] + "." + string(t)
}

// Xattr is one extended attribute. Name has no trailing NUL; the encodings add it.
type Xattr struct {
	Name  string
	Value []byte
}

// Xattrs is a list of extended attributes.
type Xattrs []Xattr

// Normalize returns the canonical form ostree hashes: sorted by name (byte order),
// empty values dropped, duplicate names collapsed to the last one given.
func (x Xattrs) Normalize() Xattrs {
	if len(x) == 0 {
		return nil
	}
	byName := make(map[string][]byte, len(x))
	for _, a := range x {
		byName[a.Name] = a.Value
	}
	out := make(Xattrs, 0, len(byName))
	for n, v := range byName {
		if len(v) == 0 {
			continue
		}
		out = append(out, Xattr{Name: n, Value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if len(out) == 0 {
		return nil
	}
	return out
}

// Get returns the value of the named xattr.
func (x Xattrs) Get(name string) ([]byte, bool) {
	for _, a := range x {
		if a.Name == name {
			return a.Value, true
		}
	}
	return nil, false
}

// Without returns x with the named xattrs removed.
func (x Xattrs) Without(names ...string) Xattrs {
	var out Xattrs
	for _, a := range x {
		drop := false
		for _, n := range names {
			if a.Name == n {
				drop = true
			}
		}
		if !drop {
			out = append(out, a)
		}
	}
	return out
}

func (x Xattrs) variant() []any {
	items := make([]any, 0, len(x))
	for _, a := range x {
		items = append(items, []any{append([]byte(a.Name), 0), a.Value})
	}
	return items
}

// Marshal serializes x (which should be normalized) as a(ayay), the content of a
// .file-xattrs object.
func (x Xattrs) Marshal() []byte {
	b, err := gvariant.EncodeType(xattrsType, x.variant())
	if err != nil {
		panic(err) // the value is built from well-typed Go data
	}
	return b
}

// ParseXattrs decodes an a(ayay) blob.
func ParseXattrs(data []byte) (Xattrs, error) {
	if len(data) > MaxXattrsSize {
		return nil, fmt.Errorf("xattrs blob of %d bytes exceeds %d", len(data), MaxXattrsSize)
	}
	v, err := gvariant.DecodeType(xattrsType, data)
	if err != nil {
		return nil, fmt.Errorf("decode xattrs: %w", err)
	}
	return xattrsFromVariant(v)
}

func xattrsFromVariant(v any) (Xattrs, error) {
	items, _ := v.([]any)
	var out Xattrs
	for _, it := range items {
		pair := it.([]any)
		name := pair[0].([]byte)
		if len(name) == 0 || name[len(name)-1] != 0 || bytes.IndexByte(name[:len(name)-1], 0) >= 0 {
			return nil, fmt.Errorf("xattr name %q is not a NUL-terminated string", name)
		}
		out = append(out, Xattr{Name: string(name[:len(name)-1]), Value: pair[1].([]byte)})
	}
	return out, nil
}

func be32(v uint32) uint32 { return bits.ReverseBytes32(v) }
func be64(v uint64) uint64 { return bits.ReverseBytes64(v) }

// FileHeader is the metadata of a content object (regular file or symlink).
type FileHeader struct {
	UID, GID uint32
	Mode     uint32 // full st_mode including S_IFREG or S_IFLNK
	Rdev     uint32
	Target   string // symlink target; empty for regular files
	Xattrs   Xattrs // normalized
}

// IsSymlink reports whether the header describes a symlink.
func (h FileHeader) IsSymlink() bool { return h.Mode&ModeTypeMask == ModeSymlink }

// Marshal serializes the header as (uuuusa(ayay)).
func (h FileHeader) Marshal() []byte {
	b, err := gvariant.EncodeType(fileHeaderType, []any{
		be32(h.UID), be32(h.GID), be32(h.Mode), be32(h.Rdev), h.Target, h.Xattrs.variant(),
	})
	if err != nil {
		panic(err) // only a NUL inside Target can fail; Validate rejects it first
	}
	return b
}

// Validate checks what ostree itself refuses.
func (h FileHeader) Validate() error {
	switch h.Mode & ModeTypeMask {
	case ModeRegular:
		if h.Target != "" {
			return fmt.Errorf("regular file with a symlink target")
		}
	case ModeSymlink:
		if err := ValidSymlinkTarget(h.Target); err != nil {
			return err
		}
	default:
		return fmt.Errorf("mode %#o is not a regular file or symlink", h.Mode)
	}
	return validateXattrs(h.Xattrs)
}

func validateXattrs(x Xattrs) error {
	size := 0
	for _, a := range x {
		if a.Name == "" || strings.IndexByte(a.Name, 0) >= 0 {
			return fmt.Errorf("invalid xattr name %q", a.Name)
		}
		size += len(a.Name) + 1 + len(a.Value) + 8
	}
	if size > MaxXattrsSize {
		return fmt.Errorf("xattrs total %d bytes, over the %d-byte limit", size, MaxXattrsSize)
	}
	return nil
}

// ParseFileHeader decodes a (uuuusa(ayay)) header.
func ParseFileHeader(data []byte) (FileHeader, error) {
	v, err := gvariant.DecodeType(fileHeaderType, data)
	if err != nil {
		return FileHeader{}, fmt.Errorf("decode file header: %w", err)
	}
	f := v.([]any)
	x, err := xattrsFromVariant(f[5])
	if err != nil {
		return FileHeader{}, err
	}
	return FileHeader{
		UID: be32(f[0].(uint32)), GID: be32(f[1].(uint32)), Mode: be32(f[2].(uint32)),
		Rdev: be32(f[3].(uint32)), Target: f[4].(string), Xattrs: x,
	}, nil
}

// ContentPrefix returns the bytes hashed before a content object's payload:
// BE32 length, four zero bytes, then the serialized header.
func ContentPrefix(h FileHeader) []byte {
	hdr := h.Marshal()
	out := make([]byte, 8, 8+len(hdr))
	binary.BigEndian.PutUint32(out, uint32(len(hdr)))
	return append(out, hdr...)
}

// NewContentHash returns a sha256 already fed with the header prefix; write the payload
// (nothing for symlinks) and Sum it to get the content checksum.
func NewContentHash(h FileHeader) hash.Hash {
	s := sha256.New()
	s.Write(ContentPrefix(h))
	return s
}

// ContentChecksum computes the checksum of a content object with an in-memory payload.
func ContentChecksum(h FileHeader, payload []byte) Checksum {
	s := NewContentHash(h)
	s.Write(payload)
	var c Checksum
	s.Sum(c[:0])
	return c
}

// DirMeta is the metadata of a directory.
type DirMeta struct {
	UID, GID uint32
	Mode     uint32 // full st_mode including S_IFDIR
	Xattrs   Xattrs // normalized
}

// Marshal serializes the dirmeta object.
func (d DirMeta) Marshal() []byte {
	b, err := gvariant.EncodeType(dirMetaType, []any{be32(d.UID), be32(d.GID), be32(d.Mode), d.Xattrs.variant()})
	if err != nil {
		panic(err)
	}
	return b
}

// Checksum returns the dirmeta object's checksum.
func (d DirMeta) Checksum() Checksum { return sha256.Sum256(d.Marshal()) }

// ParseDirMeta decodes a dirmeta object.
func ParseDirMeta(data []byte) (DirMeta, error) {
	v, err := gvariant.DecodeType(dirMetaType, data)
	if err != nil {
		return DirMeta{}, fmt.Errorf("decode dirmeta: %w", err)
	}
	f := v.([]any)
	x, err := xattrsFromVariant(f[3])
	if err != nil {
		return DirMeta{}, err
	}
	return DirMeta{UID: be32(f[0].(uint32)), GID: be32(f[1].(uint32)), Mode: be32(f[2].(uint32)), Xattrs: x}, nil
}

// DirTreeFile is a file (or symlink) entry of a dirtree.
type DirTreeFile struct {
	Name     string
	Checksum Checksum
}

// DirTreeDir is a subdirectory entry of a dirtree.
type DirTreeDir struct {
	Name string
	Tree Checksum
	Meta Checksum
}

// DirTree lists one directory's entries. Marshal sorts them as ostree does.
type DirTree struct {
	Files []DirTreeFile
	Dirs  []DirTreeDir
}

// Marshal serializes the dirtree with entries sorted by name (strcmp order). It panics
// on names Encode rejects; use Encode for names that were not validated.
func (d DirTree) Marshal() []byte {
	b, err := d.Encode()
	if err != nil {
		panic(err)
	}
	return b
}

// Encode serializes the dirtree with entries sorted by name (strcmp order). It fails on
// names ostree cannot store (see ValidName) and on a name used twice.
func (d DirTree) Encode() ([]byte, error) {
	// Dir.DirTree lists names sorted already; others are sorted in a copy.
	files, dirs := d.Files, d.Dirs
	if !slices.IsSortedFunc(files, func(a, b DirTreeFile) int { return strings.Compare(a.Name, b.Name) }) {
		files = slices.Clone(files)
		sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	}
	if !slices.IsSortedFunc(dirs, func(a, b DirTreeDir) int { return strings.Compare(a.Name, b.Name) }) {
		dirs = slices.Clone(dirs)
		sort.Slice(dirs, func(i, j int) bool { return dirs[i].Name < dirs[j].Name })
	}
	for i, f := range files {
		if err := ValidName(f.Name); err != nil {
			return nil, fmt.Errorf("encode dirtree: %w", err)
		}
		if i > 0 && files[i-1].Name == f.Name {
			return nil, fmt.Errorf("encode dirtree: file %q listed twice", f.Name)
		}
	}
	for i, dd := range dirs {
		if err := ValidName(dd.Name); err != nil {
			return nil, fmt.Errorf("encode dirtree: %w", err)
		}
		if i > 0 && dirs[i-1].Name == dd.Name {
			return nil, fmt.Errorf("encode dirtree: directory %q listed twice", dd.Name)
		}
	}
	// A name may not be both a file and a directory.
	for i, j := 0, 0; i < len(files) && j < len(dirs); {
		switch {
		case files[i].Name == dirs[j].Name:
			return nil, fmt.Errorf("encode dirtree: %q is both a file and a directory", files[i].Name)
		case files[i].Name < dirs[j].Name:
			i++
		default:
			j++
		}
	}
	return appendDirTree(make([]byte, 0, dirTreeSize(files, dirs)), files, dirs), nil
}

// appendDirTree appends the (a(say)a(sayay)) serialization of sorted, checked entries.
// It writes the framing by hand instead of boxing every entry for gvariant.EncodeType:
// every directory of every build is encoded, and the boxing was most of a rebuild's
// garbage. TestDirTreeEncodingMatchesGVariant holds it to the generic encoder.
func appendDirTree(buf []byte, files []DirTreeFile, dirs []DirTreeDir) []byte {
	start := len(buf)
	ends := make([]int, 0, max(len(files), len(dirs)))
	for _, f := range files { // (say): name, NUL, checksum, the name's end
		e := len(buf)
		buf = append(append(buf, f.Name...), 0)
		nameEnd := len(buf) - e
		buf = append(buf, f.Checksum[:]...)
		buf = gvariant.AppendOffset(buf, nameEnd, gvariant.OffsetWidth(len(buf)-e, 1))
		ends = append(ends, len(buf)-start)
	}
	buf = gvariant.AppendEnds(buf, start, ends)
	filesEnd := len(buf) - start
	arr := len(buf)
	ends = ends[:0]
	for _, d := range dirs { // (sayay): name, NUL, tree, meta, tree's end, name's end
		e := len(buf)
		buf = append(append(buf, d.Name...), 0)
		nameEnd := len(buf) - e
		buf = append(buf, d.Tree[:]...)
		treeEnd := len(buf) - e
		buf = append(buf, d.Meta[:]...)
		w := gvariant.OffsetWidth(len(buf)-e, 2)
		buf = gvariant.AppendOffset(gvariant.AppendOffset(buf, treeEnd, w), nameEnd, w)
		ends = append(ends, len(buf)-arr)
	}
	buf = gvariant.AppendEnds(buf, arr, ends)
	return gvariant.AppendOffset(buf, filesEnd, gvariant.OffsetWidth(len(buf)-start, 1))
}

// dirTreeSize bounds the serialized size of a dirtree (offsets counted 4 bytes wide
// here, enough for any directory that fits in memory).
func dirTreeSize(files []DirTreeFile, dirs []DirTreeDir) int {
	n := 8
	for _, f := range files {
		n += len(f.Name) + 1 + len(f.Checksum) + 8
	}
	for _, d := range dirs {
		n += len(d.Name) + 1 + len(d.Tree) + len(d.Meta) + 12
	}
	return n
}

// Checksum returns the dirtree object's checksum.
func (d DirTree) Checksum() Checksum { return sha256.Sum256(d.Marshal()) }

func checksumFrom(b []byte) (Checksum, error) {
	var c Checksum
	if len(b) != 32 {
		return c, fmt.Errorf("checksum of %d bytes", len(b))
	}
	copy(c[:], b)
	return c, nil
}

// ValidName reports whether ostree accepts name as a directory entry.
func ValidName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("invalid file name %q", name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("file name %q contains '/' or NUL", name)
	case !utf8.ValidString(name):
		// Dirtree names are GVariant strings, which must be UTF-8.
		return fmt.Errorf("file name %q is not valid UTF-8", name)
	case len(name) > MaxNameBytes:
		// ostree would store it, but its checkout on the host fails: no Linux file
		// system holds a name over NAME_MAX.
		return fmt.Errorf("file name %.40q... is %d bytes, over the %d a Linux file system holds", name, len(name), MaxNameBytes)
	}
	return nil
}

// Limits of Linux file systems (NAME_MAX, PATH_MAX less its NUL) that a tree must
// respect to be checked out on a host.
const (
	MaxNameBytes   = 255
	MaxTargetBytes = 4095
)

// ValidSymlinkTarget checks a symlink target ostree can store and a host can create.
func ValidSymlinkTarget(target string) error {
	switch {
	case target == "":
		return errors.New("symlink with an empty target")
	case !utf8.ValidString(target):
		// ostree stores the target as a GVariant string, which must be UTF-8.
		return fmt.Errorf("symlink target %q is not valid UTF-8 (ostree cannot store it)", target)
	case strings.IndexByte(target, 0) >= 0:
		return errors.New("symlink target contains a NUL byte")
	case len(target) > MaxTargetBytes:
		return fmt.Errorf("symlink target %.40q... is %d bytes, over the %d a Linux host accepts (PATH_MAX)", target, len(target), MaxTargetBytes)
	}
	return nil
}

// ParseDirTree decodes a dirtree object and checks its entry names.
func ParseDirTree(data []byte) (DirTree, error) {
	v, err := gvariant.DecodeType(dirTreeType, data)
	if err != nil {
		return DirTree{}, fmt.Errorf("decode dirtree: %w", err)
	}
	f := v.([]any)
	var d DirTree
	for _, it := range f[0].([]any) {
		e := it.([]any)
		c, err := checksumFrom(e[1].([]byte))
		if err != nil {
			return DirTree{}, fmt.Errorf("dirtree file %q: %w", e[0], err)
		}
		if err := ValidName(e[0].(string)); err != nil {
			return DirTree{}, err
		}
		d.Files = append(d.Files, DirTreeFile{Name: e[0].(string), Checksum: c})
	}
	for _, it := range f[1].([]any) {
		e := it.([]any)
		t, err := checksumFrom(e[1].([]byte))
		if err != nil {
			return DirTree{}, fmt.Errorf("dirtree dir %q: %w", e[0], err)
		}
		m, err := checksumFrom(e[2].([]byte))
		if err != nil {
			return DirTree{}, fmt.Errorf("dirtree dir %q: %w", e[0], err)
		}
		if err := ValidName(e[0].(string)); err != nil {
			return DirTree{}, err
		}
		d.Dirs = append(d.Dirs, DirTreeDir{Name: e[0].(string), Tree: t, Meta: m})
	}
	// ostree writes both lists strictly sorted; anything else (duplicates included) is
	// corrupt or hostile.
	for i := 1; i < len(d.Files); i++ {
		if d.Files[i-1].Name >= d.Files[i].Name {
			return DirTree{}, fmt.Errorf("dirtree files not sorted or duplicated at %q", d.Files[i].Name)
		}
	}
	for i := 1; i < len(d.Dirs); i++ {
		if d.Dirs[i-1].Name >= d.Dirs[i].Name {
			return DirTree{}, fmt.Errorf("dirtree dirs not sorted or duplicated at %q", d.Dirs[i].Name)
		}
	}
	if _, err := d.Encode(); err != nil {
		return DirTree{}, err
	}
	return d, nil
}

// MetadataEntry is one key of an a{sv} metadata dictionary.
type MetadataEntry struct {
	Key   string
	Value gvariant.Variant
}

// Metadata is an a{sv} dictionary; order is kept as given because GVariant does not
// sort dictionaries and ostree hashes insertion order.
type Metadata []MetadataEntry

// Get returns the value for key.
func (m Metadata) Get(key string) (gvariant.Variant, bool) {
	for _, e := range m {
		if e.Key == key {
			return e.Value, true
		}
	}
	return gvariant.Variant{}, false
}

func (m Metadata) variant() []any {
	items := make([]any, 0, len(m))
	for _, e := range m {
		items = append(items, []any{e.Key, e.Value})
	}
	return items
}

// Marshal serializes m as a{sv} (the .commitmeta format).
func (m Metadata) Marshal() ([]byte, error) {
	return gvariant.EncodeType(metadataType, m.variant())
}

// ParseMetadata decodes an a{sv} blob.
func ParseMetadata(data []byte) (Metadata, error) {
	v, err := gvariant.DecodeType(metadataType, data)
	if err != nil {
		return nil, fmt.Errorf("decode metadata: %w", err)
	}
	return metadataFromVariant(v), nil
}

func metadataFromVariant(v any) Metadata {
	var m Metadata
	for _, it := range v.([]any) {
		e := it.([]any)
		m = append(m, MetadataEntry{Key: e[0].(string), Value: e[1].(gvariant.Variant)})
	}
	return m
}

// Commit is a commit object.
type Commit struct {
	Metadata  Metadata
	Parent    []byte // empty or 32 bytes
	Subject   string
	Body      string
	Timestamp uint64 // seconds since the epoch
	RootTree  Checksum
	RootMeta  Checksum
}

// Marshal serializes the commit.
func (c Commit) Marshal() ([]byte, error) {
	parent := c.Parent
	if parent == nil {
		parent = []byte{}
	}
	rt, rm := c.RootTree, c.RootMeta
	return gvariant.EncodeType(commitType, []any{
		c.Metadata.variant(), parent, []any{}, c.Subject, c.Body, be64(c.Timestamp), rt[:], rm[:],
	})
}

// Checksum returns the commit checksum.
func (c Commit) Checksum() (Checksum, error) {
	b, err := c.Marshal()
	if err != nil {
		return Checksum{}, err
	}
	return sha256.Sum256(b), nil
}

// ParseCommit decodes a commit object.
func ParseCommit(data []byte) (Commit, error) {
	v, err := gvariant.DecodeType(commitType, data)
	if err != nil {
		return Commit{}, fmt.Errorf("decode commit: %w", err)
	}
	f := v.([]any)
	rt, err := checksumFrom(f[6].([]byte))
	if err != nil {
		return Commit{}, fmt.Errorf("commit root tree: %w", err)
	}
	rm, err := checksumFrom(f[7].([]byte))
	if err != nil {
		return Commit{}, fmt.Errorf("commit root meta: %w", err)
	}
	parent := f[1].([]byte)
	if len(parent) != 0 && len(parent) != 32 {
		return Commit{}, fmt.Errorf("commit parent of %d bytes", len(parent))
	}
	return Commit{
		Metadata: metadataFromVariant(f[0]), Parent: parent, Subject: f[3].(string), Body: f[4].(string),
		Timestamp: be64(f[5].(uint64)), RootTree: rt, RootMeta: rm,
	}, nil
}

// ContentChecksumOfRoot is what `ostree show` prints as ContentChecksum.
func ContentChecksumOfRoot(tree, meta Checksum) Checksum {
	return sha256.Sum256(append(append([]byte{}, tree[:]...), meta[:]...))
}
