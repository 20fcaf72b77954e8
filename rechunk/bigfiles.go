package rechunk

import "github.com/rechunker-dev/rechunker/ostree"

// DefaultBigFileSize is the size from which an unowned file becomes a component of its
// own instead of joining the catch-all.
const DefaultBigFileSize = 1 << 20

// bigFileSource makes every big regular file nobody else claimed its own component,
// named after its path: the name stays the same across builds as long as the path
// does, so the file keeps its layer.
type bigFileSource struct {
	min int64
}

func (*bigFileSource) kind() string { return "bigfile" }

func (s *bigFileSource) claim(p string, f *ostree.File) string {
	if f.Header.IsSymlink() || f.Size < s.min {
		return ""
	}
	return bigFilePrefix + p
}

func (*bigFileSource) info(string) sourceInfo { return sourceInfo{changesPerYear: -1} }
