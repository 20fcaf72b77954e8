package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/rechunker-dev/rechunker/internal/fsutil"
	"github.com/rechunker-dev/rechunker/internal/imageio"
	"github.com/rechunker-dev/rechunker/ostree"
	"github.com/rechunker-dev/rechunker/ostree/layer"
)

// layerCacheDir is the store subdirectory holding layer records.
const layerCacheDir = "layers"

// recordKey names a layer's record: its diff_id when the config gives one (verified when
// the record is written), else its blob digest. Both are validated digests, so the name
// cannot leave the cache directory.
func recordKey(src *imageio.Source, i int) (digest.Digest, error) {
	key := src.Layers[i].DiffID
	if key == "" {
		key = src.LayerBlobDigest(i)
	}
	if err := key.Validate(); err != nil {
		return "", fmt.Errorf("layer %d digest %q: %w", i, key, err)
	}
	return key, nil
}

// RecordPath is where the record of the layer with the given key is kept.
func RecordPath(store *ostree.Store, key digest.Digest) string {
	return store.Path(layerCacheDir, key.Algorithm().String()+"-"+key.Encoded())
}

// applyLayer applies layer i to t: from its record when the store has a usable one,
// otherwise from the blob, verifying blob digest and diff_id and writing a new record.
func applyLayer(ctx context.Context, src *imageio.Source, i int, t *ostree.Tree, o Options) (LayerResult, error) {
	res := LayerResult{Index: i, Digest: src.LayerBlobDigest(i), DiffID: src.Layers[i].DiffID}
	key, err := recordKey(src, i)
	if err != nil {
		return res, err
	}
	lo := layer.Options{Warn: o.Warn}
	var blob io.Reader
	if !o.CopyRootfs {
		if lo.Blob, blob, err = inPlaceBlob(ctx, src, i, o.Store); err != nil {
			return res, fmt.Errorf("import layer %d (%s): %w", i, res.Digest, err)
		}
	}
	recPath := RecordPath(o.Store, key)
	if !o.NoCache {
		st, ok, err := replay(ctx, recPath, t, o.Store, lo)
		if err != nil {
			return res, fmt.Errorf("import layer %d (%s) from its record %s: %w", i, key, recPath, err)
		}
		if ok {
			res.Cached, res.Stats = true, st
			return res, nil
		}
	}

	var rec *os.File
	if !o.NoCache {
		if rec, err = o.Store.TempFile("layer-record-*"); err != nil {
			return res, fmt.Errorf("import layer %d (%s): %w", i, key, err)
		}
		defer func() {
			if rec != nil {
				rec.Close()
				os.Remove(rec.Name())
			}
		}()
		lo.Record = rec
	}
	r, err := src.OpenLayerVerifiedFrom(ctx, i, blob)
	if err != nil {
		return res, fmt.Errorf("import layer %d: %w", i, err)
	}
	defer r.Close()
	res.Stats, err = layer.Apply(ctx, t, o.Store, r, lo)
	if err != nil {
		return res, fmt.Errorf("import layer %d (%s): %w", i, res.Digest, err)
	}
	// The tar ends before the stream does (end-of-archive blocks, padding); read the rest
	// so that the digests are checked over every byte.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return res, fmt.Errorf("import layer %d (%s): %w", i, res.Digest, err)
	}
	if rec != nil {
		if err := commitRecord(rec, recPath); err != nil {
			o.Warn(fmt.Sprintf("layer %d: cannot cache its record: %v", i, err))
		}
		rec = nil
	}
	return res, nil
}

// inPlaceBlob registers layer i's blob with the store for in-place reading when it can
// be read so: an uncompressed tar (the manifest gives its diff_id as its digest; the
// import checks both) that the transport keeps as a file on this machine. It returns
// the blob and a reader of it from its start, or 0 and nil.
func inPlaceBlob(ctx context.Context, src *imageio.Source, i int, store *ostree.Store) (ostree.BlobID, io.Reader, error) {
	d := src.LayerBlobDigest(i)
	if i >= len(src.Layers) || src.Layers[i].DiffID != d {
		return 0, nil, nil
	}
	f, err := src.LayerBlobFile(ctx, i)
	if err != nil || f == nil {
		return 0, nil, err
	}
	id, err := store.AddBlobFile(f, fmt.Sprintf("%s (layer %d)", d, i))
	if err != nil {
		return 0, nil, err
	}
	r, err := store.BlobReader(id)
	if err != nil {
		return 0, nil, err
	}
	return id, r, nil
}

// replay applies the record at path if there is a usable one. A missing or unusable
// record is not an error (ok is false and t is untouched); an error while applying a
// usable record is, because t is then partly modified.
func replay(ctx context.Context, path string, t *ostree.Tree, store *ostree.Store, lo layer.Options) (layer.Stats, bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return layer.Stats{}, false, nil
	}
	if err != nil {
		lo.Warn(fmt.Sprintf("ignoring layer record %s: %v", path, err))
		return layer.Stats{}, false, nil
	}
	defer f.Close()
	fsutil.Touch(path) // used: pruning keeps it and its objects
	st, err := layer.Replay(ctx, t, store, f, lo)
	if errors.Is(err, layer.ErrRecordUnusable) {
		lo.Warn(fmt.Sprintf("ignoring layer record %s: %v", path, err))
		return layer.Stats{}, false, nil
	}
	if err != nil {
		return st, false, err
	}
	return st, true, nil
}

// commitRecord moves a finished record into place atomically; it closes and consumes rec.
func commitRecord(rec *os.File, path string) error {
	if err := rec.Close(); err != nil {
		os.Remove(rec.Name())
		return err
	}
	return fsutil.Publish(rec.Name(), path)
}

// PruneLayerRecords removes the layer records not used since cutoff and calls keep with
// every content object a remaining record names. A damaged record names nothing: its
// objects may go, and replaying it then fails its check and imports the layer again.
func PruneLayerRecords(ctx context.Context, store *ostree.Store, cutoff time.Time, dryRun bool, keep func(ostree.Checksum)) (fsutil.PruneStats, error) {
	dir := store.Path(layerCacheDir)
	st, err := fsutil.PruneFiles(ctx, dir, cutoff, dryRun, nil)
	if err != nil {
		return st, err
	}
	err = fsutil.WalkFiles(ctx, dir, func(p string, fi fs.FileInfo) error {
		if fi.ModTime().Before(cutoff) {
			return nil // pruned (or would be, on a dry run)
		}
		f, err := os.Open(p)
		if err != nil {
			return nil
		}
		defer f.Close()
		_ = layer.RecordObjects(ctx, f, keep)
		return ctx.Err()
	})
	return st, err
}
