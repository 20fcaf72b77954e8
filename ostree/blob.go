package ostree

import (
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// An uncompressed layer blob on local disk (an `oci:` layout's blobs/sha256/…) already
// holds every file's payload as one contiguous run of bytes. Importing such a layer in
// place records, for each regular file, the blob and the offset of its payload (File.Loc)
// instead of writing a content object: the store then costs no disk and no inode per
// file, and the export reads the payload from the blob. What keeps that correct:
//   - the store keeps the blob file open (AddBlobFile) and reads it through that
//     descriptor only, so a file renamed over the path later is never read;
//   - every open checks the blob's identity (device, inode, size, mtime) against what it
//     was when added, so an edited blob fails with a message naming it;
//   - the payload is rehashed as it is read (payloadCheck, as for a root filesystem read
//     in place), so bytes that differ from what was hashed fail the read that completes
//     them and never reach an image.
//
// The location lives in the tree's File rather than in a table of the store: a desktop
// image has 300k files, and a table keyed by checksum cost 50-90 bytes an entry where
// the File grows by 8.

// Loc is a payload location: 0 for the store, else an in-place blob (1-based, top 16
// bits) and the payload's offset in it (low 48 bits).
type Loc uint64

const (
	locOffsetBits = 48
	maxLocOffset  = 1<<locOffsetBits - 1
)

// InPlace reports whether the payload is read from an input blob.
func (l Loc) InPlace() bool { return l != 0 }

func (l Loc) blob() BlobID { return BlobID(l >> locOffsetBits) }

// Offset is an in-place payload's offset in its blob.
func (l Loc) Offset() int64 { return int64(l & maxLocOffset) }

// BlobID names a blob registered with Store.AddBlob; 0 is none.
type BlobID uint16

// blobSource is a registered blob, open for the Store value's lifetime.
type blobSource struct {
	name string
	f    *os.File
	id   FileIdentity
}

// blobTable is the store's list of registered blobs; BlobID i is list[i-1].
type blobTable struct {
	mu      sync.RWMutex
	list    []*blobSource
	byInode map[[2]uint64]BlobID
}

// AddBlobFile registers the open blob file f, named name in messages, for in-place
// reading and returns its ID; the store owns f from then on (it stays open as long as
// the Store value). Adding a file already registered closes f and returns the first
// ID, if the file is unchanged since.
func (s *Store) AddBlobFile(f *os.File, name string) (BlobID, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return 0, fmt.Errorf("read blob %s in place: %w", name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return 0, fmt.Errorf("read blob %s in place: not a regular file", name)
	}
	b := &blobSource{name: name, f: f, id: IdentityOf(&st)}
	t := &s.blobs
	t.mu.Lock()
	defer t.mu.Unlock()
	key := [2]uint64{b.id.Dev, b.id.Ino}
	if id, ok := t.byInode[key]; ok {
		f.Close()
		if err := t.list[id-1].check(); err != nil {
			return 0, err
		}
		return id, nil
	}
	if len(t.list) == 1<<16-1 {
		f.Close()
		return 0, fmt.Errorf("read blob %s in place: more than %d blobs", name, 1<<16-1)
	}
	t.list = append(t.list, b)
	if t.byInode == nil {
		t.byInode = map[[2]uint64]BlobID{}
	}
	id := BlobID(len(t.list))
	t.byInode[key] = id
	return id, nil
}

func (t *blobTable) get(id BlobID) (*blobSource, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if id == 0 || int(id) > len(t.list) {
		return nil, fmt.Errorf("no in-place blob %d", id)
	}
	return t.list[id-1], nil
}

// check fails if the blob's file changed since it was registered. The ctime is left
// out: it also moves when the file is unlinked (an oci-archive's blobs are unpacked
// into a directory that is removed while the store still reads them), and the payload
// rehash is what guards the bytes.
func (b *blobSource) check() error {
	var st unix.Stat_t
	if err := unix.Fstat(int(b.f.Fd()), &st); err != nil {
		return fmt.Errorf("check input blob %s: %w", b.name, err)
	}
	now := IdentityOf(&st)
	now.Ctime = b.id.Ctime
	if d := b.id.diff(now); d != "" {
		return fmt.Errorf("input blob %s changed after it was imported (%s); the input must not change during a build", b.name, d)
	}
	return nil
}

// BlobReader returns the whole registered blob, for the import's one pass over it.
func (s *Store) BlobReader(id BlobID) (*io.SectionReader, error) {
	b, err := s.blobs.get(id)
	if err != nil {
		return nil, err
	}
	return io.NewSectionReader(b.f, 0, b.id.Size), nil
}

// BlobLoc returns the location of a payload of size bytes at offset off of blob id,
// checking that it lies within the blob.
func (s *Store) BlobLoc(id BlobID, off, size int64) (Loc, error) {
	b, err := s.blobs.get(id)
	if err != nil {
		return 0, err
	}
	if off < 0 || size < 0 || off > maxLocOffset || off > b.id.Size-size {
		return 0, fmt.Errorf("payload of %d bytes at offset %d is outside blob %s (%d bytes)", size, off, b.name, b.id.Size)
	}
	return Loc(uint64(id)<<locOffsetBits | uint64(off)), nil
}

// OpenFileContent opens the content object of a tree's file: from the input blob its
// payload lies in when it was imported in place (the payload is rehashed as it is read),
// otherwise from the store like OpenContent.
func (s *Store) OpenFileContent(f *File) (*ContentObject, error) {
	if !f.Loc.InPlace() {
		return s.OpenContent(f.Checksum)
	}
	b, err := s.blobs.get(f.Loc.blob())
	if err != nil {
		return nil, fmt.Errorf("open content %s: %w", f.Checksum, err)
	}
	off := f.Loc.Offset()
	if f.Size < 0 || off > b.id.Size-f.Size {
		return nil, fmt.Errorf("open content %s: %d bytes at offset %d are outside blob %s", f.Checksum, f.Size, off, b.name)
	}
	if err := b.check(); err != nil {
		return nil, err
	}
	obj := s.wrapReader(io.NewSectionReader(b.f, off, f.Size))
	obj.Header, obj.Size = *f.Header, f.Size
	obj.check = &payloadCheck{
		hash: NewContentHash(*f.Header), want: f.Checksum, left: f.Size,
		path: fmt.Sprintf("%s (%d bytes at offset %d)", b.name, f.Size, off),
	}
	return obj, nil
}
