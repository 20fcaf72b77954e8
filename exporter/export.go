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
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/rechunker-dev/rechunker/internal/imageio"
	"github.com/rechunker-dev/rechunker/ostree"
	"github.com/rechunker-dev/rechunker/rechunk"
)

// Label and annotation keys (docs/ostree-ext-format.md §3.3) the writer sets. The
// components annotation and the plan label are rechunk's (ComponentsAnnotation,
// PlanLabel): the planner reads them from previous builds.
const (
	LabelCommit      = "ostree.commit"
	LabelFinalDiffID = "ostree.final-diffid"
	LabelBootc       = "containers.bootc"
	LabelBootable    = "ostree.bootable"
	LabelLinux       = "ostree.linux"
	LabelVersion     = "org.opencontainers.image.version"
	LabelInputHash   = "rpmostree.inputhash"
	// AnnLayerKey on a chunk layer is "<layer key> <tar size>": the digest of everything
	// its tar stream is made of (see layerKey) and the stream's length. A later build
	// whose layer has the same key hashes that layer's tar before compressing it, since
	// the previous blob may serve; whether it does, the blob itself decides (previous.go).
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
	// Plain writes a plain chunked image instead of the ostree-ext format (plain.go):
	// the plan's layers hold the tree's files at their paths, with no commit layer and
	// no ostree.commit or ostree.final-diffid label. FormatVersion does not apply.
	Plain bool
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
	// DropObjects drops each content object from the store (ostree.Store.Drop) once
	// every layer holding it is written: a transient build's disk then holds little
	// more than the objects not yet written plus the output.
	DropObjects bool
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
	Reused string `json:"reused,omitempty"`
	// Annotations are the zstd:chunked table-of-contents annotations, read from the blob.
	Annotations map[string]string `json:"annotations,omitempty"`
	Objects     int               `json:"objects"`
	Duration    time.Duration     `json:"duration_ns"`
}

// Result describes the written image.
type Result struct {
	Output         string            `json:"output"`
	ManifestDigest digest.Digest     `json:"manifest_digest"`
	ConfigDigest   digest.Digest     `json:"config_digest"`
	Commit         string            `json:"commit"` // empty for a plain image
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

// outLayer is one layer of the image being written.
type outLayer struct {
	spec  *layerSpec // commit layer: spec.commit; plain layer: spec.dirs may be set
	name  string     // history created_by
	comps []string   // components (nil for the commit layer)
	size  int64      // estimated payload size, for scheduling
	key   string     // layer key, set by buildLayer
	res   LayerResult
}

// results lists the written layers in manifest order.
func (e *export) results() []LayerResult {
	out := make([]LayerResult, len(e.layers))
	for i, l := range e.layers {
		out[i] = l.res
	}
	return out
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

	layers []outLayer // manifest order: the commit layer, then the chunks
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
	if o.Plain {
		o.FormatVersion = formatPlain
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
