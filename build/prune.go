package build

import (
	"context"
	"fmt"
	"time"

	"github.com/rechunker-dev/rechunker/exporter"
	"github.com/rechunker-dev/rechunker/internal/fsutil"
	"github.com/rechunker-dev/rechunker/internal/source"
	"github.com/rechunker-dev/rechunker/ostree"
	"github.com/rechunker-dev/rechunker/ostree/selinux"
)

// PruneStep is what one step of PruneStore removed (or would remove).
type PruneStep struct {
	Name  string
	Stats fsutil.PruneStats
}

// PruneResult is what PruneStore did.
type PruneResult struct {
	Steps []PruneStep
	// Kept counts the content objects that kept cache entries name.
	Kept int
}

// storeCache is one of the store's caches. prune removes the entries no build used
// since cutoff and reports, through mark, the content objects its kept entries name.
type storeCache struct {
	name  string
	prune func(ctx context.Context, cutoff time.Time, dryRun bool, mark func(ostree.Checksum)) (fsutil.PruneStats, error)
}

// PruneStore removes from the store what no build used since cutoff. The order of the
// steps is what makes it safe: the caches whose kept entries name content objects go
// first (layer records, the relabel index), so that everything they still need is
// marked; the blob cache names no objects; derived objects are kept when marked and
// mark their bases in turn; objects go last, keeping every marked one.
func PruneStore(ctx context.Context, store *ostree.Store, cutoff time.Time, dryRun bool) (PruneResult, error) {
	keep := map[ostree.Checksum]bool{}
	caches := []storeCache{
		{"layer records", func(ctx context.Context, cutoff time.Time, dryRun bool, mark func(ostree.Checksum)) (fsutil.PruneStats, error) {
			return source.PruneLayerRecords(ctx, store, cutoff, dryRun, mark)
		}},
		{"relabel index", func(ctx context.Context, cutoff time.Time, dryRun bool, mark func(ostree.Checksum)) (fsutil.PruneStats, error) {
			return selinux.PruneIndex(ctx, store, cutoff, dryRun, mark)
		}},
		{"blob cache", func(ctx context.Context, cutoff time.Time, dryRun bool, _ func(ostree.Checksum)) (fsutil.PruneStats, error) {
			return exporter.PruneBlobCache(ctx, store, cutoff, dryRun)
		}},
		{"derived", func(ctx context.Context, cutoff time.Time, dryRun bool, mark func(ostree.Checksum)) (fsutil.PruneStats, error) {
			return store.PruneDerived(ctx, cutoff, dryRun, func(c ostree.Checksum) bool { return keep[c] }, mark)
		}},
		{"objects", func(ctx context.Context, cutoff time.Time, dryRun bool, _ func(ostree.Checksum)) (fsutil.PruneStats, error) {
			return store.PruneObjects(ctx, cutoff, dryRun, func(c ostree.Checksum, t ostree.ObjectType) bool {
				return t == ostree.ObjFile && keep[c]
			})
		}},
	}
	var res PruneResult
	mark := func(c ostree.Checksum) { keep[c] = true }
	for _, c := range caches {
		st, err := c.prune(ctx, cutoff, dryRun, mark)
		res.Steps = append(res.Steps, PruneStep{Name: c.name, Stats: st})
		if err != nil {
			return res, fmt.Errorf("prune %s: %s: %w", store.Path(), c.name, err)
		}
	}
	res.Kept = len(keep)
	return res, nil
}
