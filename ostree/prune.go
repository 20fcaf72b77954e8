package ostree

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// PruneStats counts what a prune removed (or would remove, on a dry run).
type PruneStats struct {
	Files int
	Bytes int64
}

// Add accumulates other into s.
func (s *PruneStats) Add(other PruneStats) { s.Files += other.Files; s.Bytes += other.Bytes }

// PruneFiles removes the regular files below dir (a store subdirectory) last modified
// before cutoff for which keep returns false. keep may be nil. Caches touch their
// entries on use, so the modification time is the time of last use.
func PruneFiles(ctx context.Context, dir string, cutoff time.Time, dryRun bool, keep func(path string) bool) (PruneStats, error) {
	var st PruneStats
	err := WalkFiles(ctx, dir, func(p string, fi fs.FileInfo) error {
		if !fi.ModTime().Before(cutoff) || (keep != nil && keep(p)) {
			return nil
		}
		if !dryRun {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		st.Files++
		st.Bytes += fi.Size()
		return nil
	})
	return st, err
}

// PruneObjects removes objects last modified before cutoff that keep does not claim.
// Objects written since cutoff always stay, so a build running meanwhile keeps what it
// wrote; content objects a cache still names are passed to keep.
func (s *Store) PruneObjects(ctx context.Context, cutoff time.Time, dryRun bool, keep func(Checksum, ObjectType) bool) (PruneStats, error) {
	return PruneFiles(ctx, s.Path("objects"), cutoff, dryRun, func(p string) bool {
		dir, name := filepath.Split(p)
		base, ext, ok := strings.Cut(name, ".")
		if !ok {
			return true // not an object: leave it
		}
		sum, err := ParseChecksum(filepath.Base(filepath.Clean(dir)) + base)
		if err != nil {
			return true
		}
		return keep(sum, ObjectType(ext))
	})
}

// WalkFiles calls fn for each regular file below dir (a missing dir has none).
func WalkFiles(ctx context.Context, dir string, fn func(path string, fi fs.FileInfo) error) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		return fn(p, fi)
	})
}

// Touch marks a cache file as used now, so that pruning keeps it; errors are ignored
// (a read-only store still works, its entries just age).
func Touch(path string) {
	now := time.Now()
	_ = os.Chtimes(path, now, now)
}
