package delta

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	tardiff "github.com/containers/tar-diff/pkg/tar-diff"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/rechunker-dev/rechunker/internal/fsutil"
	"github.com/rechunker-dev/rechunker/internal/imageio"
)

// Options configure Create.
type Options struct {
	Image imageio.Options
	// IgnoreSourcePrefixes are source paths tar-diff must not copy from (e.g. paths
	// the applying side's root does not have); a hardlinked file stays usable by
	// another of its names.
	IgnoreSourcePrefixes []string
	// SourcePrefixes, when set, are the only source paths tar-diff may copy from, e.g.
	// ObjectsPrefix for a delta applied from an ostree repository alone.
	SourcePrefixes []string
	// Jobs is how many layers are diffed at once; 0 means 2.
	Jobs int
}

// Layer kinds in a Summary.
const (
	KindReused = "reused" // the source has the layer; nothing is shipped
	KindDelta  = "delta"  // a tar-diff against the source's files
	KindFull   = "full"   // the original blob: no delta was smaller
)

// LayerSummary says what the delta ships for one target layer.
type LayerSummary struct {
	Digest digest.Digest `json:"digest"`
	DiffID digest.Digest `json:"diff_id"`
	Kind   string        `json:"kind"`
	Size   int64         `json:"size"`  // the target's compressed blob
	Bytes  int64         `json:"bytes"` // what the delta ships for it
}

// Summary describes a written delta.
type Summary struct {
	Source      digest.Digest  `json:"source"`
	Target      digest.Digest  `json:"target"`
	Layers      []LayerSummary `json:"layers"`
	TargetBytes int64          `json:"target_bytes"` // all target layer blobs
	FetchBytes  int64          `json:"fetch_bytes"`  // target blobs the source lacks
	DeltaBytes  int64          `json:"delta_bytes"`  // the delta file
	Seconds     float64        `json:"seconds"`
}

// Create writes a delta from the image oldRef to newRef at out (a tar file). The old
// image's layer tars are unpacked next to out while it runs (their uncompressed size,
// plus two new layer tars at a time), and removed at the end; out appears only whole.
func Create(ctx context.Context, oldRef, newRef, out string, o Options) (*Summary, error) {
	start := time.Now()
	old, err := imageio.Open(ctx, oldRef, o.Image)
	if err != nil {
		return nil, fmt.Errorf("opening source image %s: %w", oldRef, err)
	}
	defer old.Close()
	tgt, err := imageio.Open(ctx, newRef, o.Image)
	if err != nil {
		return nil, fmt.Errorf("opening target image %s: %w", newRef, err)
	}
	defer tgt.Close()
	work, err := os.MkdirTemp(filepath.Dir(out), ".delta-work-")
	if err != nil {
		return nil, fmt.Errorf("creating work directory for %s: %w", out, err)
	}
	defer os.RemoveAll(work)
	c := &creator{old: old, tgt: tgt, work: work, o: o}
	sum, err := c.run(ctx)
	if err != nil {
		return nil, err
	}
	tmp, n, err := c.writeArtifact(ctx, filepath.Dir(out))
	if err != nil {
		return nil, err
	}
	if err := fsutil.Publish(tmp, out); err != nil {
		return nil, fmt.Errorf("writing %s: %w", out, err)
	}
	sum.DeltaBytes, sum.Seconds = n, time.Since(start).Seconds()
	return sum, nil
}

// creator holds one Create's images, work directory and per-layer results.
type creator struct {
	old, tgt *imageio.Source
	work     string
	o        Options
	oldTars  []string
	layers   []LayerSummary
	deltas   map[int]string // target layer index → delta file, for KindDelta
}

func (c *creator) jobs() int { return jobs(c.o.Jobs) }

// jobs is how many layers to work on at once: n, or 2 (gzip and bsdiff are CPU-bound,
// and two keep a small machine usable).
func jobs(n int) int {
	if n > 0 {
		return n
	}
	return 2
}

// run classifies every target layer and diffs those the source lacks.
func (c *creator) run(ctx context.Context) (*Summary, error) {
	have := map[digest.Digest]bool{}
	for _, l := range c.old.Layers {
		have[l.DiffID] = true
	}
	sum := &Summary{Source: c.old.Digest, Target: c.tgt.Digest}
	var changed []int
	for i, l := range c.tgt.Layers {
		ls := LayerSummary{Digest: l.Digest, DiffID: l.DiffID, Kind: KindReused, Size: l.Size}
		sum.TargetBytes += l.Size
		if !have[l.DiffID] {
			changed = append(changed, i)
			sum.FetchBytes += l.Size
		}
		c.layers = append(c.layers, ls)
	}
	c.deltas = map[int]string{}
	if len(changed) > 0 {
		if err := c.diffLayers(ctx, changed); err != nil {
			return nil, err
		}
	}
	sum.Layers = c.layers
	return sum, nil
}

// diffLayers unpacks the source's layer tars, analyses them once, and diffs each
// changed target layer against them, keeping the delta only when it is smaller.
func (c *creator) diffLayers(ctx context.Context, changed []int) error {
	if err := c.unpackOld(ctx); err != nil {
		return err
	}
	opts := c.tarDiffOptions()
	readers, closeAll, err := openAll(c.oldTars)
	if err != nil {
		return err
	}
	analysis, err := tardiff.AnalyzeSources(readers, opts)
	closeAll()
	if err != nil {
		return fmt.Errorf("analysing source image %s layers: %w", c.old.Digest, err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.jobs())
	results := make([]string, len(c.tgt.Layers))
	for _, i := range changed {
		g.Go(func() error {
			f, err := c.diffLayer(gctx, i, analysis, opts)
			results[i] = f
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for _, i := range changed {
		c.record(i, results[i])
	}
	return nil
}

func (c *creator) tarDiffOptions() *tardiff.Options {
	opts := tardiff.NewOptions()
	// Sources are the merged source image, as an unpacked root holds it.
	opts.SetApplyWhiteouts(true)
	opts.SetTmpDir(c.work)
	if len(c.o.SourcePrefixes) > 0 {
		opts.SetSourcePrefixes(c.o.SourcePrefixes)
	}
	if len(c.o.IgnoreSourcePrefixes) > 0 {
		opts.SetIgnoreSourcePrefixes(c.o.IgnoreSourcePrefixes)
	}
	return opts
}

// record fills layer i's summary from its delta file ("" when the full blob is shipped).
func (c *creator) record(i int, deltaFile string) {
	ls := &c.layers[i]
	if deltaFile == "" {
		ls.Kind, ls.Bytes = KindFull, ls.Size
		return
	}
	fi, err := os.Stat(deltaFile)
	if err != nil { // diffLayer just wrote it; should it be gone, ship the blob
		ls.Kind, ls.Bytes = KindFull, ls.Size
		return
	}
	ls.Kind, ls.Bytes = KindDelta, fi.Size()
	c.deltas[i] = deltaFile
}

// unpackOld writes each source layer's uncompressed tar to the work directory,
// checking blob and diff_id as it streams.
func (c *creator) unpackOld(ctx context.Context) error {
	c.oldTars = make([]string, len(c.old.Layers))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.jobs())
	for i := range c.old.Layers {
		c.oldTars[i] = filepath.Join(c.work, fmt.Sprintf("source-%d.tar", i))
		g.Go(func() error {
			if err := writeLayerTar(gctx, c.old, i, c.oldTars[i]); err != nil {
				return fmt.Errorf("unpacking source layer %d (%s): %w", i, c.old.Layers[i].Digest, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// writeLayerTar writes layer i of src uncompressed to path and checks its digests.
func writeLayerTar(ctx context.Context, src *imageio.Source, i int, path string) error {
	ls, err := src.OpenLayerStream(ctx, i)
	if err != nil {
		return err
	}
	defer ls.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.Copy(f, fsutil.ContextReader(ctx, ls)); err != nil {
		return err
	}
	blob, diffID, _, err := ls.Finish()
	if err != nil {
		return err
	}
	l := src.Layers[i]
	if blob != src.LayerBlobDigest(i) || diffID != l.DiffID {
		return fmt.Errorf("content is blob %s diff_id %s, the image says %s %s", blob, diffID, src.LayerBlobDigest(i), l.DiffID)
	}
	return f.Close()
}

// diffLayer makes the delta for target layer i; it returns the delta file, or "" when
// the delta is not smaller than the compressed layer.
func (c *creator) diffLayer(ctx context.Context, i int, a *tardiff.SourceAnalysis, opts *tardiff.Options) (string, error) {
	l := c.tgt.Layers[i]
	wrap := func(err error) error { return fmt.Errorf("diffing target layer %d (%s): %w", i, l.Digest, err) }
	newTar := filepath.Join(c.work, fmt.Sprintf("target-%d.tar", i))
	defer os.Remove(newTar)
	if err := writeLayerTar(ctx, c.tgt, i, newTar); err != nil {
		return "", wrap(err)
	}
	// Own readers for each call: DiffWithSources may run concurrently on one analysis.
	readers, closeAll, err := openAll(slices.Concat(c.oldTars, []string{newTar}))
	if err != nil {
		return "", wrap(err)
	}
	defer closeAll()
	out := filepath.Join(c.work, fmt.Sprintf("delta-%d.tardiff", i))
	f, err := os.Create(out)
	if err != nil {
		return "", wrap(err)
	}
	defer f.Close()
	n := len(readers) - 1
	if err := tardiff.DiffWithSources(a, readers[:n], readers[n], f, opts); err != nil {
		return "", wrap(err)
	}
	fi, err := f.Stat()
	if err != nil {
		return "", wrap(err)
	}
	if l.Size >= 0 && fi.Size() >= l.Size {
		os.Remove(out)
		return "", nil
	}
	if err := f.Close(); err != nil {
		return "", wrap(err)
	}
	return out, nil
}

// openAll opens files for reading; closeAll closes those opened.
func openAll(paths []string) ([]io.ReadSeeker, func(), error) {
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	rs := make([]io.ReadSeeker, 0, len(paths))
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		files = append(files, f)
		rs = append(rs, f)
	}
	return rs, closeAll, nil
}
