package exporter

import (
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/rechunker-dev/rechunker/ostree"
	"github.com/rechunker-dev/rechunker/rechunk"
)

// The plain format: an image whose layers hold the tree's files at their paths, as a
// container build would have written them, and no ostree commit. bootc has not needed
// /ostree content since 1.1.3; without ostree.final-diffid its ostree backend imports
// every layer as file-system content, and its composefs backend reads nothing else.
// The plan, the history label, layer keys and blob reuse are the same as for the
// ostree-ext format; only the tar streams and the labels differ.
//
// A layer lists its files in the plan's order (sorted by path), each preceded by the
// directories on its way that the layer has not written yet, with the tree's metadata
// (as format 2 does). A regular file whose object the layer already wrote under /usr,
// /etc or /var becomes a hard link to that path (same checksum: same content, owner,
// mode and xattrs); everything else is written in full: bootc drops other top-level
// directories from such layers, and a link into one would break (linkTarget).
// Directories with no file below them go into one layer (plainDirsLayer). /usr/etc is
// written as /etc. xattrs travel as PAX SCHILY.xattr records, except security.selinux,
// which the host labels itself (bootc relabels from the image's policy). Modification
// times are 0, as in ostree.

// formatPlain is the layer format of plain images, beside ostree-ext's versions 1 and 2.
const formatPlain = -1

// plainWriterVersion goes into plain layer keys; it changes whenever the plain
// writer's output for the same input would change (2: no links into directories bootc
// drops), so that no store serves a blob the writer would no longer write.
const plainWriterVersion = "plain-2"

// plainLayer writes a whole plain layer.
func (lw *layerWriter) plainLayer(spec *layerSpec) error {
	first := map[ostree.Checksum]string{}
	for _, ref := range spec.refs {
		if err := lw.ctx.Err(); err != nil {
			return err
		}
		if err := lw.plainEntry(ref, first); err != nil {
			return fmt.Errorf("path %s: %w", ref.Path(), err)
		}
	}
	for _, d := range spec.dirs {
		if err := lw.dirOnce(tarPathV1(d)); err != nil {
			return err
		}
	}
	return lw.tw.finish()
}

// plainEntry writes one file or symlink at its path. first maps the objects this layer
// wrote as regular files to their tar paths.
func (lw *layerWriter) plainEntry(ref rechunk.FileRef, first map[ostree.Checksum]string) error {
	tp := tarPathV1(ref.Path())
	if tp == "" {
		return fmt.Errorf("file at the root path")
	}
	if err := lw.parentsOf(tp); err != nil {
		return err
	}
	f := ref.File
	fh := f.Header
	h := newGNUHeader()
	h.setUID(fh.UID)
	h.setGID(fh.GID)
	h.setMode(fh.Mode &^ ostree.ModeTypeMask)
	if target, ok := first[f.Checksum]; ok {
		h.setType(typeLink)
		h.setSize(0)
		return lw.tw.appendLink(&h, tp, target)
	}
	if err := lw.tw.appendPAX(xattrRecords(fh.Xattrs)); err != nil {
		return err
	}
	if fh.IsSymlink() {
		h.setType(typeSymlink)
		h.setSize(0)
		return lw.symlinkObject(&h, tp, fh.Target)
	}
	obj, err := lw.store.OpenFileContent(f)
	if err != nil {
		return err
	}
	defer obj.Close()
	if obj.Size != f.Size {
		return fmt.Errorf("store object %s has %d bytes, the tree says %d", f.Checksum, obj.Size, f.Size)
	}
	if err := lw.regularObject(&h, tp, f.Checksum, obj); err != nil {
		return err
	}
	if obj.Size > 0 && linkTarget(tp) {
		first[f.Checksum] = tp
	}
	return nil
}

// linkTarget says whether later paths of an object may be hard links to tar path tp:
// only when bootc's ostree backend keeps tp. It drops other top-level directories (and
// what is below /run, /tmp and the like) from file-system layers, and a link to a
// dropped path would break the layer there.
func linkTarget(tp string) bool {
	top, _, _ := strings.Cut(tp, "/")
	return top == "usr" || top == "etc" || top == "var"
}

// plainDir writes a directory entry with its xattrs.
func (lw *layerWriter) plainDir(tp string, m ostree.DirMeta) error {
	if err := lw.tw.appendPAX(xattrRecords(m.Xattrs)); err != nil {
		return err
	}
	return lw.dir(tp, m)
}

// xattrRecords are the PAX records of xattrs, security.selinux left out.
func xattrRecords(xs ostree.Xattrs) []paxRecord {
	var pax []paxRecord
	for _, x := range xs {
		if x.Name == selinuxKey {
			continue
		}
		pax = append(pax, paxRecord{"SCHILY.xattr." + x.Name, string(x.Value)})
	}
	return pax
}

// emptyDirs lists the directories of the tree with no file or symlink anywhere below
// them, parents before children: no layer writes them as a parent, so the layer
// plainDirsLayer picks does.
func emptyDirs(t *ostree.Tree) []string {
	var out []string
	var walk func(p string, d *ostree.Dir) bool
	walk = func(p string, d *ostree.Dir) bool {
		mark := len(out)
		has := len(d.Files) > 0
		for _, n := range d.DirNames() {
			if walk(path.Join(p, n), d.Dirs[n]) {
				has = true
			}
		}
		if !has && p != "/" {
			out = slices.Insert(out, mark, p) // before the empty directories below it
		}
		return has
	}
	walk("/", t.Root)
	return out
}

// plainDirsLayer picks the layer that carries the empty directories: the one most
// likely to change anyway (the last of equals), so that a new empty directory costs
// no extra layer.
func plainDirsLayer(layers []rechunk.Layer) int {
	best := -1
	for i, l := range layers {
		if best < 0 || l.ChangeProbability >= layers[best].ChangeProbability {
			best = i
		}
	}
	return best
}

// plainLayerKey is layerKey for the plain format: every path with its object and the
// metadata of every directory the layer writes.
func (e *export) plainLayerKey(h io.Writer, spec *layerSpec) {
	var line []byte
	dirs := map[string]bool{}
	for _, ref := range spec.refs {
		p := ref.Path()
		line = e.keyDirs(h, line, dirs, path.Dir(p))
		line = strconv.AppendQuote(append(line[:0], "path "...), p)
		line = hex.AppendEncode(append(line, ' '), ref.File.Checksum[:])
		h.Write(append(line, '\n'))
	}
	for _, d := range spec.dirs {
		line = e.keyDirs(h, line, dirs, d)
	}
}
