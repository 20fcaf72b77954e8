package rechunk

import (
	"strings"

	"github.com/rechunker-dev/rechunker/ostree"
)

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

func (s *bigFileSource) claim(_ int, p string, f *ostree.File) string {
	if f.Header.IsSymlink() || f.Size < s.min {
		return ""
	}
	return bigFilePrefix + p
}

func (*bigFileSource) info(string) sourceInfo { return sourceInfo{changesPerYear: -1} }

// stateDirPrefixes are FHS directories whose subdirectories each hold one program's
// caches or state (apt's package cache and lists, debconf, logs).
var stateDirPrefixes = []string{"/var/cache/", "/var/lib/", "/var/log/", "/usr/share/factory/var/cache/", "/usr/share/factory/var/lib/"}

// stateDirSource groups unowned files below /var/cache/<name>, /var/lib/<name> and
// /var/log/<name> into one component per such directory, named after it. They change
// together (when that program runs at build time) and keep the catch-all small.
type stateDirSource struct{}

func (stateDirSource) kind() string { return "state-dir" }

func (stateDirSource) claim(_ int, p string, _ *ostree.File) string {
	for _, pre := range stateDirPrefixes {
		if rest, ok := strings.CutPrefix(p, pre); ok {
			name, _, found := strings.Cut(rest, "/")
			if !found {
				return "" // a file directly in /var/lib: catch-all
			}
			return dirPrefix + pre + name
		}
	}
	return ""
}

func (stateDirSource) info(string) sourceInfo { return sourceInfo{changesPerYear: -1} }
