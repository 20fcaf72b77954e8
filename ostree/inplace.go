package ostree

import (
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// In-place content objects are read from the input's own files instead of a copy in the
// store: importing a root filesystem directory then costs no disk beyond the tree's
// metadata objects. The store remembers, for this Store value only (nothing is written
// to disk), where each such object's payload lives and the file's identity when it was
// hashed. Opening the object checks the identity first (device, inode, size, mtime and
// ctime, as ostree's devino cache keys a file) and then rehashes the payload as it is
// read, failing the read that completes it if the bytes differ: the identity check
// catches an edited file before any of it is used, with a message naming it; the hash
// catches what the identity cannot (a write that restored mtime within the same ctime
// tick, a file system with coarse timestamps), so a changed input can fail a build but
// never put a wrong object into an image. The rehash costs one SHA-256 pass over the
// payload, which this CPU's SHA extensions do at about 1.5 GB/s.

// FileIdentity is what identifies a source file's contents without reading them.
type FileIdentity struct {
	Dev, Ino     uint64
	Size         int64
	Mtime, Ctime int64 // nanoseconds
}

// IdentityOf returns the identity of a stat result.
func IdentityOf(st *unix.Stat_t) FileIdentity {
	return FileIdentity{
		Dev: uint64(st.Dev), Ino: st.Ino, Size: st.Size,
		Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano(),
	}
}

// diff names the first field in which two identities differ, or "".
func (a FileIdentity) diff(b FileIdentity) string {
	switch {
	case a.Dev != b.Dev || a.Ino != b.Ino:
		return "inode"
	case a.Size != b.Size:
		return fmt.Sprintf("size %d, was %d", b.Size, a.Size)
	case a.Mtime != b.Mtime:
		return "mtime"
	case a.Ctime != b.Ctime:
		return "ctime"
	}
	return ""
}

// inPlaceObject is a content object whose payload is the source file name in directory
// *dir, or empty (dir nil: a symlink or an empty file, which needs no file at all).
type inPlaceObject struct {
	header *FileHeader
	dir    *string // interned: a tree has a few thousand directories for 300k files
	name   string
	id     FileIdentity
}

func (o inPlaceObject) path() string { return filepath.Join(*o.dir, o.name) }

// inPlace is the store's table of in-place objects. It is kept small because it holds
// an entry per file of the input: the entries sit in one slice, the map only indexes
// them (a map of 80-byte values took 230 bytes an entry), and paths are split into an
// interned directory and the file's own name.
type inPlace struct {
	mu      sync.RWMutex
	index   map[Checksum]uint32
	objects []inPlaceObject
	dirs    map[string]*string
}

func (t *inPlace) get(c Checksum) (inPlaceObject, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	i, ok := t.index[c]
	if !ok {
		return inPlaceObject{}, false
	}
	return t.objects[i], true
}

func (t *inPlace) put(c Checksum, o inPlaceObject) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.index == nil {
		t.index = map[Checksum]uint32{}
	}
	if i, ok := t.index[c]; ok {
		t.objects[i] = o
		return
	}
	t.index[c] = uint32(len(t.objects))
	t.objects = append(t.objects, o)
}

// split returns path's directory, interned, and a copy of its last element (a
// substring would keep the whole path's bytes alive).
func (t *inPlace) split(path string) (*string, string) {
	dir, name := filepath.Split(path)
	dir = filepath.Clean(dir)
	t.mu.Lock()
	defer t.mu.Unlock()
	d, ok := t.dirs[dir]
	if !ok {
		if t.dirs == nil {
			t.dirs = map[string]*string{}
		}
		owned := strings.Clone(dir)
		d = &owned
		t.dirs[owned] = d
	}
	return d, strings.Clone(name)
}

// AddInPlace records that content object c, with header h, has the payload of the file
// at path, whose identity when it was hashed was id. The caller computed c from h and
// the file's bytes. A symlink or an empty file is recorded with path "" and needs no file.
// The object lives as long as this Store value.
func (s *Store) AddInPlace(c Checksum, h *FileHeader, path string, id FileIdentity) error {
	if err := h.Validate(); err != nil {
		return fmt.Errorf("record in-place object %s: %w", c, err)
	}
	if path == "" && !h.IsSymlink() && id.Size != 0 {
		return fmt.Errorf("record in-place object %s: %d bytes of payload but no source file", c, id.Size)
	}
	o := inPlaceObject{header: h, id: id}
	if path != "" {
		if !filepath.IsAbs(path) {
			return fmt.Errorf("record in-place object %s: %s is not an absolute path", c, path)
		}
		o.dir, o.name = s.inPlace.split(path)
	}
	s.inPlace.put(c, o)
	return nil
}

// HasStored reports whether content object c is in the store's directory (as a file or
// derived entry), which outlives this Store value, unlike an in-place object.
func (s *Store) HasStored(c Checksum) bool {
	if _, ok := s.inPlace.get(c); ok && !s.hasFile(c, ObjFile) {
		_, err := os.Lstat(s.derivedPath(c))
		return err == nil
	}
	return s.Has(c, ObjFile)
}

// openInPlace opens an in-place object, checking that its source is the file hashed.
func (s *Store) openInPlace(c Checksum, o inPlaceObject) (*ContentObject, error) {
	if o.dir == nil {
		return &ContentObject{Header: *o.header, s: s}, nil
	}
	path := o.path()
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("source file of an imported object changed or went away: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("open content %s from source file %s: %w", c, path, err)
	}
	if d := o.id.diff(IdentityOf(&st)); d != "" {
		f.Close()
		return nil, fmt.Errorf("source file %s changed after it was imported (%s); the input must not change during a build", path, d)
	}
	obj := s.wrapFile(f)
	obj.Header, obj.Size = *o.header, o.id.Size
	obj.check = &payloadCheck{hash: NewContentHash(*o.header), want: c, left: o.id.Size, path: path}
	return obj, nil
}

// payloadCheck rehashes an in-place payload while it is read.
type payloadCheck struct {
	hash hash.Hash
	want Checksum
	left int64
	path string
}

// ErrSourceChanged is wrapped by the error of a read that found an in-place object's
// source file no longer holding the bytes it was hashed from.
var ErrSourceChanged = errors.New("source file changed after it was imported")

// update feeds p to the hash; when the last payload byte has been read it compares
// the checksum. eof says the file ended after p.
func (pc *payloadCheck) update(p []byte, eof bool) error {
	if int64(len(p)) > pc.left {
		return fmt.Errorf("%w: %s is longer than when it was hashed", ErrSourceChanged, pc.path)
	}
	pc.hash.Write(p)
	pc.left -= int64(len(p))
	if pc.left > 0 {
		if eof {
			return fmt.Errorf("%w: %s is shorter than when it was hashed", ErrSourceChanged, pc.path)
		}
		return nil
	}
	if len(p) == 0 {
		return nil // checked when the last byte came
	}
	var got Checksum
	pc.hash.Sum(got[:0])
	if got != pc.want {
		return fmt.Errorf("%w: %s no longer hashes to %s", ErrSourceChanged, pc.path, pc.want)
	}
	return nil
}
