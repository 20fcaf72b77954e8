package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/sys/unix"

	"github.com/rechunker-dev/rechunker/build"
	"github.com/rechunker-dev/rechunker/exporter"
	"github.com/rechunker-dev/rechunker/internal/imageio"
	"github.com/rechunker-dev/rechunker/internal/units"
	"github.com/rechunker-dev/rechunker/rechunk"
	"go.podman.io/image/v5/transports"
)

// Values of --image-format.
const (
	imageFormatOstree = "ostree"
	imageFormatPlain  = "plain"
)

// buildFlags are the flags of `build` and `compose build-chunked-oci`: rpm-ostree's
// build-chunked-oci flags plus ours.
type buildFlags struct {
	in              inputFlags
	from            string
	output          string
	bootc           bool
	formatVersion   int
	imageFormat     string
	maxLayers       int
	previous        []string
	family          []string
	labels          []string
	reference       string
	signCommit      []string
	compression     string
	level           int
	noBlobCache     bool
	transientStore  bool
	noVolatileSplit bool
	asJSON          bool
	quiet           bool
}

func (f *buildFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	f.in.register(fs)
	fs.StringVar(&f.from, "from", "", "source image (TRANSPORT:REF; a bare name means containers-storage:NAME)")
	fs.StringVar(&f.output, "output", "", "where to write the image, TRANSPORT:REF (oci:DIR[:TAG], oci-archive:, containers-storage:, docker://, dir:, docker-archive:)")
	fs.BoolVar(&f.bootc, "bootc", false, "add the label containers.bootc=1")
	fs.IntVar(&f.formatVersion, "format-version", 2, "chunk format: 1 (sparse) or 2 (parent directories in every chunk, reproducible unpacking)")
	fs.StringVar(&f.imageFormat, "image-format", imageFormatOstree, "image format: ostree (ostree-ext chunked: an ostree commit plus chunk layers) or plain (the tree's files in the chunk layers, no commit: for bootc 1.1.3 and later, either backend)")
	fs.IntVar(&f.maxLayers, "max-layers", rechunk.DefaultMaxLayers, "maximum number of chunk layers (the commit layer comes in addition)")
	fs.BoolVar(&f.noVolatileSplit, "no-volatile-split", false, "keep every package in one component (default: split off the files package rebuilds change)")
	fs.StringArrayVar(&f.previous, "previous-build", nil, "a previous build (TRANSPORT:REF) whose layout and blobs to reuse; repeatable; default: --output if it is a chunked image")
	fs.StringArrayVar(&f.family, "family", nil, "a sibling image (TRANSPORT:REF, a chunked variant built from the same packages) whose layers and blobs components new to this image follow; repeatable, in order of preference; not change history (use --previous-build for this image's own releases)")
	fs.StringArrayVarP(&f.labels, "label", "l", nil, "add a config label KEY=VALUE; repeatable")
	fs.StringVar(&f.reference, "reference", "latest", "accepted for rpm-ostree compatibility and ignored (rpm-ostree ignores it too)")
	fs.StringArrayVar(&f.signCommit, "sign-commit", nil, "sign the commit with the ed25519 secret key in PATH (ed25519=PATH, repeatable), as ostree sign does")
	fs.StringVar(&f.compression, "compression", exporter.CompressionGzip, "layer compression: gzip, zstd, zstd:chunked (per-file frames and a table of contents, for podman's partial pulls) or none")
	fs.IntVar(&f.level, "compression-level", 0, "compression level (default: gzip 6, zstd and zstd:chunked 3)")
	fs.BoolVar(&f.noBlobCache, "no-blob-cache", false, "neither use nor fill the store's compressed-blob cache")
	fs.BoolVar(&f.transientStore, "transient-store", false, "keep none of an image input's files in the store: store them compressed and delete each once its layers are written (for a store that starts empty and is thrown away, as in CI; the next build reads its input again)")
	fs.BoolVar(&f.asJSON, "json", false, "print a JSON summary on stdout")
	fs.BoolVarP(&f.quiet, "quiet", "q", false, "no progress display and no summary")
}

func usageErr(format string, args ...any) error {
	return exitError{code: 2, err: fmt.Errorf(format, args...)}
}

// validate checks the flags before any work is done.
func (f *buildFlags) validate() (map[string]string, error) {
	if f.output == "" {
		return nil, usageErr("--output is required")
	}
	if (f.from == "") == (f.in.rootfs == "") {
		return nil, usageErr("give exactly one of --from IMAGE and --rootfs DIR")
	}
	if f.formatVersion != 1 && f.formatVersion != 2 {
		return nil, usageErr("--format-version %d: only 1 and 2 exist", f.formatVersion)
	}
	switch f.imageFormat {
	case imageFormatOstree:
	case imageFormatPlain:
		if len(f.signCommit) > 0 {
			return nil, usageErr("--sign-commit: a plain image (--image-format plain) carries no commit to sign")
		}
	default:
		return nil, usageErr("--image-format %q: want ostree or plain", f.imageFormat)
	}
	if f.maxLayers < 1 {
		return nil, usageErr("--max-layers %d: must be at least 1", f.maxLayers)
	}
	for _, s := range f.signCommit {
		typ, path, ok := strings.Cut(s, "=")
		switch {
		case !ok || path == "":
			return nil, usageErr("--sign-commit %q: want KEYTYPE=PATH", s)
		case typ == "spki":
			return nil, usageErr("--sign-commit %q: spki keys are not supported; use ed25519", s)
		case typ != "ed25519":
			return nil, usageErr("--sign-commit %q: unknown key type %q (ed25519)", s, typ)
		}
	}
	switch f.compression {
	case exporter.CompressionGzip, exporter.CompressionZstd, exporter.CompressionZstdChunked, exporter.CompressionNone:
	default:
		return nil, usageErr("--compression %q: want gzip, zstd, zstd:chunked or none", f.compression)
	}
	labels := map[string]string{}
	for _, l := range f.labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return nil, usageErr("--label %q: want KEY=VALUE", l)
		}
		labels[k] = v
	}
	return labels, nil
}

// fromRef accepts rpm-ostree's --from NAME (an image in containers-storage) as well as
// any TRANSPORT:REF.
func fromRef(s string) string {
	if s == "" {
		return ""
	}
	if _, err := imageio.ParseReference(s); err == nil {
		return s
	}
	// A reference that names its transport stays as it is, so that a parse error names
	// what the user wrote instead of a doubled prefix.
	if name, _, ok := strings.Cut(s, ":"); ok && transports.Get(name) != nil {
		return s
	}
	return "containers-storage:" + s
}

func newBuildCmd() *cobra.Command {
	f := &buildFlags{}
	cmd := &cobra.Command{
		Use:   "build (--from IMAGE | --rootfs DIR) --output IMAGE [flags]",
		Short: "Rewrite an image as a chunked, bootc-compatible ostree image",
		Long: `Build loads the source (an image or a root filesystem directory) into the store as an
ostree commit, plans its files into at most --max-layers chunk layers (keeping the layout
of --previous-build, or of --output when that already is a chunked image), and writes the
ostree-ext chunked image (format version 1 or 2) to --output. Layers are built and
compressed in parallel; a layer whose content did not change reuses the previous build's
blob (same digest) or the store's blob cache. It accepts the flags of
'rpm-ostree compose build-chunked-oci'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runBuild(cmd, f) },
	}
	f.register(cmd)
	return cmd
}

// seSummary reports the SELinux labelling of the input.
type seSummary struct {
	Policy    string `json:"policy"`
	Labeled   int    `json:"labeled"`
	Rewritten int    `json:"rewritten_objects"`
	Reused    int    `json:"reused_objects"`
}

// buildSummary is the --json output.
type buildSummary struct {
	*build.Result
	SELinux *seSummary     `json:"selinux,omitempty"`
	Phases  map[string]int `json:"phase_ms"`
}

// options turns the flags into the pipeline's options.
func (f *buildFlags) options(labels map[string]string) (build.Options, error) {
	imgOpts, err := f.in.imageOptions()
	if err != nil {
		return build.Options{}, err
	}
	store, err := f.in.openStore()
	if err != nil {
		return build.Options{}, err
	}
	o := build.Options{
		From: fromRef(f.from), Rootfs: f.in.rootfs, Output: f.output, Previous: f.previous, Family: f.family,
		Store: store, Image: imgOpts, Bootc: f.bootc, FormatVersion: f.formatVersion, Plain: f.imageFormat == imageFormatPlain,
		MaxLayers: f.maxLayers, NoVolatileSplit: f.noVolatileSplit, Labels: labels,
		Compression: f.compression, Level: f.level, NoBlobCache: f.noBlobCache, TransientStore: f.transientStore,
		NoLayerCache: f.in.noCache, NoSELinux: f.in.noSELinux, Quiet: f.quiet,
		Warn: func(m string) { fmt.Fprintln(os.Stderr, "rechunker: warning:", m) },
		// rpm-ostree's own lines, unprefixed: scripts grep them.
		Notice: func(m string) { fmt.Fprintln(os.Stderr, m) },
	}
	for _, s := range f.signCommit {
		_, path, _ := strings.Cut(s, "=")
		o.SignKeys = append(o.SignKeys, path)
	}
	return o, nil
}

func runBuild(cmd *cobra.Command, f *buildFlags) error {
	labels, err := f.validate()
	if err != nil {
		return err
	}
	o, err := f.options(labels)
	if err != nil {
		return err
	}
	var prog *progressDisplay
	var plog *progressLog
	switch {
	case f.quiet:
	case isTerminal(os.Stderr):
		prog = newProgressDisplay(os.Stderr)
		o.Progress = prog
	default: // a CI log: a line now and then instead of a live display
		plog = newProgressLog(os.Stderr, logInterval)
		o.Progress = plog
	}
	res, err := build.Run(cmd.Context(), o)
	if prog != nil {
		prog.finish(err == nil)
	}
	if plog != nil {
		plog.finish()
	}
	if err != nil {
		return err
	}
	sum := buildSummary{Result: res, Phases: map[string]int{
		"load": int(res.Phases.Load.Milliseconds()), "plan": int(res.Phases.Plan.Milliseconds()),
		"layers": int(res.Phases.Layers.Milliseconds()), "write": int(res.Phases.Write.Milliseconds()),
		"total": int(res.Phases.Total.Milliseconds()),
	}}
	if s := res.SELinux; s != nil {
		sum.SELinux = &seSummary{Policy: s.Policy, Labeled: s.Labeled, Rewritten: s.Rewritten, Reused: s.Reused}
	}
	switch {
	case f.asJSON:
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(sum)
	case !f.quiet:
		printBuild(cmd.OutOrStdout(), sum)
	}
	return nil
}

func printBuild(w io.Writer, sum buildSummary) {
	res, ph := sum.Result, sum.Result.Phases
	fmt.Fprintf(w, "Wrote %s\n  manifest %s, commit %s\n  %d layers (%d reused), %s compressed, %s uncompressed, in %s (load %s, plan %s, layers %s, write %s)\n",
		res.Output, res.ManifestDigest, res.Commit, len(res.Layers), res.Reused, units.Bytes(res.Bytes), units.Bytes(res.TarBytes),
		ph.Total.Round(time.Millisecond), ph.Load.Round(time.Millisecond), ph.Plan.Round(time.Millisecond),
		ph.Layers.Round(time.Millisecond), ph.Write.Round(time.Millisecond))
	if s := sum.SELinux; s != nil {
		fmt.Fprintf(w, "  SELinux labels from policy %q: %d entries labelled, %d objects rewritten (%d from the store's index)\n",
			s.Policy, s.Labeled, s.Rewritten+s.Reused, s.Reused)
	}
	if res.BaseMarks > 0 {
		fmt.Fprintf(w, "  %d directory marks (user.component, user.update-interval) restored from the base image's commit\n", res.BaseMarks)
	}
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// progressDisplay draws layers done/total, bytes compressed and throughput with mpb.
type progressDisplay struct {
	p     *mpb.Progress
	bar   *mpb.Bar
	bytes atomic.Int64
	start time.Time
	phase atomic.Value
}

func newProgressDisplay(w io.Writer) *progressDisplay {
	return &progressDisplay{p: mpb.New(mpb.WithOutput(w), mpb.WithWidth(40)), start: time.Now()}
}

func (d *progressDisplay) Start(layers int, _ int64) {
	d.phase.Store("layers")
	d.bar = d.p.AddBar(int64(layers),
		mpb.PrependDecorators(
			decor.Any(func(decor.Statistics) string { return d.phase.Load().(string) }, decor.WCSyncSpaceR),
			decor.CountersNoUnit("%d/%d", decor.WCSyncSpace),
		),
		mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
			n := d.bytes.Load()
			secs := time.Since(d.start).Seconds()
			if secs <= 0 {
				secs = 1
			}
			return fmt.Sprintf("%s  %s/s", units.Bytes(n), units.Bytes(int64(float64(n)/secs)))
		})),
	)
}

func (d *progressDisplay) Bytes(n int64) { d.bytes.Add(n) }

func (d *progressDisplay) LayerDone(exporter.LayerResult) {
	if d.bar != nil {
		d.bar.Increment()
	}
}

func (d *progressDisplay) Phase(name string) { d.phase.Store(name) }

func (d *progressDisplay) finish(ok bool) {
	if d.bar != nil && !ok {
		d.bar.Abort(false)
	}
	d.p.Wait()
}
