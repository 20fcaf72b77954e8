package exporter

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"sort"
	"strconv"
	"time"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
)

// Producing the layer blobs: in parallel, each reused from the store's cache or a
// checked previous build when its content is unchanged, else written and compressed.

// buildLayers writes every layer blob, in parallel, largest first.
func (e *export) buildLayers(ctx context.Context) error {
	n := len(e.layers)
	order := make([]int, n)
	var total int64
	for i := range order {
		order[i] = i
		total += e.layers[i].size
	}
	// The commit layer first: it writes every directory and dirtree object, work its
	// payload size does not show, and alone at the end it would leave cores idle.
	sort.SliceStable(order, func(a, b int) bool {
		ca, cb := e.layers[order[a]].spec.commit, e.layers[order[b]].spec.commit
		if ca || cb {
			return ca
		}
		return e.layers[order[a]].size > e.layers[order[b]].size
	})
	if e.o.Progress != nil {
		e.o.Progress.Start(n, total)
	}
	workers := e.o.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var drop *dropper
	if e.o.DropObjects {
		drop = newDropper(e.layers)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for _, i := range order {
		g.Go(func() error {
			t0 := time.Now()
			lr, err := e.buildLayer(gctx, i)
			if err == nil && e.comp.chunked() {
				lr.Annotations, err = zstdChunkedAnnotations(e.outBlobs.path(lr.Digest))
			}
			if err == nil && drop != nil {
				err = drop.layerDone(e.store, e.layers[i].spec)
			}
			if err != nil {
				return fmt.Errorf("layer %d (%s): %w", i, e.layers[i].name, err)
			}
			lr.Duration = time.Since(t0)
			e.layers[i].res = lr
			if e.o.Progress != nil {
				e.o.Progress.LayerDone(lr)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if msg := e.prev.uncompressed.summary(e.results()); msg != "" {
		e.warn("%s", msg)
	}
	return nil
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
	lr := LayerResult{Index: i, Name: e.layers[i].name, Components: e.layers[i].comps, MediaType: e.comp.mediaType,
		Objects: e.layers[i].spec.numObjects()}
	key := e.layerKey(i)
	e.layers[i].key = key
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
			e.warn("layer %d (%s): not reusing %v", i, e.layers[i].name, err)
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
	if err := writeLayer(ctx, sink, e.in.Tree, e.store, e.cd, e.layers[i].spec, e.o.FormatVersion, true); err != nil {
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
	case errors.Is(err, errUncompressedTransport):
		e.prev.uncompressed.add(lr.Index, pb.digest) // reported once, by buildLayers
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
	spec := e.layers[i].spec
	e.layerKeyHeader(h, spec)
	if e.o.Plain {
		e.plainLayerKey(h, spec)
		return hex.EncodeToString(h.Sum(nil))
	}
	// The lines are built in one buffer rather than with fmt: this runs over every path
	// of the image on each build, rebuilds included. Quoting is strconv's, as %q's.
	var line []byte
	dirs := map[string]bool{}
	for k := range spec.numObjects() {
		o := spec.object(k)
		sum := o.sum()
		line = hex.AppendEncode(append(line[:0], "object "...), sum[:])
		h.Write(append(line, '\n'))
		for _, i := range o.idx {
			p := o.refs[i].Path()
			line = strconv.AppendQuote(append(line[:0], "path "...), p)
			h.Write(append(line, '\n'))
			if e.o.FormatVersion >= 2 {
				line = e.keyDirs(h, line, dirs, path.Dir(p))
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// keyDirs writes a key line for directory d and each ancestor not in seen yet (their
// metadata checksums), marking them seen; line is the reused line buffer.
func (e *export) keyDirs(h io.Writer, line []byte, seen map[string]bool, d string) []byte {
	for ; d != "/" && !seen[d]; d = path.Dir(d) {
		seen[d] = true
		if dm := e.in.Tree.LookupDir(d); dm != nil {
			line = strconv.AppendQuote(append(line[:0], "dir "...), d)
			line = hex.AppendEncode(append(line, ' '), dm.MetaSum[:])
			h.Write(append(line, '\n'))
		}
	}
	return line
}

// layerKeyHeader writes the part of a layer key before its objects.
func (e *export) layerKeyHeader(h io.Writer, spec *layerSpec) {
	if e.o.Plain {
		fmt.Fprintf(h, "%s\nformat %s\n", layerWriterVersion, plainWriterVersion)
		return
	}
	fmt.Fprintf(h, "%s\nformat %d\n", layerWriterVersion, e.o.FormatVersion)
	if spec.commit {
		fmt.Fprintf(h, "commit %s %d\n", e.cd.sum, len(e.cd.commitMeta))
		h.Write(e.cd.commitMeta)
	}
}

// writeTar streams layer i through a sink and returns its diff_id and size.
func (e *export) writeTar(ctx context.Context, i int, c *compressor, f *os.File, verify bool) (digest.Digest, int64, error) {
	sink, err := newLayerSink(c, f, nil)
	if err != nil {
		return "", 0, err
	}
	if err := writeLayer(ctx, sink, e.in.Tree, e.store, e.cd, e.layers[i].spec, e.o.FormatVersion, verify); err != nil {
		return "", 0, err
	}
	if err := sink.close(); err != nil {
		return "", 0, err
	}
	return sink.diff.digest(), sink.diff.n, nil
}
