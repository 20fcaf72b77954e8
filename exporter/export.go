// Package exporter writes an ostree commit, chunked by a rechunk.Plan, as a
// bootc-compatible OCI image in the ostree-ext "chunked" format: layer 0 holds the commit
// and the directory structure, each further layer holds the content objects of one
// planned chunk, hardlinked to their real paths. It builds and compresses layers in
// parallel, streaming, reproducibly, reuses blobs of previous builds and of its own
// cache, and hands the result to any containers/image transport. It knows nothing of
// how the tree was imported or how the plan was made, and it never verifies its own
// output (bootc/ does, independently).
//
// The .file-xattrs-link entries are always written in the regular-file form (the
// serialized xattrs as file content), never as a hardlink to a shared .file-xattrs blob.
// Evidence: ostree-ext's importer accepts a regular file there since the commit that
// introduced the split-xattrs (bare-split-xattrs) stream format itself
// (ostreedev/ostree-rs-ext c6f33536, "tar/v1: introduce object types for split xattrs",
// released in ostree-ext v0.6.4, 2022-02-24; same code in bootc-dev/bootc
// crates/ostree-ext/src/tar/import.rs today). So every importer able to read this format
// at all accepts the plain file, while the hardlink form puts one link per content object
// on a single inode (the empty-xattrs blob) and exceeds the 65,000-link limit of ext4 and
// btrfs when a tool unpacks the layer (coreos/rpm-ostree#5479). ostree-ext's own exporter
// switched to the plain form in bootc 0e9fd6b0 (2025-09) for that reason.
package exporter

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"
	"unsafe"

	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/rechunker-dev/rechunker/internal/imageio"
	"github.com/rechunker-dev/rechunker/ostree"
	"github.com/rechunker-dev/rechunker/rechunk"
)

// Label and annotation keys (docs/ostree-ext-format.md §3.3).
const (
	LabelCommit      = "ostree.commit"
	LabelFinalDiffID = "ostree.final-diffid"
	LabelBootc       = "containers.bootc"
	LabelBootable    = "ostree.bootable"
	LabelLinux       = "ostree.linux"
	LabelVersion     = "org.opencontainers.image.version"
	LabelInputHash   = "rpmostree.inputhash"
	AnnComponents    = "ostree.components"
	// AnnLayerKey on a chunk layer is "<layer key> <tar size>": the digest of everything
	// its tar stream is made of (see layerKey) and the stream's length. A later build
	// whose layer has the same key knows the diff_id from the config without writing the
	// tar, also on a machine that never saw the previous build's content.
	AnnLayerKey = "dev.rechunker.layer-key"
)

// Input is the commit to export: its tree (finalized), commit object and source config.
type Input struct {
	Tree      *ostree.Tree
	Commit    ostree.Commit
	CommitSum ostree.Checksum
	Config    imgspecv1.Image // source image config; Config.Config is carried over
	Created   time.Time       // source created time
	// CommitMeta, when set, is the commit's detached metadata (signatures); otherwise
	// the store's .commitmeta object is used, if any.
	CommitMeta []byte
}

// Options configure an export.
type Options struct {
	// Output is the destination, TRANSPORT:REF (oci:DIR[:TAG], oci-archive:, dir:,
	// containers-storage:, docker://, docker-archive:).
	Output string
	// FormatVersion is 1 or 2 (default 2: parent directories in every chunk).
	FormatVersion int
	// Compression is gzip (default), zstd or none; Level 0 means the default (6, 3).
	Compression string
	Level       int
	// Labels are extra labels (--label), applied after the computed ones except
	// ostree.commit and ostree.final-diffid.
	Labels map[string]string
	// Bootc adds containers.bootc=1.
	Bootc bool
	// Created overrides the image timestamp (e.g. SOURCE_DATE_EPOCH); zero means Input.Created.
	Created time.Time
	// Previous builds whose blobs may be reused, once checked, when a layer's diff_id
	// matches (previous.go); the planner's type, so both read one description.
	Previous []rechunk.Previous
	// Image configures access to previous images and the output.
	Image imageio.Options
	// NoBlobCache disables the store's compressed-blob cache.
	NoBlobCache bool
	// Workers bounds parallel layer builds; 0 means GOMAXPROCS.
	Workers int
	// Progress receives progress events; nil for none.
	Progress Progress
	// Warn receives non-fatal problems, one call at a time; nil discards them.
	Warn func(string)
}

// Progress receives export progress. Calls may come from several goroutines.
type Progress interface {
	Start(layers int, bytes int64)
	Bytes(n int64)
	LayerDone(l LayerResult)
	Phase(name string)
}

// LayerResult describes one layer of the written image.
type LayerResult struct {
	Index      int           `json:"index"`
	Name       string        `json:"name"`
	Components []string      `json:"components,omitempty"`
	Digest     digest.Digest `json:"digest"`
	DiffID     digest.Digest `json:"diff_id"`
	Size       int64         `json:"size"`
	TarSize    int64         `json:"uncompressed_size"`
	MediaType  string        `json:"media_type"`
	// Reused is "previous-build" or "cache" when no compression was needed.
	Reused   string        `json:"reused,omitempty"`
	Objects  int           `json:"objects"`
	Duration time.Duration `json:"duration_ns"`
}

// Result describes the written image.
type Result struct {
	Output         string            `json:"output"`
	ManifestDigest digest.Digest     `json:"manifest_digest"`
	ConfigDigest   digest.Digest     `json:"config_digest"`
	Commit         string            `json:"commit"`
	Layers         []LayerResult     `json:"layers"`
	Labels         map[string]string `json:"labels"`
	Timings        Timings           `json:"timings"`
}

// Timings are wall-clock durations of the export phases.
type Timings struct {
	Layers time.Duration `json:"layers_ns"`
	Write  time.Duration `json:"write_ns"`
	Total  time.Duration `json:"total_ns"`
}

// Export writes in as a chunked image laid out by plan.
func Export(ctx context.Context, in *Input, store *ostree.Store, plan *rechunk.Plan, o Options) (*Result, error) {
	start := time.Now()
	e, err := newExport(in, store, plan, o)
	if err != nil {
		return nil, err
	}
	defer e.cleanup()
	out, err := parseOutput(o.Output)
	if err != nil {
		return nil, err
	}
	if err := e.prepareOutput(out); err != nil {
		return nil, err
	}
	if err := e.buildLayers(ctx); err != nil {
		return nil, err
	}
	tLayers := time.Since(start)
	e.phase("writing image")
	res, err := e.writeImage(ctx, out)
	if err != nil {
		return nil, err
	}
	res.Timings = Timings{Layers: tLayers, Write: time.Since(start) - tLayers, Total: time.Since(start)}
	return res, nil
}

// export is the state of one Export call.
type export struct {
	in      *Input
	store   *ostree.Store
	plan    *rechunk.Plan
	o       Options
	comp    compressor
	created time.Time
	cd      *commitData

	specs  []*layerSpec  // manifest order: commit layer, then chunks
	names  []string      // history created_by per layer
	comps  [][]string    // components per layer (nil for the commit layer)
	sizes  []int64       // estimated payload size per layer, for scheduling
	layers []LayerResult // filled by buildLayers
	keys   []string      // layer keys, filled by buildLayers
	prev   *previousBuilds

	warnMu   sync.Mutex
	cache    *blobCache // nil when disabled
	outBlobs blobDir    // where the image's blobs end up
	tmpDir   string     // removed at the end
}

func newExport(in *Input, store *ostree.Store, plan *rechunk.Plan, o Options) (*export, error) {
	if in == nil || in.Tree == nil || in.Tree.Root == nil {
		return nil, fmt.Errorf("export: no tree")
	}
	if plan == nil {
		return nil, fmt.Errorf("export: no plan")
	}
	switch o.FormatVersion {
	case 0:
		o.FormatVersion = 2
	case 1, 2:
	default:
		return nil, fmt.Errorf("export: format version %d: want 1 or 2", o.FormatVersion)
	}
	comp, err := newCompressor(o.Compression, o.Level)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	e := &export{in: in, store: store, plan: plan, o: o, comp: comp}
	e.created = in.Created
	if !o.Created.IsZero() {
		e.created = o.Created
	}
	e.created = e.created.UTC().Truncate(time.Second)

	if err := e.loadCommit(); err != nil {
		return nil, err
	}
	if err := e.assign(); err != nil {
		return nil, err
	}
	e.prev = newPreviousBuilds(o.Previous, o.Image)
	if !o.NoBlobCache {
		e.cache = newBlobCache(store.Path("blobs"))
	}
	return e, nil
}

func (e *export) warn(format string, args ...any) {
	if e.o.Warn != nil {
		e.warnMu.Lock()
		defer e.warnMu.Unlock()
		e.o.Warn(fmt.Sprintf(format, args...))
	}
}

func (e *export) phase(name string) {
	if e.o.Progress != nil {
		e.o.Progress.Phase(name)
	}
}

func (e *export) cleanup() {
	e.prev.close()
	if e.tmpDir != "" {
		os.RemoveAll(e.tmpDir)
	}
}

// loadCommit serializes the commit and reads its detached metadata.
func (e *export) loadCommit() error {
	b, err := e.in.Commit.Marshal()
	if err != nil {
		return fmt.Errorf("export: serialize commit: %w", err)
	}
	sum, _ := e.in.Commit.Checksum()
	if e.in.CommitSum.IsZero() {
		e.in.CommitSum = sum
	}
	if sum != e.in.CommitSum {
		return fmt.Errorf("export: commit serializes to %s, not %s", sum, e.in.CommitSum)
	}
	rt, rm := e.in.Tree.Root.TreeSum, e.in.Tree.Root.MetaSum
	if e.in.Commit.RootTree != rt || e.in.Commit.RootMeta != rm {
		return fmt.Errorf("export: commit %s root (%s, %s) does not match the tree (%s, %s); finalize the tree first",
			sum, e.in.Commit.RootTree, e.in.Commit.RootMeta, rt, rm)
	}
	e.cd = &commitData{sum: sum, commit: b}
	if e.in.CommitMeta != nil {
		e.cd.commitMeta = e.in.CommitMeta
	} else if e.store.Has(sum, ostree.ObjCommitMeta) {
		meta, err := e.store.ReadMetadata(ostree.ObjCommitMeta, sum)
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		e.cd.commitMeta = meta
	}
	return nil
}

// assign turns the plan into layer specs, checking it against the tree: every planned
// entry must be the tree's entry at the planned path and be planned once; tree paths
// the plan forgot go into the commit layer, as ostree-ext does with its remainder.
func (e *export) assign() error {
	tree := e.in.Tree
	// Memory matters here: this runs with the tree and the plan in memory and used to be
	// the peak of a build. No map keyed by path or checksum: per layer a copy of the
	// plan's refs sorted into objects (the path parts stay shared with the plan), and one
	// slice of the planned tree entries sorted by address, checked in one tree walk.
	type plannedEntry struct {
		file    *ostree.File
		layer   int32
		index   int32
		matched bool
	}
	var planned []plannedEntry
	for _, l := range e.plan.Layers {
		planned = slices.Grow(planned, len(l.Files))
	}
	commitSpec := &layerSpec{commit: true}
	e.specs = []*layerSpec{commitSpec}
	e.names = []string{"ostree export of commit " + e.cd.sum.String()}
	e.comps = [][]string{nil}
	e.sizes = []int64{0}
	for i, l := range e.plan.Layers {
		if len(l.Files) > math.MaxInt32 || len(e.plan.Layers) > math.MaxInt32 {
			return fmt.Errorf("export: plan layer %d (%s) is too large", i, l.Name)
		}
		for j, f := range l.Files {
			if f.File == nil {
				return fmt.Errorf("export: plan layer %d (%s): %s has no tree entry", i, l.Name, f.Path())
			}
			planned = append(planned, plannedEntry{file: f.File, layer: int32(i), index: int32(j)})
		}
		spec, size := specFrom(l.Files)
		comps := append([]string(nil), l.Components...)
		sort.Strings(comps)
		e.specs = append(e.specs, spec)
		e.names = append(e.names, l.Name)
		e.comps = append(e.comps, comps)
		e.sizes = append(e.sizes, size)
	}
	byAddr := func(a, b plannedEntry) int {
		return cmp.Compare(uintptr(unsafe.Pointer(a.file)), uintptr(unsafe.Pointer(b.file)))
	}
	slices.SortFunc(planned, byAddr)
	refOf := func(p plannedEntry) rechunk.FileRef { return e.plan.Layers[p.layer].Files[p.index] }
	for j := 1; j < len(planned); j++ {
		if planned[j].file == planned[j-1].file {
			a, b := planned[j-1], planned[j]
			if a.layer > b.layer {
				a, b = b, a
			}
			if a.layer == b.layer {
				return fmt.Errorf("export: plan lists %s twice in layer %d", refOf(a).Path(), a.layer)
			}
			return fmt.Errorf("export: plan puts %s in layers %d and %d", refOf(a).Path(), a.layer, b.layer)
		}
	}
	var rest []rechunk.FileRef
	var walk func(dir string, d *ostree.Dir) error
	walk = func(dir string, d *ostree.Dir) error {
		for _, n := range d.FileNames() {
			f := d.Files[n]
			i, ok := slices.BinarySearchFunc(planned, plannedEntry{file: f}, byAddr)
			if !ok {
				rest = append(rest, rechunk.FileRef{Dir: dir, Name: n, File: f})
				continue
			}
			planned[i].matched = true
			if r := refOf(planned[i]); r.Dir != dir || r.Name != n {
				return fmt.Errorf("export: plan layer %d (%s) lists %s at %s", planned[i].layer,
					e.plan.Layers[planned[i].layer].Name, dir+n, r.Path())
			}
		}
		for _, n := range d.DirNames() {
			if err := walk(dir+n+"/", d.Dirs[n]); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk("/", tree.Root); err != nil {
		return err
	}
	for _, p := range planned {
		if !p.matched {
			return fmt.Errorf("export: plan layer %d (%s): %s is not a file of the tree", p.layer,
				e.plan.Layers[p.layer].Name, refOf(p).Path())
		}
	}
	if len(rest) > 0 {
		e.warn("plan does not cover %d paths; they go into the commit layer", len(rest))
		spec, size := specFrom(rest)
		spec.commit = true
		e.specs[0] = spec
		e.sizes[0] = size
	}
	return nil
}

// specFrom groups refs into objects: ascending checksum, paths of one object in
// checkout order. refs must stay unmodified while the spec is used. The size is the
// layer's payload bytes.
func specFrom(refs []rechunk.FileRef) (*layerSpec, int64) {
	order := make([]int32, len(refs))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(x, y int32) int {
		a, b := refs[x], refs[y]
		if c := bytes.Compare(a.File.Checksum[:], b.File.Checksum[:]); c != 0 {
			return c
		}
		// Only paths of one object get here (hardlinks, duplicates): building the
		// paths costs little.
		ap, bp := a.Path(), b.Path()
		switch {
		case checkoutLess(ap, bp):
			return -1
		case checkoutLess(bp, ap):
			return 1
		}
		return 0
	})
	first := func(i int) bool { return i == 0 || refs[order[i]].File.Checksum != refs[order[i-1]].File.Checksum }
	n := 0
	for i := range order {
		if first(i) {
			n++
		}
	}
	spec := &layerSpec{refs: refs, order: order, ends: make([]int32, 0, n)}
	var size int64
	for i, x := range order {
		if !first(i) {
			continue
		}
		if i > 0 {
			spec.ends = append(spec.ends, int32(i))
		}
		size += refs[x].File.Size
	}
	if len(order) > 0 {
		spec.ends = append(spec.ends, int32(len(order)))
	}
	return spec, size
}

// buildLayers writes every layer blob, in parallel, largest first.
func (e *export) buildLayers(ctx context.Context) error {
	n := len(e.specs)
	e.layers = make([]LayerResult, n)
	e.keys = make([]string, n)
	order := make([]int, n)
	var total int64
	for i := range order {
		order[i] = i
		total += e.sizes[i]
	}
	// The commit layer first: it writes every directory and dirtree object, work its
	// payload size does not show, and alone at the end it would leave cores idle.
	sort.SliceStable(order, func(a, b int) bool {
		if order[a] == 0 || order[b] == 0 {
			return order[a] == 0
		}
		return e.sizes[order[a]] > e.sizes[order[b]]
	})
	if e.o.Progress != nil {
		e.o.Progress.Start(n, total)
	}
	workers := e.o.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for _, i := range order {
		g.Go(func() error {
			t0 := time.Now()
			lr, err := e.buildLayer(gctx, i)
			if err != nil {
				return fmt.Errorf("layer %d (%s): %w", i, e.names[i], err)
			}
			lr.Duration = time.Since(t0)
			e.layers[i] = lr
			if e.o.Progress != nil {
				e.o.Progress.LayerDone(lr)
			}
			return nil
		})
	}
	return g.Wait()
}

func (e *export) progressFn() func(int64) {
	if e.o.Progress == nil {
		return nil
	}
	return e.o.Progress.Bytes
}

// buildLayer produces layer i's blob. A layer whose key (the digest of what its tar is
// made of) the store has recorded has a known diff_id, so an existing blob is reused
// without reading the layer's content. When a previous build claims the key (or has no
// keys), the tar is hashed alone first (hashing is many times faster than compressing)
// and a previous blob with that diff_id is reused once checked (previous.go). Otherwise
// the layer is compressed right away and the result checked against previous builds.
func (e *export) buildLayer(ctx context.Context, i int) (LayerResult, error) {
	lr := LayerResult{Index: i, Name: e.names[i], Components: e.comps[i], MediaType: e.comp.mediaType,
		Objects: e.specs[i].numObjects()}
	key := e.layerKey(i)
	e.keys[i] = key
	known := false
	if e.cache != nil {
		lr.DiffID, lr.TarSize, known = e.cache.lookupKey(key)
	}
	if !known && e.prev.mayHave(key) {
		diffID, tarSize, err := e.writeTar(ctx, i, nil, nil, false)
		if err != nil {
			return lr, err
		}
		lr.DiffID, lr.TarSize, known = diffID, tarSize, true
		if err := e.prev.checkKey(key, diffID); err != nil {
			e.warn("layer %d (%s): not reusing %v", i, e.names[i], err)
		}
	}
	if known {
		if ok, err := e.reuse(ctx, &lr); err != nil || ok {
			if ok {
				e.rememberKey(key, lr)
			}
			return lr, err
		}
	}
	return lr, e.compressLayer(ctx, i, key, &lr)
}

// compressLayer writes layer i compressed. lr.DiffID, when set, is what the tar must
// hash to.
func (e *export) compressLayer(ctx context.Context, i int, key string, lr *LayerResult) error {
	dst := e.outBlobs
	if e.cache != nil {
		dst = e.cache.blobs
	}
	tmp, err := dst.tempFile()
	if err != nil {
		return err
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	sink, err := newLayerSink(&e.comp, tmp, e.progressFn())
	if err != nil {
		return err
	}
	if err := writeLayer(ctx, sink, e.in.Tree, e.store, e.cd, e.specs[i], e.o.FormatVersion, true); err != nil {
		return err
	}
	if err := sink.close(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	diffID := sink.diff.digest()
	if lr.DiffID != "" && diffID != lr.DiffID {
		return fmt.Errorf("tar stream not reproducible: %s then %s", lr.DiffID, diffID)
	}
	lr.DiffID, lr.TarSize = diffID, sink.diff.n
	if !e.prev.unkeyed {
		// The blob clients already have beats an identical one compressed differently.
		if ok, err := e.reusePrevious(ctx, lr); err != nil || ok {
			if ok {
				e.rememberKey(key, *lr)
			}
			return err
		}
	}
	lr.Digest, lr.Size = sink.compHash.digest(), sink.compHash.n
	if err := dst.commit(tmp.Name(), lr.Digest); err != nil {
		return err
	}
	if e.cache != nil {
		if err := e.cache.record(e.comp, lr.DiffID, lr.Digest, lr.Size); err != nil {
			e.warn("blob cache: %v", err)
		}
		if err := e.outBlobs.place(e.cache.blobs.path(lr.Digest), lr.Digest, lr.Size); err != nil {
			return err
		}
		e.rememberKey(key, *lr)
	}
	return nil
}

// reuse looks for an existing blob with lr.DiffID, which this build computed or its
// store recorded: first in previous builds (the bytes clients already have), then in the
// store's cache.
func (e *export) reuse(ctx context.Context, lr *LayerResult) (bool, error) {
	if ok, err := e.reusePrevious(ctx, lr); err != nil || ok {
		return ok, err
	}
	if e.cache != nil {
		if d, size, ok := e.cache.lookup(e.comp, lr.DiffID); ok {
			if err := e.outBlobs.place(e.cache.blobs.path(d), d, size); err != nil {
				return false, err
			}
			lr.Digest, lr.Size, lr.Reused = d, size, "cache"
			return true, nil
		}
	}
	return false, nil
}

// reusePrevious copies the previous blob with lr.DiffID into the output once checked.
// A blob the store's cache made for this diff_id is taken from there unchecked: the
// store hashed it when it wrote it, and it has the same digest as the previous one.
func (e *export) reusePrevious(ctx context.Context, lr *LayerResult) (bool, error) {
	if e.cache != nil {
		d, size, ok := e.cache.lookup(e.comp, lr.DiffID)
		if pb, prev := e.prev.byDiffID[lr.DiffID]; ok && prev && pb.digest == d {
			if err := e.outBlobs.place(e.cache.blobs.path(d), d, size); err != nil {
				return false, err
			}
			lr.Digest, lr.Size, lr.Reused = d, size, "previous-build"
			return true, nil
		}
	}
	pb, size, err := e.prev.copyVerified(ctx, lr.DiffID, e.comp, e.outBlobs)
	switch {
	case err == nil:
		lr.Digest, lr.Size, lr.Reused = pb.digest, size, "previous-build"
		return true, nil
	case errors.Is(err, os.ErrNotExist) && pb.digest == "", errors.Is(err, errOtherCompression), errors.Is(err, errRefused):
	case ctx.Err() != nil:
		return false, ctx.Err()
	default:
		e.warn("layer %d (%s): not reusing %s: %v; building it from the store", lr.Index, lr.Name, pb, err)
	}
	return false, nil
}

func (e *export) rememberKey(key string, lr LayerResult) {
	if e.cache == nil {
		return
	}
	if err := e.cache.recordKey(key, lr.DiffID, lr.TarSize); err != nil {
		e.warn("blob cache: %v", err)
	}
}

// layerWriterVersion changes whenever the tar writer's output for the same input would
// change, invalidating remembered layer keys.
const layerWriterVersion = "rechunker-layer-1"

// layerKey identifies the exact tar stream of layer i: the writer version, the format
// version, the objects (content checksums determine header and data) with their paths,
// the metadata of every directory format 2 emits, and for the commit layer the commit
// (which covers the whole directory structure).
func (e *export) layerKey(i int) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\nformat %d\n", layerWriterVersion, e.o.FormatVersion)
	spec := e.specs[i]
	if spec.commit {
		fmt.Fprintf(h, "commit %s %d\n", e.cd.sum, len(e.cd.commitMeta))
		h.Write(e.cd.commitMeta)
	}
	dirs := map[string]bool{}
	for k := range spec.numObjects() {
		o := spec.object(k)
		fmt.Fprintf(h, "object %s\n", o.sum())
		for _, i := range o.idx {
			p := o.refs[i].Path()
			fmt.Fprintf(h, "path %q\n", p)
			if e.o.FormatVersion < 2 {
				continue
			}
			for d := path.Dir(p); d != "/" && !dirs[d]; d = path.Dir(d) {
				dirs[d] = true
				if dm := e.in.Tree.LookupDir(d); dm != nil {
					fmt.Fprintf(h, "dir %q %s\n", d, dm.MetaSum)
				}
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// writeTar streams layer i through a sink and returns its diff_id and size.
func (e *export) writeTar(ctx context.Context, i int, c *compressor, f *os.File, verify bool) (digest.Digest, int64, error) {
	sink, err := newLayerSink(c, f, nil)
	if err != nil {
		return "", 0, err
	}
	if err := writeLayer(ctx, sink, e.in.Tree, e.store, e.cd, e.specs[i], e.o.FormatVersion, verify); err != nil {
		return "", 0, err
	}
	if err := sink.close(); err != nil {
		return "", 0, err
	}
	return sink.diff.digest(), sink.diff.n, nil
}

// tempDir makes a private temporary directory in the store.
func (e *export) tempDir() (string, error) {
	if e.tmpDir == "" {
		d, err := os.MkdirTemp(e.store.Path("tmp"), "export-*")
		if err != nil {
			return "", fmt.Errorf("export: %w", err)
		}
		e.tmpDir = d
	}
	return e.tmpDir, nil
}

func layoutBlobs(dir string) blobDir { return blobDir(filepath.Join(dir, "blobs")) }
