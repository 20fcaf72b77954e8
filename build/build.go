// Package build is rechunker's pipeline as a library. Run loads an image or a root
// filesystem into the object store as an ostree commit, checks it the way bootc will,
// signs the commit, plans its files into layers against previous builds, and exports a
// chunked ostree-ext image; a failed export leaves no half-written oci: output behind.
// cmd/rechunker is flags around Run and rendering of its Result.
package build

import (
	"context"
	"errors"
	"time"

	"github.com/rechunker-dev/rechunker/bootc"
	"github.com/rechunker-dev/rechunker/exporter"
	"github.com/rechunker-dev/rechunker/internal/imageio"
	"github.com/rechunker-dev/rechunker/internal/source"
	"github.com/rechunker-dev/rechunker/ostree"
	"github.com/rechunker-dev/rechunker/rechunk"
)

// Options describe one build.
type Options struct {
	// From is the source image (TRANSPORT:REF); Rootfs a directory instead. Exactly one.
	From, Rootfs string
	// Output is where the image goes (TRANSPORT:REF).
	Output string
	// Previous are previous builds (TRANSPORT:REF) whose layout and blobs to reuse.
	// Empty means Output, when it already is a chunked image (as rpm-ostree does).
	Previous []string
	// Family are sibling images (TRANSPORT:REF): variants of this image whose layers
	// a component new to this image follows, and whose blobs are reused (rechunk.Options.Family).
	Family []string
	Store  *ostree.Store
	Image  imageio.Options

	// Bootc labels the image containers.bootc=1 and warns about what bootc refuses.
	Bootc         bool
	FormatVersion int // 1 or 2 (default)
	// Plain writes a plain chunked image (the tree's files in the planned layers, no
	// ostree commit) instead of the ostree-ext format; see exporter.Options.Plain.
	Plain           bool
	MaxLayers       int // chunk layers; 0 means rechunk.DefaultMaxLayers
	NoVolatileSplit bool
	Labels          map[string]string
	// SignKeys are paths of ed25519 secret keys that sign the commit.
	SignKeys     []string
	Compression  string // gzip (default), zstd or none
	Level        int
	NoBlobCache  bool // neither use nor fill the store's compressed-blob cache
	NoLayerCache bool // neither use nor write the store's layer records
	NoSELinux    bool
	// CopyRootfs copies a Rootfs directory's files into the store instead of reading
	// them in place (source.Options.CopyRootfs); the output is the same.
	CopyRootfs bool
	// TransientStore keeps none of the input's content in the store after the build:
	// objects are stored compressed and each is deleted once the layers holding it are
	// written (ostree.Store.TrackWrites, exporter.Options.DropObjects). For an image
	// input on a machine whose store starts empty and is thrown away (CI), this bounds
	// the disk to about the compressed objects plus the output; the next build with the
	// same store reads its input again. No layer records are written.
	TransientStore bool

	Progress exporter.Progress // nil for none
	// Warn receives non-fatal problems; nil discards them.
	Warn func(string)
	// Notice receives what is no problem but worth a line, in rpm-ostree's words where
	// rpm-ostree prints the same thing, since scripts grep them: NoticeBaseline. Nil
	// sends them to Warn.
	Notice func(string)
	// Quiet leaves out warnings that only explain a first build's normal state, and the
	// notices.
	Quiet bool
}

// NoticeBaseline is what rpm-ostree compose build-chunked-oci prints, word for word,
// when --output already holds a chunked image that it will use as the previous build;
// Run says the same to Notice.
const NoticeBaseline = "Found existing chunked image at target, will use as baseline"

// Result describes a finished build.
type Result struct {
	*exporter.Result
	Source       string                `json:"source"`
	FromPrevious string                `json:"from_previous,omitempty"`
	SELinux      *source.SELinuxResult `json:"-"`
	BaseMarks    int                   `json:"base_marks,omitempty"`
	Reused       int                   `json:"reused_layers"`
	Bytes        int64                 `json:"compressed_bytes"`
	TarBytes     int64                 `json:"uncompressed_bytes"`
	Phases       Phases                `json:"-"`
}

// Phases are the wall-clock durations of the pipeline's steps.
type Phases struct {
	Load, Plan, Layers, Write, Total time.Duration
}

// Run builds one image: the pipeline in order.
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	start := time.Now()
	prev, err := Discover(ctx, o.Previous, o.Output, o.Image, o.warn, o.Quiet)
	if err != nil {
		return nil, err
	}
	if len(o.Previous) == 0 && len(prev) > 0 {
		o.notice(NoticeBaseline) // Discover probed the output and found a chunked image
	}
	family, err := LoadChunked(ctx, o.Family, o.Image, "family image", o.warn)
	if err != nil {
		return nil, err
	}
	if o.TransientStore {
		o.Store.SetCompressContent(true)
		o.Store.TrackWrites()
		defer func() {
			if err := o.Store.DropWritten(); err != nil {
				o.warn("transient store: " + err.Error())
			}
		}()
	}
	in, err := source.Load(ctx, o.From, o.Rootfs, source.Options{
		Store: o.Store, Image: o.Image, Warn: o.warn, NoCache: o.NoLayerCache || o.TransientStore, NoSELinux: o.NoSELinux,
		CopyRootfs: o.CopyRootfs,
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := in.Close(); err != nil {
			o.warn(err.Error())
		}
	}()
	if o.Rootfs != "" {
		SetPlatform(&in.Config, o.Image.Platform())
	}
	if err := CheckPlatforms(ConfigPlatform(in.Config), append(append([]Previous(nil), prev...), family...)); err != nil {
		return nil, err
	}
	if o.Bootc {
		// What `rechunker verify` and bootc will refuse; the tree is left as it is.
		for _, p := range bootc.RootLints(in.Tree) {
			o.warn(p.Error())
		}
	}
	commitMeta, err := SignCommit(o.Store, in.CommitSum, o.SignKeys)
	if err != nil {
		return nil, err
	}
	tLoad := time.Since(start)
	plan, err := rechunk.NewPlan(ctx, in.Tree, o.Store, rechunk.Options{
		MaxLayers: o.MaxLayers, Previous: Planned(prev), Family: Planned(family), Warn: o.warn,
		NoVolatileSplit: o.NoVolatileSplit,
	})
	if err != nil {
		return nil, err
	}
	tPlan := time.Since(start) - tLoad
	// Blobs are reused from family images as from previous builds: checked, then copied.
	res, err := o.export(ctx, in, commitMeta, plan, Planned(append(prev, family...)))
	if err != nil {
		return nil, err
	}
	return summarize(in, plan, res, Phases{Load: tLoad, Plan: tPlan, Layers: res.Timings.Layers,
		Write: res.Timings.Write, Total: time.Since(start)}), nil
}

// export writes the image; a failed export removes what it wrote into a new oci: layout.
func (o Options) export(ctx context.Context, in *source.Input, commitMeta []byte, plan *rechunk.Plan, prev []rechunk.Previous) (*exporter.Result, error) {
	guard := guardOutput(o.Output)
	ein := &exporter.Input{Tree: in.Tree, Commit: in.Commit, CommitSum: in.CommitSum, Config: in.Config,
		Created: in.Created, CommitMeta: commitMeta}
	res, err := exporter.Export(ctx, ein, o.Store, plan, exporter.Options{
		Output: o.Output, FormatVersion: o.FormatVersion, Plain: o.Plain, Compression: o.Compression, Level: o.Level,
		Labels: o.Labels, Bootc: o.Bootc, Previous: prev, Image: o.Image,
		NoBlobCache: o.NoBlobCache, Warn: o.Warn, Progress: o.Progress, DropObjects: o.TransientStore,
	})
	if err != nil {
		guard.discard()
		return nil, err
	}
	return res, nil
}

func summarize(in *source.Input, plan *rechunk.Plan, res *exporter.Result, ph Phases) *Result {
	r := &Result{Result: res, Source: in.Ref, FromPrevious: plan.FromPrevious, SELinux: in.SELinux,
		BaseMarks: in.BaseMarks, Phases: ph}
	for _, l := range res.Layers {
		r.Bytes += l.Size
		r.TarBytes += l.TarSize
		if l.Reused != "" {
			r.Reused++
		}
	}
	return r
}

// check refuses options no build can succeed with, before any work is done.
func (o *Options) check() error {
	switch {
	case o.Output == "":
		return errors.New("build: no output")
	case (o.From == "") == (o.Rootfs == ""):
		return errors.New("build: give exactly one of an image and a root filesystem directory")
	case o.Store == nil:
		return errors.New("build: no store")
	case o.Plain && len(o.SignKeys) > 0:
		return errors.New("build: a plain image carries no commit to sign")
	}
	if o.MaxLayers == 0 {
		o.MaxLayers = rechunk.DefaultMaxLayers
	}
	return nil
}

func (o Options) warn(m string) {
	if o.Warn != nil {
		o.Warn(m)
	}
}

func (o Options) notice(m string) {
	switch {
	case o.Quiet:
	case o.Notice != nil:
		o.Notice(m)
	default:
		o.warn(m)
	}
}
