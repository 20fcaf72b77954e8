package rechunk

import (
	"path"
	"slices"
	"strings"

	"github.com/rechunker-dev/rechunker/ostree"
)

// maxSymlinkHops bounds symlink resolution like the kernel's ELOOP limit.
const maxSymlinkHops = 40

// resolver maps paths as package databases record them (/bin/sh, /etc/passwd) to the
// path the commit stores them at (/usr/bin/sh, /usr/etc/passwd): intermediate symlinked
// directories are followed, the last component is not (a package may own a symlink).
type resolver struct {
	t *ostree.Tree
	// etcInUsr is set when the commit keeps /etc under /usr/etc (ostree layout).
	etcInUsr bool
	dirs     map[string]resolvedDir // cache: directory path as given -> where it resolves
	// files lists the tree's files in walk order (treeFiles); spans gives each
	// directory's run in it, so that a path resolves to a position in files. Sources
	// key what they know by position: a map keyed by file would cost 50 bytes per file.
	files []FileRef
	spans map[*ostree.Dir]fileSpan
}

// fileSpan is the run of one directory's files in resolver.files (sorted by name).
type fileSpan struct{ first, n int32 }

// resolvedDir is a directory of the tree and its path; the zero value means the path
// does not resolve to a directory.
type resolvedDir struct {
	path string
	dir  *ostree.Dir
}

func newResolver(t *ostree.Tree) *resolver {
	r := &resolver{t: t, dirs: map[string]resolvedDir{"/": {"/", t.Root}}, spans: map[*ostree.Dir]fileSpan{}}
	r.files = treeFiles(t, func(d *ostree.Dir, first, n int) {
		r.spans[d] = fileSpan{int32(first), int32(n)}
	})
	_, hasEtc := t.Root.Dirs["etc"]
	if usr := t.Root.Dirs["usr"]; usr != nil && !hasEtc {
		_, r.etcInUsr = usr.Dirs["etc"]
	}
	return r
}

// mapEtc rewrites /etc/... to /usr/etc/... when the commit stores it there.
func (r *resolver) mapEtc(p string) string {
	if r.etcInUsr && (p == "/etc" || strings.HasPrefix(p, "/etc/")) {
		return "/usr" + p
	}
	return p
}

// file resolves a file path; it returns "" when a parent directory does not exist.
func (r *resolver) file(p string) string {
	dir, base, ok := r.split(p)
	if !ok {
		return ""
	}
	return joinPath(dir.path, base)
}

// split resolves the parent directory of a package database path and returns it with
// the last component. Paths that are already clean and absolute (nearly all) are not
// copied: database file lists are walked path by path and must not allocate per path.
func (r *resolver) split(p string) (resolvedDir, string, bool) {
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	p = path.Clean(p)
	if p == "/" {
		return resolvedDir{}, "", false
	}
	dir, base := path.Split(r.mapEtc(p))
	d := r.resolve(path.Clean(dir), 0)
	return d, base, d.dir != nil
}

// entry resolves a path a package lists: the position in r.files of the file or
// symlink it names (the last component is not followed), or the resolved path of the
// directory it names. They are -1 and "" when the path is not in the tree.
func (r *resolver) entry(p string) (int, string) {
	d, base, ok := r.split(p)
	if !ok {
		return -1, ""
	}
	if i := r.fileIndex(d.dir, base); i >= 0 {
		return i, ""
	}
	if _, isDir := d.dir.Dirs[base]; isDir {
		return -1, joinPath(d.path, base)
	}
	return -1, ""
}

// fileIndex returns the position in r.files of file name in d, or -1.
func (r *resolver) fileIndex(d *ostree.Dir, name string) int {
	sp := r.spans[d]
	run := r.files[sp.first : sp.first+sp.n]
	k, found := slices.BinarySearchFunc(run, name, func(fe FileRef, name string) int { return strings.Compare(fe.Name, name) })
	if !found {
		return -1
	}
	return int(sp.first) + k
}

// dir resolves a directory path fully (the last component is followed too); it
// returns "" when the path is not a directory of the tree.
func (r *resolver) dir(p string, hops int) string { return r.resolve(p, hops).path }

func (r *resolver) resolve(p string, hops int) resolvedDir {
	if v, ok := r.dirs[p]; ok {
		return v
	}
	res := r.resolveDir(p, hops)
	r.dirs[p] = res
	return res
}

func (r *resolver) resolveDir(p string, hops int) resolvedDir {
	if hops > maxSymlinkHops {
		return resolvedDir{}
	}
	parent, base := path.Split(p)
	pd := r.resolve(path.Clean(parent), hops)
	if pd.dir == nil {
		return resolvedDir{}
	}
	switch base {
	case ".":
		return pd
	case "..":
		return r.resolve(path.Dir(pd.path), hops)
	}
	if sub := pd.dir.Dirs[base]; sub != nil {
		return resolvedDir{childPath(p, pd.path, base), sub}
	}
	f := pd.dir.Files[base]
	if f == nil || !f.Header.IsSymlink() {
		return resolvedDir{}
	}
	target := f.Header.Target
	if !strings.HasPrefix(target, "/") {
		target = path.Join(pd.path, target)
	}
	// Absolute targets may point into /etc like any package path.
	return r.resolve(path.Clean(r.mapEtc(path.Clean(target))), hops+1)
}

// childPath returns the path of entry name of directory dir. It returns p itself when
// p is already that path (no symlink or ".." on the way, the common case), so that the
// cache holds one string per directory rather than two: 4 MB on a 300k-file image.
func childPath(p, dir, name string) string {
	sep := 1 // the "/" between dir and name; the root ends in one already
	if dir == "/" {
		sep = 0
	}
	if len(p) == len(dir)+sep+len(name) && strings.HasPrefix(p, dir) && strings.HasSuffix(p, name) &&
		(sep == 0 || p[len(dir)] == '/') {
		return p
	}
	return joinPath(dir, name)
}

// lookup returns the file at an already resolved path.
func (r *resolver) lookup(p string) *ostree.File {
	return r.t.LookupFile(p)
}
