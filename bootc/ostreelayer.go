package bootc

import (
	"archive/tar"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/rechunker-dev/rechunker/ostree"
)

// repoPrefix is where ostree layers carry the object store; checkout paths are elsewhere.
const repoPrefix = "sysroot/ostree/repo/"

// objInfo is what the tree needs of a content object: its header without xattrs and its
// payload size. Keeping only this per checksum bounds memory to the object count.
type objInfo struct {
	UID, GID, Mode uint32
	Target         string
	Xattrs         ostree.Xattrs // shared between objects with the same set
	Size           int64
}

func (o objInfo) header() ostree.FileHeader {
	return ostree.FileHeader{UID: o.UID, GID: o.GID, Mode: o.Mode, Target: o.Target, Xattrs: o.Xattrs}
}

// checkoutEntry is a non-directory checkout path of an ostree layer, for the
// container-view check: a hardlink to an object, or a standalone empty file. The path
// is kept as a 64-bit hash: an image has one entry per file, and path strings would
// be most of verify's memory.
type checkoutEntry struct {
	hash     uint64
	Layer    int32
	Object   ostree.Checksum // zero for a standalone file
	UID, GID uint32
	Mode     uint32
}

// cleanTarPath turns a tar entry name into a relative slash path ("" for the root) and
// rejects names that climb out of it.
func cleanTarPath(name string) (string, error) {
	p := strings.TrimLeft(name, "/")
	for strings.HasPrefix(p, "./") {
		p = strings.TrimLeft(p[2:], "/")
	}
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return "", fmt.Errorf("path %q contains '..'", name)
		}
	}
	p = path.Clean("/" + p)[1:]
	return p, nil
}

// parseObjectPath parses "xx/62hex.suffix" (the part after objects/).
func parseObjectPath(rel string) (ostree.Checksum, string, error) {
	if len(rel) < 2+1+62+2 || rel[2] != '/' || rel[65] != '.' {
		return ostree.Checksum{}, "", fmt.Errorf("malformed object path %q", rel)
	}
	c, err := ostree.ParseChecksum(rel[:2] + rel[3:65])
	if err != nil {
		return ostree.Checksum{}, "", fmt.Errorf("object path %q: %w", rel, err)
	}
	return c, rel[66:], nil
}

// pendingXattrs is the xattrs entry read just before the .file it belongs to.
type pendingXattrs struct {
	sum    ostree.Checksum
	xattrs ostree.Xattrs
}

type objKey struct {
	sum    ostree.Checksum
	suffix string
}

// ostreeLayer checks one commit or chunk layer against ostree-ext's import rules while
// streaming it: entry order, xattrs references, recomputed checksums. Metadata objects
// go to the temporary store; content is hashed and dropped.
func (im *importer) ostreeLayer(i int, tr *tar.Reader, lr *LayerReport) error {
	role := im.layout.RoleOf(i)
	var (
		pending    *pendingXattrs
		considered int
		lastCommit bool                           // the previous considered entry was the .commit
		inLayer    = map[ostree.Checksum]uint16{} // suffixes seen per object, one bit each
	)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return problemf(CheckTar, i, "read tar: %v", err)
		}
		lr.Entries++
		p, err := cleanTarPath(hdr.Name)
		if err != nil {
			return problemf(CheckTar, i, "%v", err)
		}
		if !strings.HasPrefix(p, repoPrefix) {
			if err := im.recordCheckout(i, p, hdr); err != nil {
				return err
			}
			continue
		}
		rel := p[len(repoPrefix):]
		if hdr.Typeflag == tar.TypeDir || rel == "config" || strings.HasPrefix(rel, "refs/") {
			continue
		}
		if !strings.HasPrefix(rel, "objects/") {
			return problemf(CheckTar, i, "unexpected entry %s in the ostree repository", p)
		}
		sum, suffix, err := parseObjectPath(rel[len("objects/"):])
		if err != nil {
			return problemf(CheckTar, i, "%v", err)
		}
		considered++
		name := sum.String() + "." + suffix
		if role == RoleCommit && considered == 1 && suffix != string(ostree.ObjCommit) {
			return problemf(CheckCommit, i, "first object is %s, want the <commit>.commit object", name)
		}
		wasCommit := lastCommit
		lastCommit = false
		if pending != nil && suffix != string(ostree.ObjFile) {
			return problemf(CheckXattrs, i, "dangling xattrs reference for %s: followed by %s instead of its .file", pending.sum, name)
		}
		bit := suffixBit(suffix)
		if inLayer[sum]&bit != 0 && suffix != "file-xattrs" {
			return problemf(CheckObject, i, "duplicate object %s in the layer", name)
		}
		inLayer[sum] |= bit
		switch suffix {
		case string(ostree.ObjCommit), string(ostree.ObjCommitMeta), string(ostree.ObjDirTree), string(ostree.ObjDirMeta):
			if role != RoleCommit {
				return problemf(CheckObject, i, "metadata object %s in a chunk layer (only content objects and xattrs are allowed)", name)
			}
			if err := im.metadataObject(i, sum, ostree.ObjectType(suffix), hdr, tr, considered, wasCommit); err != nil {
				return err
			}
			lastCommit = suffix == string(ostree.ObjCommit)
		case "file-xattrs":
			if err := im.xattrsObject(i, sum, hdr, tr); err != nil {
				return err
			}
		case "file-xattrs-link", "file.xattrs":
			x, err := im.xattrsLink(i, sum, hdr, tr)
			if err != nil {
				return err
			}
			pending = &pendingXattrs{sum: sum, xattrs: x}
		case string(ostree.ObjFile):
			if pending == nil || pending.sum != sum {
				return problemf(CheckXattrs, i, "missing xattrs reference for %s in layer %d", sum, i)
			}
			if err := im.contentObject(i, sum, pending.xattrs, hdr, tr, lr); err != nil {
				return err
			}
			pending = nil
		default:
			return problemf(CheckTar, i, "unknown object type %q (%s)", suffix, p)
		}
	}
	if pending != nil {
		return problemf(CheckXattrs, i, "dangling xattrs reference for %s at the end of the layer", pending.sum)
	}
	if role == RoleCommit && im.commitSum.IsZero() {
		return problemf(CheckCommit, i, "the commit layer has no <commit>.commit object")
	}
	return nil
}

// objectSuffixes are the object file suffixes of a chunked image.
var objectSuffixes = []string{"file", "file-xattrs", "file-xattrs-link", "file.xattrs", "commit", "commitmeta", "dirtree", "dirmeta"}

// suffixBit gives each known object suffix a bit for the per-layer duplicate check
// (a map keyed by checksum and suffix string kept every entry's path reachable, and
// cost twice the memory); unknown suffixes share the last bit and fail later anyway.
func suffixBit(s string) uint16 {
	for i, c := range objectSuffixes {
		if s == c {
			return 1 << i
		}
	}
	return 1 << len(objectSuffixes)
}

func readLimited(r io.Reader, size, limit int64) ([]byte, error) {
	if size > limit {
		return nil, fmt.Errorf("%d bytes, over the %d-byte limit", size, limit)
	}
	return io.ReadAll(io.LimitReader(r, limit+1))
}

func (im *importer) metadataObject(i int, sum ostree.Checksum, t ostree.ObjectType, hdr *tar.Header, r io.Reader, considered int, afterCommit bool) error {
	name := sum.String() + "." + string(t)
	if hdr.Typeflag != tar.TypeReg {
		return problemf(CheckTar, i, "%s is not a regular file (tar type %q)", name, hdr.Typeflag)
	}
	data, err := readLimited(r, hdr.Size, ostree.MaxMetadataSize)
	if err != nil {
		return problemf(CheckObject, i, "read %s: %v", name, err)
	}
	switch t {
	case ostree.ObjCommit:
		if !im.commitSum.IsZero() {
			return problemf(CheckCommit, i, "second commit object %s (the layer already has %s)", name, im.commitSum)
		}
		if considered != 1 {
			return problemf(CheckCommit, i, "commit object %s is not the first object of the layer", name)
		}
	case ostree.ObjCommitMeta:
		if sum != im.commitSum || !afterCommit {
			return problemf(CheckCommit, i, "%s does not directly follow its commit object", name)
		}
		if _, err := ostree.ParseMetadata(data); err != nil {
			return problemf(CheckObject, i, "%s: %v", name, err)
		}
		im.commitMeta = data
		return nil // named by its commit, not by its own hash
	}
	if got := ostree.Checksum(sha256.Sum256(data)); got != sum {
		return problemf(CheckObject, i, "%s: content hashes to %s", name, got)
	}
	switch t {
	case ostree.ObjCommit:
		c, err := ostree.ParseCommit(data)
		if err != nil {
			return problemf(CheckObject, i, "%s: %v", name, err)
		}
		im.commit, im.commitSum, im.commitBytes = c, sum, data
	case ostree.ObjDirTree:
		if _, err := ostree.ParseDirTree(data); err != nil {
			return problemf(CheckObject, i, "%s: %v", name, err)
		}
	case ostree.ObjDirMeta:
		m, err := ostree.ParseDirMeta(data)
		if err != nil {
			return problemf(CheckObject, i, "%s: %v", name, err)
		}
		if m.Mode&ostree.ModeTypeMask != ostree.ModeDir {
			return problemf(CheckObject, i, "%s: mode %#o is not a directory", name, m.Mode)
		}
	}
	if err := im.meta.put(t, sum, data); err != nil {
		return fmt.Errorf("layer %d: store %s: %w", i, name, err)
	}
	return nil
}

// xattrsObject reads an old-style shared <sha256-of-blob>.file-xattrs object.
func (im *importer) xattrsObject(i int, sum ostree.Checksum, hdr *tar.Header, r io.Reader) error {
	name := sum.String() + ".file-xattrs"
	if hdr.Typeflag != tar.TypeReg {
		return problemf(CheckTar, i, "%s is not a regular file", name)
	}
	data, err := readLimited(r, hdr.Size, ostree.MaxXattrsSize)
	if err != nil {
		return problemf(CheckXattrs, i, "read %s: %v", name, err)
	}
	if got := ostree.Checksum(sha256.Sum256(data)); got != sum {
		return problemf(CheckXattrs, i, "%s: content hashes to %s", name, got)
	}
	x, err := ostree.ParseXattrs(data)
	if err != nil {
		return problemf(CheckXattrs, i, "%s: %v", name, err)
	}
	im.xattrBlobs[sum] = x
	return nil
}

// xattrsLink reads a .file-xattrs-link: a regular file holding the a(ayay) blob, or a
// hardlink to a .file-xattrs object seen earlier.
func (im *importer) xattrsLink(i int, sum ostree.Checksum, hdr *tar.Header, r io.Reader) (ostree.Xattrs, error) {
	name := sum.String() + ".file-xattrs-link"
	switch hdr.Typeflag {
	case tar.TypeReg:
		data, err := readLimited(r, hdr.Size, ostree.MaxXattrsSize)
		if err != nil {
			return nil, problemf(CheckXattrs, i, "read %s: %v", name, err)
		}
		// Every object carries its set; images have a few hundred distinct ones.
		if x, ok := im.xattrSets[string(data)]; ok {
			return x, nil
		}
		x, err := ostree.ParseXattrs(data)
		if err != nil {
			return nil, problemf(CheckXattrs, i, "%s: %v", name, err)
		}
		im.xattrSets[string(data)] = x
		return x, nil
	case tar.TypeLink:
		target, err := cleanTarPath(hdr.Linkname)
		if err != nil || !strings.HasPrefix(target, repoPrefix+"objects/") {
			return nil, problemf(CheckXattrs, i, "%s links to %q, not to an object", name, hdr.Linkname)
		}
		xs, suffix, err := parseObjectPath(target[len(repoPrefix+"objects/"):])
		if err != nil || suffix != "file-xattrs" {
			return nil, problemf(CheckXattrs, i, "%s links to %q, not to a .file-xattrs object", name, hdr.Linkname)
		}
		x, ok := im.xattrBlobs[xs]
		if !ok {
			return nil, problemf(CheckXattrs, i, "%s links to %s.file-xattrs, which no earlier entry provides", name, xs)
		}
		return x, nil
	default:
		return nil, problemf(CheckTar, i, "%s has tar type %q, want a regular file or hardlink", name, hdr.Typeflag)
	}
}

// contentObject recomputes a .file object's checksum from the tar header (uid, gid,
// mode, symlink target), the xattrs entry and the streamed payload.
func (im *importer) contentObject(i int, sum ostree.Checksum, x ostree.Xattrs, hdr *tar.Header, r io.Reader, lr *LayerReport) error {
	name := sum.String() + ".file"
	h := ostree.FileHeader{UID: uint32(hdr.Uid), GID: uint32(hdr.Gid), Mode: uint32(hdr.Mode) & 0o7777, Xattrs: x}
	switch hdr.Typeflag {
	case tar.TypeReg:
		h.Mode |= ostree.ModeRegular
	case tar.TypeSymlink:
		h.Mode |= ostree.ModeSymlink
		h.Target = hdr.Linkname
	default:
		return problemf(CheckTar, i, "%s has tar type %q, want a regular file or symlink", name, hdr.Typeflag)
	}
	if err := h.Validate(); err != nil {
		return problemf(CheckObject, i, "%s: %v", name, err)
	}
	hash := ostree.NewContentHash(h)
	var kept *limitedBuffer
	if limit := im.capture.wantLimit(sum); limit > 0 {
		kept = &limitedBuffer{limit: limit}
		r = io.TeeReader(r, kept)
	}
	n, err := io.CopyBuffer(hash, r, im.buf)
	if err != nil {
		return problemf(CheckTar, i, "read %s: %v", name, err)
	}
	var got ostree.Checksum
	hash.Sum(got[:0])
	if got != sum {
		return problemf(CheckObject, i, "%s: content checksum is %s (uid %d gid %d mode %#o, %d xattrs, %d bytes)", name, got, h.UID, h.GID, h.Mode, len(x), n)
	}
	lr.Objects++
	lr.Bytes += n
	if _, dup := im.objects[sum]; !dup {
		im.objects[sum] = objInfo{UID: h.UID, GID: h.GID, Mode: h.Mode, Target: h.Target, Xattrs: h.Xattrs, Size: n}
	}
	if kept != nil && !kept.over {
		im.capture.data[sum] = kept.buf.Bytes()
	}
	return nil
}
