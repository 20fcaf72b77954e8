package rechunk

import (
	"path"
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
	dirs     map[string]string // cache: directory path -> resolved directory path or ""
}

func newResolver(t *ostree.Tree) *resolver {
	r := &resolver{t: t, dirs: map[string]string{"/": "/"}}
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
	p = path.Clean("/" + p)
	if p == "/" {
		return ""
	}
	dir, base := path.Split(r.mapEtc(p))
	d := r.dir(path.Clean(dir), 0)
	if d == "" {
		return ""
	}
	return path.Join(d, base)
}

// dir resolves a directory path fully (the last component is followed too).
func (r *resolver) dir(p string, hops int) string {
	if v, ok := r.dirs[p]; ok {
		return v
	}
	res := r.resolveDir(p, hops)
	r.dirs[p] = res
	return res
}

func (r *resolver) resolveDir(p string, hops int) string {
	if hops > maxSymlinkHops {
		return ""
	}
	parent, base := path.Split(p)
	pd := r.dir(path.Clean(parent), hops)
	if pd == "" {
		return ""
	}
	switch base {
	case ".":
		return pd
	case "..":
		return path.Dir(pd)
	}
	d := r.t.LookupDir(pd)
	if d == nil {
		return ""
	}
	if _, ok := d.Dirs[base]; ok {
		return path.Join(pd, base)
	}
	f := d.Files[base]
	if f == nil || !f.Header.IsSymlink() {
		return ""
	}
	target := f.Header.Target
	if !strings.HasPrefix(target, "/") {
		target = path.Join(pd, target)
	}
	// Absolute targets may point into /etc like any package path.
	return r.dir(path.Clean(r.mapEtc(path.Clean(target))), hops+1)
}

// lookup returns the file at an already resolved path.
func (r *resolver) lookup(p string) *ostree.File {
	return r.t.LookupFile(p)
}
