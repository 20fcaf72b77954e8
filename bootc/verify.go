package bootc

import (
	"archive/tar"
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"hash/maphash"
	"os"
	"path"
	"runtime"
	"slices"
	"strings"

	"github.com/rechunker-dev/rechunker/internal/imageio"
	"github.com/rechunker-dev/rechunker/ostree"
	"github.com/rechunker-dev/rechunker/ostree/sign"
)

// Options configure Verify.
type Options struct {
	// Arch is the client architecture (OCI naming, e.g. amd64); empty means the host.
	Arch string
	// TempDir holds the temporary object store for metadata objects; empty means os.TempDir().
	TempDir string
	// VarToFactory models hosts with ostree older than 2024.3, where bootc moves derived
	// layers' var/ content to usr/share/factory/var.
	VarToFactory bool
	// SignKeys, when set, require an ed25519 signature of the commit by one of them (as
	// a host verifying with `sign-verify` would).
	SignKeys []ed25519.PublicKey
}

// acceptedMediaTypes are the layer types ostree-ext's importer decompresses.
var acceptedMediaTypes = map[string]bool{
	"application/vnd.oci.image.layer.v1.tar+gzip":       true,
	"application/vnd.oci.image.layer.v1.tar+zstd":       true,
	"application/vnd.oci.image.layer.v1.tar":            true,
	"application/vnd.docker.image.rootfs.diff.tar":      true,
	"application/vnd.docker.image.rootfs.diff.tar.gzip": true,
}

// importer holds the state of one verification pass.
type importer struct {
	headers ostree.HeaderTable
	src     *imageio.Source
	o       Options
	layout  Layout
	r       *Report

	tmp         string
	meta        *metaStore
	commit      ostree.Commit
	commitSum   ostree.Checksum
	objects     map[ostree.Checksum]objInfo
	xattrBlobs  map[ostree.Checksum]ostree.Xattrs
	xattrSets   map[string]ostree.Xattrs // inline xattrs sets, by their bytes
	checkout    []checkoutEntry
	pathSeed    maphash.Seed
	tree        *ostree.Tree
	derived     *derivedState
	capture     *capture
	commitBytes []byte // the commit object, for signatures
	commitMeta  []byte // its detached metadata, if any
	buf         []byte // copy buffer shared by all objects
}

// Verify reads every layer of src once, streaming, and checks it the way bootc's
// ostree-ext importer would (section 5 of the format notes), plus the lint checks of
// `bootc container lint`: its fatal lints fail the image, the rest are warnings.
// Problems with the image are reported in the Report (first failure only; later checks
// depend on earlier ones); the error is for the run itself (cancelled, no temp space).
func Verify(ctx context.Context, src *imageio.Source, o Options) (*Report, error) {
	im, err := newImporter(src, o)
	if err != nil {
		return nil, err
	}
	defer im.close()
	if err := im.run(ctx); err != nil {
		return nil, err
	}
	return im.r, nil
}

func newImporter(src *imageio.Source, o Options) (*importer, error) {
	if o.Arch == "" {
		o.Arch = runtime.GOARCH
	}
	tmp, err := os.MkdirTemp(o.TempDir, "rechunker-verify-")
	if err != nil {
		return nil, fmt.Errorf("verify: temp dir: %w", err)
	}
	return &importer{
		src: src, o: o, tmp: tmp, meta: newMetaStore(tmp, metaBudget),
		r: &Report{
			Image: src.Ref.StringWithinTransport(), ManifestDigest: src.Digest,
			ConfigDigest: src.ConfigDigest, Architecture: src.Config.Architecture, Warnings: []Problem{},
		},
		objects:    map[ostree.Checksum]objInfo{},
		xattrBlobs: map[ostree.Checksum]ostree.Xattrs{},
		xattrSets:  map[string]ostree.Xattrs{},
		pathSeed:   maphash.MakeSeed(),
		capture:    newCapture(false), // the SELinux policy, for the label lint
		buf:        make([]byte, 128<<10),
	}, nil
}

func (im *importer) close() { os.RemoveAll(im.tmp) }

// run does the whole pass and fills im.r. It returns only operational errors.
func (im *importer) run(ctx context.Context) error {
	fail := func(err error) error {
		var p *Problem
		if errors.As(err, &p) {
			im.r.Failure = p
			return nil
		}
		return err
	}
	if err := im.checkMetadata(); err != nil {
		return fail(err)
	}
	im.lintMetadata()
	for i := range im.src.Layers {
		if err := im.layer(ctx, i); err != nil {
			return fail(err)
		}
		if i == 0 && im.layout.Ostree && im.capture != nil {
			im.capture.addWanted(im.meta, "/", im.commit.RootTree)
		}
		if im.layout.Ostree && i == im.layout.Final {
			if err := im.finishOstree(); err != nil {
				return fail(err)
			}
		}
	}
	if im.derived != nil && im.derived.layers > 0 {
		im.derived.finish()
		im.r.Derived = im.derived.summary()
	}
	st := im.tree.Stats()
	im.r.Tree = &TreeSummary{Dirs: st.Dirs, Files: st.Files, Symlinks: st.Symlinks, Bytes: st.Bytes}
	im.lintTree()
	im.lintFatal()
	im.r.OK = im.r.Failure == nil
	return nil
}

// checkMetadata applies bootc's acceptance checks on manifest and config.
func (im *importer) checkMetadata() error {
	src := im.src
	labels := src.Labels()
	if n, m := len(src.Config.RootFS.DiffIDs), len(src.Layers); n != m {
		return problemf(CheckManifest, -1, "config lists %d diff_ids for %d manifest layers", n, m)
	}
	if len(src.Layers) == 0 {
		return problemf(CheckManifest, -1, "image has no layers")
	}
	_, bootable := labels[LabelBootable]
	_, bootc := labels[LabelBootc]
	if !bootable && !bootc {
		return problemf(CheckBootable, -1, "image has neither the %s nor the %s label; bootc refuses it", LabelBootable, LabelBootc)
	}
	if a := src.Config.Architecture; a != im.o.Arch {
		return problemf(CheckArch, -1, "image architecture is %q, the client's is %q", a, im.o.Arch)
	}
	if n, m := len(src.Config.History), len(src.Layers); n < m {
		return problemf(CheckHistory, -1, "truncated history: %d history entries for %d layers (bootc needs one per layer)", n, m)
	}
	for i, l := range src.Layers {
		if !acceptedMediaTypes[l.MediaType] {
			return problemf(CheckManifest, i, "media type %q is not one bootc decompresses", l.MediaType)
		}
	}
	layout, err := ParseLayout(src)
	if err != nil {
		return problemf(CheckLayout, -1, "%v", err)
	}
	im.layout = layout
	for i, l := range src.Layers {
		comps, _ := Components(l)
		im.r.Layers = append(im.r.Layers, LayerReport{
			Index: i, Role: layout.RoleOf(i), Digest: l.Digest, DiffID: l.DiffID, Size: l.Size,
			MediaType: l.MediaType, Components: comps,
		})
	}
	return nil
}

// layer streams layer i through the checker for its role and verifies its digests.
func (im *importer) layer(ctx context.Context, i int) error {
	lr := &im.r.Layers[i]
	s, err := im.src.OpenLayerStream(ctx, i)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return problemf(CheckBlob, i, "open blob %s: %v", im.src.Layers[i].Digest, err)
	}
	defer s.Close()
	var perr error
	tr := tar.NewReader(s)
	switch lr.Role {
	case RoleCommit, RoleChunk:
		perr = im.ostreeLayer(i, tr, lr)
	default:
		if im.derived == nil {
			im.derived = newDerivedState(im.baseTree(), im.o, im.capture)
		}
		perr = im.derived.apply(i, tr, lr)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	want := im.src.LayerBlobDigest(i)
	if perr != nil {
		// A corrupted blob usually breaks decompression first; name the real cause.
		if got, err := s.BlobDigest(); err == nil && got != want {
			return problemf(CheckBlob, i, "blob digest is %s, manifest says %s (%v)", got, want, perr)
		}
		return perr
	}
	blob, diffID, n, err := s.Finish()
	if err != nil {
		return problemf(CheckBlob, i, "%v", err)
	}
	if blob != want {
		return problemf(CheckBlob, i, "blob digest is %s, manifest says %s", blob, want)
	}
	if l := im.src.Layers[i]; want == l.Digest && l.Size >= 0 && n != l.Size {
		return problemf(CheckBlob, i, "blob is %d bytes, manifest says %d", n, l.Size)
	}
	if d := im.src.Layers[i].DiffID; diffID != d {
		return problemf(CheckBlob, i, "uncompressed digest is %s, config diff_id says %s", diffID, d)
	}
	// A client pulling file by file trusts the table of contents, not the stream.
	if err := checkTOC(ctx, im.src, i); err != nil {
		return err
	}
	lr.Checked = true
	return nil
}

func (im *importer) baseTree() *ostree.Tree {
	if im.tree == nil {
		im.tree = ostree.NewTree()
	}
	return im.tree
}

// finishOstree runs after the last ostree layer: the commit must match ostree.commit
// and every object its tree references must have been delivered by some layer.
func (im *importer) finishOstree() error {
	sum := im.commitSum.String()
	im.r.Commit = sum
	if label, ok := im.src.Labels()[LabelCommit]; ok && label != sum {
		return problemf(CheckCommit, 0, "commit object is %s but the %s label says %s", sum, LabelCommit, label)
	}
	root, err := im.loadDir("/", im.commit.RootTree, im.commit.RootMeta)
	if err != nil {
		return err
	}
	im.tree = &ostree.Tree{Root: root}
	if err := im.checkSignatures(); err != nil {
		return err
	}
	return im.checkContainerView()
}

// checkSignatures counts the commit's ed25519 signatures and, with Options.SignKeys,
// requires one that verifies.
func (im *importer) checkSignatures() error {
	var sigs [][]byte
	if im.commitMeta != nil {
		var err error
		if sigs, err = sign.Ed25519Signatures(im.commitMeta); err != nil {
			return problemf(CheckCommit, 0, "detached metadata of commit %s: %v", im.commitSum, err)
		}
	}
	im.r.Signatures = len(sigs)
	if len(im.o.SignKeys) == 0 {
		return nil
	}
	for _, s := range sigs {
		for _, k := range im.o.SignKeys {
			if ed25519.Verify(k, im.commitBytes, s) {
				return nil
			}
		}
	}
	return problemf(CheckCommit, 0, "commit %s has no ed25519 signature by the given key(s) (%d signatures)", im.commitSum, len(sigs))
}

// loadDir rebuilds a directory of the commit from the metadata objects of layer 0 and
// the content objects every layer delivered.
func (im *importer) loadDir(p string, treeSum, metaSum ostree.Checksum) (*ostree.Dir, error) {
	if !im.meta.has(ostree.ObjDirMeta, metaSum) {
		return nil, problemf(CheckTree, -1, "commit tree incomplete: dirmeta %s of %s is in no layer", metaSum, p)
	}
	if !im.meta.has(ostree.ObjDirTree, treeSum) {
		return nil, problemf(CheckTree, -1, "commit tree incomplete: dirtree %s of %s is in no layer", treeSum, p)
	}
	mb, err := im.meta.get(ostree.ObjDirMeta, metaSum)
	if err != nil {
		return nil, err
	}
	meta, err := ostree.ParseDirMeta(mb)
	if err != nil {
		return nil, problemf(CheckObject, 0, "dirmeta %s: %v", metaSum, err)
	}
	tb, err := im.meta.get(ostree.ObjDirTree, treeSum)
	if err != nil {
		return nil, err
	}
	dt, err := ostree.ParseDirTree(tb)
	if err != nil {
		return nil, problemf(CheckObject, 0, "dirtree %s: %v", treeSum, err)
	}
	d := ostree.NewDir(meta)
	d.TreeSum, d.MetaSum = treeSum, metaSum
	for _, f := range dt.Files {
		info, ok := im.objects[f.Checksum]
		if !ok {
			return nil, problemf(CheckTree, -1, "commit tree incomplete: content object %s (%s) is in no layer", f.Checksum, path.Join(p, f.Name))
		}
		d.Files[f.Name] = &ostree.File{Header: im.headers.Intern(info.header()), Size: info.Size, Checksum: f.Checksum}
	}
	for _, s := range dt.Dirs {
		sub, err := im.loadDir(path.Join(p, s.Name), s.Tree, s.Meta)
		if err != nil {
			return nil, err
		}
		d.Dirs[s.Name] = sub
	}
	return d, nil
}

// recordCheckout remembers non-directory checkout paths of ostree layers: hardlinks to
// objects, and standalone entries for empty files.
func (im *importer) recordCheckout(i int, p string, hdr *tar.Header) error {
	switch hdr.Typeflag {
	case tar.TypeDir:
		return nil
	case tar.TypeLink:
		target, err := cleanTarPath(hdr.Linkname)
		if err != nil || !strings.HasPrefix(target, repoPrefix+"objects/") {
			return problemf(CheckContainer, i, "%s is a hardlink to %q, not to an ostree object", p, hdr.Linkname)
		}
		sum, suffix, err := parseObjectPath(target[len(repoPrefix+"objects/"):])
		if err != nil || suffix != string(ostree.ObjFile) {
			return problemf(CheckContainer, i, "%s is a hardlink to %q, not to a .file object", p, hdr.Linkname)
		}
		im.checkout = append(im.checkout, checkoutEntry{hash: im.checkoutHash(p), Layer: int32(i), Object: sum})
	case tar.TypeReg:
		if hdr.Size != 0 {
			return problemf(CheckContainer, i, "%s is a %d-byte regular file outside the object store", p, hdr.Size)
		}
		im.checkout = append(im.checkout, checkoutEntry{hash: im.checkoutHash(p), Layer: int32(i), UID: uint32(hdr.Uid), GID: uint32(hdr.Gid), Mode: uint32(hdr.Mode)&0o7777 | ostree.ModeRegular})
	default:
		return problemf(CheckContainer, i, "unexpected checkout entry %s (tar type %q) in an ostree layer", p, hdr.Typeflag)
	}
	return nil
}

// checkoutHash hashes the commit path of checkout path p ("/" + p, with etc under
// usr/etc) without building it.
func (im *importer) checkoutHash(p string) uint64 {
	var h maphash.Hash
	h.SetSeed(im.pathSeed)
	if p == "etc" || strings.HasPrefix(p, "etc/") {
		h.WriteString("/usr/")
	} else {
		h.WriteString("/")
	}
	h.WriteString(p)
	return h.Sum64()
}

// checkContainerView compares what `podman run` would show (the checkout paths) with
// the commit. A path showing other content than the commit is a failure; paths missing
// from the container view are a warning (bootc itself ignores checkout paths).
func (im *importer) checkContainerView() error {
	// A later entry for a path replaces an earlier one, as in a container's view.
	es := im.checkout
	slices.SortStableFunc(es, func(a, b checkoutEntry) int { return cmp.Compare(a.hash, b.hash) })
	w := 0
	for i := range es {
		if i+1 < len(es) && es[i+1].hash == es[i].hash {
			continue
		}
		es[w] = es[i]
		w++
	}
	es = es[:w]
	matched := make([]bool, len(es))
	var missing []string
	var bad error
	_ = im.tree.Walk(func(p string, d *ostree.Dir, f *ostree.File) error {
		if d != nil || strings.HasPrefix(p, "/sysroot/") {
			return nil
		}
		h := maphash.String(im.pathSeed, p)
		i, ok := slices.BinarySearchFunc(es, h, func(e checkoutEntry, h uint64) int { return cmp.Compare(e.hash, h) })
		if !ok {
			missing = append(missing, p)
			return nil
		}
		matched[i] = true
		e := es[i]
		switch {
		case !e.Object.IsZero() && e.Object != f.Checksum:
			bad = problemf(CheckContainer, int(e.Layer), "%s links to object %s but the commit has %s", p, e.Object, f.Checksum)
		case e.Object.IsZero() && (f.Size != 0 || f.Header.IsSymlink() || f.Header.UID != e.UID || f.Header.GID != e.GID || f.Header.Mode != e.Mode):
			bad = problemf(CheckContainer, int(e.Layer), "%s is an empty file (uid %d gid %d mode %#o) but the commit has object %s (uid %d gid %d mode %#o, %d bytes)",
				p, e.UID, e.GID, e.Mode, f.Checksum, f.Header.UID, f.Header.GID, f.Header.Mode, f.Size)
		}
		return bad
	})
	if bad != nil {
		return bad
	}
	if len(missing) > 0 {
		im.r.warn(CheckContainer, -1, "%d commit paths have no checkout entry in any layer (e.g. %s); containers built FROM this image will not see them", len(missing), missing[0])
	}
	extra, first := 0, -1
	for i, m := range matched {
		if !m {
			extra++
			if first < 0 || es[i].Layer < es[first].Layer {
				first = i
			}
		}
	}
	if extra > 0 {
		return problemf(CheckContainer, int(es[first].Layer), "%d checkout paths are not in the commit (the first in layer %d)", extra, es[first].Layer)
	}
	im.checkout = nil
	return nil
}

// limitedBuffer keeps up to limit bytes and notes when more were written.
type limitedBuffer struct {
	buf   bytes.Buffer
	limit int
	over  bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.buf.Len()+len(p) > b.limit {
		b.over = true
		return len(p), nil
	}
	return b.buf.Write(p)
}
