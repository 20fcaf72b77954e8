package ostree

import (
	"context"
	"path/filepath"
	"strings"
	"time"

	"github.com/rechunker-dev/rechunker/internal/fsutil"
)

// PruneObjects removes objects last modified before cutoff that keep does not claim.
// Objects written since cutoff always stay, so a build running meanwhile keeps what it
// wrote; content objects a cache still names are passed to keep.
func (s *Store) PruneObjects(ctx context.Context, cutoff time.Time, dryRun bool, keep func(Checksum, ObjectType) bool) (fsutil.PruneStats, error) {
	return fsutil.PruneFiles(ctx, s.Path("objects"), cutoff, dryRun, func(p string) bool {
		dir, name := filepath.Split(p)
		base, ext, ok := strings.Cut(name, ".")
		if !ok {
			return true // not an object: leave it
		}
		sum, err := ParseChecksum(filepath.Base(filepath.Clean(dir)) + base)
		if err != nil {
			return true
		}
		t := ObjectType(ext)
		if ext == string(ObjFile)+compressedSuffix {
			t = ObjFile
		}
		return keep(sum, t)
	})
}
