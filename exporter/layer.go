package exporter

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/rechunker-dev/rechunker/ostree"
	"github.com/rechunker-dev/rechunker/rechunk"
)

// Paths and constants of the ostree-ext tar stream (docs/ostree-ext-format.md §2).
const (
	repoDir    = "sysroot/ostree/repo"
	repoConfig = "[core]\nrepo_version=1\nmode=bare-split-xattrs\n"
	selinuxKey = "security.selinux"
)

// repoSubdirs are written after the 256 object shards, in this order.
var repoSubdirs = []string{"extensions", "refs", "refs/heads", "refs/mirrors", "refs/remotes", "state", "tmp", "tmp/cache"}

func objectTarPath(c ostree.Checksum, t ostree.ObjectType) string {
	return repoDir + "/" + ostree.ObjectPath(c, t)
}

func xattrsLinkTarPath(c ostree.Checksum) string {
	h := c.String()
	return repoDir + "/objects/" + h[:2] + "/" + h[2:] + ".file-xattrs-link"
}

// object is one content object of a layer and the commit paths that use it.
type object struct {
	refs []rechunk.FileRef
	idx  []int32 // its paths: indices into refs, in checkout order; at least one
}

func (o object) sum() ostree.Checksum { return o.refs[o.idx[0]].File.Checksum }

// layerSpec is what one layer's tar stream contains. It indexes the plan's entries
// instead of copying them: 8 bytes per path instead of 64.
type layerSpec struct {
	commit bool              // the commit layer (layer 0)
	dirs   []string          // plain format: directories with no file below, commit paths
	refs   []rechunk.FileRef // the layer's entries as planned; not modified
	order  []int32           // indices into refs: ascending checksum, then checkout order
	ends   []int32           // object k is order[ends[k-1]:ends[k]]
}

func (s *layerSpec) numObjects() int { return len(s.ends) }

func (s *layerSpec) object(k int) object {
	lo := int32(0)
	if k > 0 {
		lo = s.ends[k-1]
	}
	return object{refs: s.refs, idx: s.order[lo:s.ends[k]]}
}

// commitData is everything the commit layer writes besides the tree.
type commitData struct {
	sum        ostree.Checksum
	commit     []byte
	commitMeta []byte // nil when there is no detached metadata
}

// layerWriter writes one layer, mirroring ostree-ext's OstreeTarWriter state.
type layerWriter struct {
	ctx     context.Context
	tw      *tarWriter
	tree    *ostree.Tree
	store   *ostree.Store
	version int
	plain   bool // plain format (plain.go): files at their paths, no repository
	verify  bool // recompute content checksums while streaming

	wroteDirTree map[ostree.Checksum]bool
	wroteDirMeta map[ostree.Checksum]bool
	wroteVarTmp  bool
	parents      map[string]bool
}

// writeLayer writes the uncompressed tar stream of a layer to w: in the ostree-ext
// format of the given version, or the plain format when version is formatPlain.
func writeLayer(ctx context.Context, w io.Writer, tree *ostree.Tree, store *ostree.Store, cd *commitData,
	spec *layerSpec, version int, verify bool) error {
	lw := &layerWriter{
		ctx: ctx, tw: newTarWriter(w), tree: tree, store: store, version: version, verify: verify,
		plain:        version == formatPlain,
		wroteDirTree: map[ostree.Checksum]bool{}, wroteDirMeta: map[ostree.Checksum]bool{},
		parents: map[string]bool{},
	}
	if lw.plain {
		return lw.plainLayer(spec)
	}
	if spec.commit {
		if err := lw.commitLayer(cd); err != nil {
			return err
		}
	} else if err := lw.repoStructure(); err != nil {
		return err
	}
	for k := range spec.numObjects() {
		o := spec.object(k)
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := lw.content(o); err != nil {
			return fmt.Errorf("object %s: %w", o.sum(), err)
		}
	}
	return lw.tw.finish()
}

func (lw *layerWriter) defaultDir(p string) error {
	h := newGNUHeader()
	h.setType(typeDir)
	h.setUID(0)
	h.setGID(0)
	h.setMode(0o755)
	h.setSize(0)
	return lw.tw.appendData(&h, p, nil, 0)
}

func (lw *layerWriter) defaultData(p string, data []byte) error {
	h := newGNUHeader()
	h.setType(typeReg)
	h.setUID(0)
	h.setGID(0)
	h.setMode(0o644)
	h.setSize(int64(len(data)))
	return lw.tw.appendData(&h, p, bytes.NewReader(data), int64(len(data)))
}

// repoStructure writes the sysroot/ostree/repo skeleton that starts every layer.
func (lw *layerWriter) repoStructure() error {
	for _, d := range []string{"sysroot", "sysroot/ostree", repoDir, repoDir + "/objects"} {
		if err := lw.defaultDir(d); err != nil {
			return err
		}
	}
	for i := 0; i < 256; i++ {
		if err := lw.defaultDir(fmt.Sprintf("%s/objects/%02x", repoDir, i)); err != nil {
			return err
		}
	}
	for _, d := range repoSubdirs {
		if err := lw.defaultDir(repoDir + "/" + d); err != nil {
			return err
		}
	}
	return lw.defaultData(repoDir+"/config", []byte(repoConfig))
}

func (lw *layerWriter) dir(p string, m ostree.DirMeta) error {
	h := newGNUHeader()
	h.setType(typeDir)
	h.setSize(0)
	h.setUID(m.UID)
	h.setGID(m.GID)
	h.setMode(m.Mode &^ ostree.ModeTypeMask)
	return lw.tw.appendData(&h, p, nil, 0)
}

func (lw *layerWriter) dirTreeObject(d *ostree.Dir) error {
	if lw.wroteDirTree[d.TreeSum] {
		return nil
	}
	lw.wroteDirTree[d.TreeSum] = true
	data, err := d.DirTree().Encode()
	if err != nil {
		return err
	}
	if ostree.Checksum(sha256.Sum256(data)) != d.TreeSum {
		return fmt.Errorf("dirtree %s: tree changed after Finalize", d.TreeSum)
	}
	return lw.defaultData(objectTarPath(d.TreeSum, ostree.ObjDirTree), data)
}

func (lw *layerWriter) dirMetaObject(d *ostree.Dir) error {
	if lw.wroteDirMeta[d.MetaSum] {
		return nil
	}
	lw.wroteDirMeta[d.MetaSum] = true
	data := d.Meta.Marshal()
	if ostree.Checksum(sha256.Sum256(data)) != d.MetaSum {
		return fmt.Errorf("dirmeta %s: tree changed after Finalize", d.MetaSum)
	}
	return lw.defaultData(objectTarPath(d.MetaSum, ostree.ObjDirMeta), data)
}

// commitLayer writes layer 0 up to (not including) the remainder content
// (ostree-ext write_commit with structure_only).
func (lw *layerWriter) commitLayer(cd *commitData) error {
	root := lw.tree.Root
	if err := lw.dir("./", root.Meta); err != nil {
		return err
	}
	if err := lw.repoStructure(); err != nil {
		return err
	}
	if err := lw.defaultData(objectTarPath(cd.sum, ostree.ObjCommit), cd.commit); err != nil {
		return err
	}
	if cd.commitMeta != nil {
		// Must directly follow the commit: the importer reads them as a pair.
		if err := lw.defaultData(objectTarPath(cd.sum, ostree.ObjCommitMeta), cd.commitMeta); err != nil {
			return err
		}
	}
	if err := lw.dirMetaObject(root); err != nil {
		return err
	}
	var sysroot *ostree.Dir
	if err := lw.walkDirs("./", root, true, &sysroot); err != nil {
		return err
	}
	// ostree-ext writes /sysroot's dirmeta but neither its entry nor its dirtree,
	// relying on an identical empty dirtree appearing elsewhere. We emit whatever the
	// walk did not, after it, so the commit is complete in every case and the stream is
	// unchanged whenever ostree-ext's would have been complete.
	if sysroot != nil {
		if err := lw.objectsOnly(sysroot); err != nil {
			return err
		}
	}
	if !lw.wroteVarTmp {
		h := newGNUHeader()
		h.setType(typeDir)
		h.setSize(0)
		h.setUID(0)
		h.setGID(0)
		h.setMode(0o1777)
		if err := lw.tw.appendData(&h, "var/tmp", nil, 0); err != nil {
			return err
		}
	}
	return nil
}

// walkDirs is ostree-ext append_dirtree in structure-only mode: the dirtree object,
// then for each subdirectory its dirmeta object, its directory entry and its subtree.
func (lw *layerWriter) walkDirs(tarPath string, d *ostree.Dir, isRoot bool, sysroot **ostree.Dir) error {
	if err := lw.ctx.Err(); err != nil {
		return err
	}
	if err := lw.dirTreeObject(d); err != nil {
		return err
	}
	if strings.TrimPrefix(tarPath, "./") == "var/tmp" {
		lw.wroteVarTmp = true
	}
	for _, name := range d.DirNames() {
		sub := d.Dirs[name]
		if err := lw.dirMetaObject(sub); err != nil {
			return err
		}
		if isRoot && name == "sysroot" {
			*sysroot = sub
			continue
		}
		subPath := mapPathV0(joinTar(tarPath, name))
		if err := lw.dir(subPath, sub.Meta); err != nil {
			return err
		}
		if err := lw.walkDirs(subPath, sub, false, sysroot); err != nil {
			return err
		}
	}
	return nil
}

// objectsOnly writes the dirtree and dirmeta objects of a subtree without entries.
func (lw *layerWriter) objectsOnly(d *ostree.Dir) error {
	if err := lw.dirTreeObject(d); err != nil {
		return err
	}
	for _, name := range d.DirNames() {
		sub := d.Dirs[name]
		if err := lw.dirMetaObject(sub); err != nil {
			return err
		}
		if err := lw.objectsOnly(sub); err != nil {
			return err
		}
	}
	return nil
}

// joinTar joins like camino's Utf8Path::join: no doubled slash after "./".
func joinTar(dir, name string) string {
	if strings.HasSuffix(dir, "/") {
		return dir + name
	}
	return dir + "/" + name
}

// mapPathV0 renames ./usr/etc to ./etc for the "./"-prefixed commit-layer paths.
func mapPathV0(p string) string {
	const from = "./usr/etc"
	if p == from {
		return "./etc"
	}
	if strings.HasPrefix(p, from+"/") {
		return "./etc" + p[len(from):]
	}
	return p
}

// tarPathV1 turns an absolute commit path into a chunk tar path: no leading "/" and
// usr/etc shown as etc.
func tarPathV1(p string) string {
	p = strings.TrimPrefix(p, "/")
	if p == "usr/etc" || strings.HasPrefix(p, "usr/etc/") {
		return p[len("usr/"):]
	}
	return p
}

// unmapPath turns a tar path back into a commit path (etc -> usr/etc).
func unmapPath(p string) string {
	if p == "etc" || strings.HasPrefix(p, "etc/") {
		return "usr/" + p
	}
	return p
}

// content writes one object with its xattrs entry and PAX header, then one entry per
// path (ostree-ext append_content + append_content_hardlink).
func (lw *layerWriter) content(o object) error {
	obj, err := lw.store.OpenFileContent(o.refs[o.idx[0]].File)
	if err != nil {
		return err
	}
	defer obj.Close()
	fh := obj.Header
	// The xattrs entry is always the regular-file form; see xattrsLinkForm in doc.go.
	if err := lw.defaultData(xattrsLinkTarPath(o.sum()), fh.Xattrs.Marshal()); err != nil {
		return err
	}
	var pax []paxRecord
	for _, x := range fh.Xattrs {
		if x.Name == selinuxKey {
			continue // container runtimes would not honour it
		}
		pax = append(pax, paxRecord{"SCHILY.xattr." + x.Name, string(x.Value)})
	}
	if err := lw.tw.appendPAX(pax); err != nil {
		return err
	}
	h := newGNUHeader()
	h.setUID(fh.UID)
	h.setGID(fh.GID)
	h.setMode(fh.Mode &^ ostree.ModeTypeMask)
	objPath := objectTarPath(o.sum(), ostree.ObjFile)
	if fh.IsSymlink() {
		h.setType(typeSymlink)
		h.setSize(0)
		err = lw.symlinkObject(&h, objPath, fh.Target)
	} else {
		err = lw.regularObject(&h, objPath, o.sum(), obj)
	}
	if err != nil {
		return err
	}
	return lw.links(o, h, objPath, !fh.IsSymlink() && obj.Size == 0)
}

// regularObject writes a regular file object's payload, checking it against its
// checksum when the writer verifies.
func (lw *layerWriter) regularObject(h *header, objPath string, sum ostree.Checksum, obj *ostree.ContentObject) error {
	h.setType(typeReg)
	h.setSize(obj.Size)
	var r io.Reader = obj
	var hash interface {
		io.Writer
		Sum([]byte) []byte
	}
	if lw.verify {
		hash = ostree.NewContentHash(obj.Header)
		r = io.TeeReader(obj, hash)
	}
	if err := lw.tw.appendData(h, objPath, r, obj.Size); err != nil {
		return err
	}
	if hash != nil {
		var got ostree.Checksum
		hash.Sum(got[:0])
		if got != sum {
			return fmt.Errorf("store object hashes to %s (store corrupted)", got)
		}
	}
	return nil
}

// links writes one entry per path of object o, a hardlink to objPath with the object's
// header h.
func (lw *layerWriter) links(o object, h header, objPath string, isEmptyFile bool) error {
	for _, i := range o.idx {
		p := o.refs[i].Path()
		tp := tarPathV1(p)
		if tp == "" {
			return fmt.Errorf("file at the root path")
		}
		if lw.version >= 2 {
			if err := lw.parentsOf(tp); err != nil {
				return err
			}
		}
		hl := h // ostree-ext reuses the object's header, leftovers included
		hl.setSize(0)
		if !isEmptyFile {
			// Empty regular files stay real files so that a later container build cannot
			// modify the shared object in /sysroot through the link.
			hl.setType(typeLink)
			if err := hl.setLinkName(objPath); err != nil {
				return err
			}
		}
		if err := lw.tw.appendData(&hl, tp, nil, 0); err != nil {
			return fmt.Errorf("path %s: %w", p, err)
		}
	}
	return nil
}

// symlinkObject writes a symlink object. tar-rs normalizes link targets (drops "."
// components and doubled slashes) which would change the ostree checksum; ostree-ext
// works around it for "//" only. We write the target literally whenever normalizing
// would change it, and exactly like tar-rs otherwise.
func (lw *layerWriter) symlinkObject(h *header, objPath, target string) error {
	if normalizedLink(target) == target {
		return lw.tw.appendLink(h, objPath, target)
	}
	if len(target) > lenLinkname {
		if err := lw.tw.longEntry(typeLongLnk, target); err != nil {
			return err
		}
		copy(h[offLinkname:offLinkname+lenLinkname], target)
	} else if err := h.setLinkNameLiteral(target); err != nil {
		return err
	}
	return lw.tw.appendData(h, objPath, nil, 0)
}

// normalizedLink is the link name tar-rs would store for target.
func normalizedLink(target string) string {
	buf := make([]byte, len(target)+2)
	if err := copyPathInto(buf, target, true, false); err != nil {
		return ""
	}
	if i := bytes.IndexByte(buf, 0); i >= 0 {
		buf = buf[:i]
	}
	return string(buf)
}

// parentsOf writes the not-yet-written ancestors of a tar path, root first, with
// metadata from the tree (format version 2, ostree-ext write_parents_of).
func (lw *layerWriter) parentsOf(tp string) error { return lw.dirOnce(path.Dir(tp)) }

// dirOnce writes directory tp and the ancestors this layer has not written yet, root
// first, with metadata from the tree (and xattrs in the plain format).
func (lw *layerWriter) dirOnce(tp string) error {
	if tp == "." || tp == "/" || lw.parents[tp] {
		return nil
	}
	if err := lw.dirOnce(path.Dir(tp)); err != nil {
		return err
	}
	lw.parents[tp] = true
	d := lw.tree.LookupDir("/" + unmapPath(tp))
	if d == nil {
		return fmt.Errorf("directory /%s is not in the tree", unmapPath(tp))
	}
	if lw.plain {
		return lw.plainDir(tp, d.Meta)
	}
	return lw.dir(tp, d.Meta)
}

// checkoutLess orders absolute paths as a dirtree walk does: within a directory,
// files before subdirectories, names in byte order.
func checkoutLess(a, b string) bool {
	ac := strings.Split(strings.TrimPrefix(a, "/"), "/")
	bc := strings.Split(strings.TrimPrefix(b, "/"), "/")
	for i := 0; i < len(ac) && i < len(bc); i++ {
		if ac[i] == bc[i] {
			continue
		}
		aFile, bFile := i == len(ac)-1, i == len(bc)-1
		if aFile != bFile {
			return aFile
		}
		return ac[i] < bc[i]
	}
	return len(ac) < len(bc)
}
