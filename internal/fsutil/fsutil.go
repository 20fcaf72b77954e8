// Package fsutil holds the file-system helpers the store and its caches share: atomic
// replacement of small files, cancellable reads, and pruning by time of last use.
package fsutil

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// WriteFileAtomic writes data to path through a temporary file in the same directory
// and a rename, so readers never see a partial file.
func WriteFileAtomic(path string, data []byte) error { return writeFileAtomic(path, data, false) }

// WriteFileAtomicSync is WriteFileAtomic with the data flushed to disk before the rename,
// for files that publish others (an image's index.json): after a crash the name either
// points at the old file or at complete new data.
func WriteFileAtomicSync(path string, data []byte) error { return writeFileAtomic(path, data, true) }

func writeFileAtomic(path string, data []byte, sync bool) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	fail := func(err error) error {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return fail(err)
	}
	if sync {
		if err := tmp.Sync(); err != nil {
			return fail(err)
		}
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

// ContextReader returns a reader of r that fails with the context's error once ctx is
// done, so that long copies stop on cancellation.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Publish moves the finished temporary file tmp to path (creating its directory),
// readable by all; tmp is removed when that fails.
func Publish(tmp, path string) error {
	err := os.MkdirAll(filepath.Dir(path), 0o755)
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

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
