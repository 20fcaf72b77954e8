package bootc

import (
	"archive/tar"
	"errors"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/rechunker-dev/rechunker/ostree"
)

// Whiteout markers of OCI layers.
const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

// excludedTopLevel are the top-level directories whose contents bootc drops from derived
// layers.
var excludedTopLevel = map[string]bool{"run": true, "tmp": true, "proc": true, "sys": true, "dev": true}

// derivedState applies derived layers to the tree as bootc does: paths filtered and
// remapped (etc -> usr/etc, var kept or moved to the factory), whiteouts and opaque
// directories processed against lower layers, content hashed (not stored) into ostree
// checksums so that the result is a real ostree tree of metadata.
type derivedState struct {
	tree    *ostree.Tree
	o       Options
	capture *capture
	layers  int
	sum     DerivedSummary
	filter  map[string]bool
	buf     []byte
	// usrEtc is the first entry a derived layer writes under usr/etc (and usrEtcLayer
	// that layer): the etc-usretc lint refuses it, see fatal.go.
	usrEtc      string
	usrEtcLayer int
}

func newDerivedState(t *ostree.Tree, o Options, c *capture) *derivedState {
	return &derivedState{tree: t, o: o, capture: c, filter: map[string]bool{}, buf: make([]byte, 128<<10)}
}

// mapDerivedPath returns the commit path for a derived-layer tar path, or "" when bootc
// filters it (and the top-level name to report).
func (ds *derivedState) mapDerivedPath(p string) (string, string) {
	top, rest, _ := strings.Cut(p, "/")
	switch {
	case p == "":
		return "", ""
	case top == "usr":
		return "/" + p, ""
	case top == "etc":
		return "/usr/" + p, ""
	case top == "var":
		if ds.o.VarToFactory {
			return "/usr/share/factory/" + p, ""
		}
		return "/" + p, ""
	case excludedTopLevel[top]:
		if rest == "" {
			return "", ""
		}
		return "", top
	default:
		return "", top
	}
}

// apply streams one derived layer into the tree.
func (ds *derivedState) apply(i int, tr *tar.Reader, lr *LayerReport) error {
	ds.layers++
	added := map[string]bool{} // paths created or replaced by this layer
	stash := map[string]*ostree.File{}
	var whiteouts []string
	var opaques []string
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
			return problemf(CheckDerived, i, "%v", err)
		}
		if strings.HasPrefix(p, repoPrefix) {
			if hdr.Typeflag == tar.TypeReg && hdr.ModTime.Unix() > 0 {
				f, err := ds.hashFile(i, p, hdr, tr, "")
				if err != nil {
					return err
				}
				stash[p] = f
			}
			continue
		}
		if ds.usrEtc == "" && (p == "usr/etc" || strings.HasPrefix(p, "usr/etc/")) {
			ds.usrEtc, ds.usrEtcLayer = p, i
		}
		dst, filtered := ds.mapDerivedPath(p)
		if filtered != "" {
			ds.filter[filtered] = true
			continue
		}
		if dst == "" {
			continue
		}
		if parts, err := ostree.SplitPath(dst); err != nil {
			return problemf(CheckDerived, i, "%q: %v", p, err)
		} else {
			for _, c := range parts {
				if err := ostree.ValidName(c); err != nil {
					return problemf(CheckDerived, i, "%q: %v; ostree cannot store it", p, err)
				}
			}
		}
		dir, base := path.Split(dst)
		if base == opaqueMarker {
			opaques = append(opaques, path.Clean(dir))
			continue
		}
		if strings.HasPrefix(base, whiteoutPrefix) {
			whiteouts = append(whiteouts, path.Join(dir, base[len(whiteoutPrefix):]))
			continue
		}
		parent := ds.mkdirAll(path.Dir(dst))
		switch hdr.Typeflag {
		case tar.TypeDir:
			meta := ostree.DirMeta{UID: uint32(hdr.Uid), GID: uint32(hdr.Gid), Mode: uint32(hdr.Mode)&0o7777 | ostree.ModeDir, Xattrs: paxXattrs(hdr)}
			if d := parent.Dirs[base]; d != nil {
				d.Meta = meta
			} else {
				ds.count(parent, base)
				delete(parent.Files, base)
				parent.Dirs[base] = ostree.NewDir(meta)
			}
		case tar.TypeReg, tar.TypeSymlink:
			f, err := ds.hashFile(i, dst, hdr, tr, hdr.Linkname)
			if err != nil {
				return err
			}
			ds.putFile(parent, base, f)
		case tar.TypeLink:
			target, err := cleanTarPath(hdr.Linkname)
			if err != nil {
				return problemf(CheckDerived, i, "%s: %v", p, err)
			}
			f := stash[target]
			if f == nil {
				if t, _ := ds.mapDerivedPath(target); t != "" {
					f = ds.tree.LookupFile(t)
				}
			}
			if f == nil {
				return problemf(CheckDerived, i, "%s is a hardlink to %s, which is not in the tree", p, hdr.Linkname)
			}
			c := *f
			ds.putFile(parent, base, &c)
		default:
			return problemf(CheckDerived, i, "%s has tar type %q, which ostree cannot represent", p, hdr.Typeflag)
		}
		added[dst] = true
	}
	// Whiteouts hide lower layers only, never this layer's own entries.
	for _, d := range opaques {
		dir := ds.tree.LookupDir(d)
		if dir == nil {
			continue
		}
		for n := range dir.Files {
			if !added[path.Join(d, n)] {
				delete(dir.Files, n)
				ds.sum.Removed++
			}
		}
		for n := range dir.Dirs {
			if !added[path.Join(d, n)] {
				delete(dir.Dirs, n)
				ds.sum.Removed++
			}
		}
	}
	for _, w := range whiteouts {
		if added[w] {
			continue
		}
		dir := ds.tree.LookupDir(path.Dir(w))
		if dir == nil {
			continue
		}
		n := path.Base(w)
		if _, ok := dir.Files[n]; ok {
			delete(dir.Files, n)
			ds.sum.Removed++
		} else if _, ok := dir.Dirs[n]; ok {
			delete(dir.Dirs, n)
			ds.sum.Removed++
		}
	}
	return nil
}

func (ds *derivedState) count(parent *ostree.Dir, base string) {
	_, isFile := parent.Files[base]
	_, isDir := parent.Dirs[base]
	if isFile || isDir {
		ds.sum.Replaced++
	} else {
		ds.sum.Added++
	}
}

func (ds *derivedState) putFile(parent *ostree.Dir, base string, f *ostree.File) {
	ds.count(parent, base)
	delete(parent.Dirs, base)
	parent.Files[base] = f
}

// mkdirAll returns the directory at p, creating missing parents as ostree's
// --tar-autocreate-parents does (root-owned, 0755).
func (ds *derivedState) mkdirAll(p string) *ostree.Dir {
	d := ds.tree.Root
	parts, _ := ostree.SplitPath(p)
	for _, c := range parts {
		sub := d.Dirs[c]
		if sub == nil {
			ds.count(d, c)
			delete(d.Files, c)
			sub = ostree.NewDir(ostree.DirMeta{Mode: ostree.ModeDir | 0o755})
			d.Dirs[c] = sub
		}
		d = sub
	}
	return d
}

// hashFile computes the ostree checksum of a regular file or symlink entry.
func (ds *derivedState) hashFile(i int, p string, hdr *tar.Header, r io.Reader, target string) (*ostree.File, error) {
	h := ostree.FileHeader{UID: uint32(hdr.Uid), GID: uint32(hdr.Gid), Mode: uint32(hdr.Mode) & 0o7777, Xattrs: paxXattrs(hdr)}
	if hdr.Typeflag == tar.TypeSymlink {
		h.Mode |= ostree.ModeSymlink
		h.Target = target
	} else {
		h.Mode |= ostree.ModeRegular
	}
	if err := h.Validate(); err != nil {
		return nil, problemf(CheckDerived, i, "%s: %v", p, err)
	}
	hash := ostree.NewContentHash(h)
	var kept *limitedBuffer
	if ds.capture != nil && ds.capture.wantPath(p) {
		kept = &limitedBuffer{limit: captureLimit}
		r = io.TeeReader(r, kept)
	}
	n, err := io.CopyBuffer(hash, r, ds.buf)
	if err != nil {
		return nil, problemf(CheckTar, i, "read %s: %v", p, err)
	}
	f := &ostree.File{Header: &ostree.FileHeader{UID: h.UID, GID: h.GID, Mode: h.Mode, Target: h.Target}, Size: n}
	hash.Sum(f.Checksum[:0])
	if kept != nil && !kept.over {
		ds.capture.data[f.Checksum] = kept.buf.Bytes()
	}
	return f, nil
}

// paxXattrs returns the xattrs a tar entry carries in SCHILY.xattr PAX records,
// normalized the way ostree hashes them.
func paxXattrs(hdr *tar.Header) ostree.Xattrs {
	var x ostree.Xattrs
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			x = append(x, ostree.Xattr{Name: name, Value: []byte(v)})
		}
	}
	return x.Normalize()
}

// finish applies bootc's last touches to the merged tree.
func (ds *derivedState) finish() {
	if etc := ds.tree.LookupDir("/usr/etc"); etc != nil {
		for _, n := range []string{"hostname", "resolv.conf"} {
			if f := etc.Files[n]; f != nil && f.Size == 0 && !f.Header.IsSymlink() {
				delete(etc.Files, n)
			}
		}
	}
}

func (ds *derivedState) summary() *DerivedSummary {
	s := ds.sum
	s.Layers = ds.layers
	for n := range ds.filter {
		s.Filtered = append(s.Filtered, n)
	}
	sort.Strings(s.Filtered)
	return &s
}
