package rechunk

import (
	"slices"
	"sort"
	"strings"

	"github.com/rechunker-dev/rechunker/ostree"
)

// Volatility split. A security or point update of a package rebuilds it from patched
// sources: its compiled files (executables, shared objects, Python bytecode, whose
// header embeds the source's mtime), what the build generates with the version or date
// in it (man pages, Perl's and Python's build configuration) and its per-version
// metadata (the Debian changelog, dpkg's md5sums, symbols and shlibs) change, while most
// of its data, documentation, translations, headers and sources stay byte-identical. A package component is therefore split into a
// volatile part (named VolatileSuffix after the package's component) and a stable part
// (keeping the component's name, so a previous build's layout still finds it), each
// planned like any component. The rule is a pure function of path and mode, so a file
// keeps its part from one release to the next without any record; the parts' own plan
// label entries (digests and change history) replace the assumed rates below once
// previous builds have been seen.

// VolatileSuffix ends the name of a package component's volatile part.
const VolatileSuffix = "/volatile"

const (
	// stableRateFactor is how much less often a package's stable part is assumed to
	// change than the package: only new upstream versions touch it.
	stableRateFactor = 0.25
	// splitMinSaving is the smallest expected saving per upgrade (bytes) for which a
	// package is split: about what a layer costs to fetch even when tiny (its
	// repository skeleton, manifest and config entries, a request).
	splitMinSaving = 4 << 10
	// splitMinPart is the smallest part worth a component of its own.
	splitMinPart = 16 << 10
)

// isVolatile says whether the file at dir+name is likely to change in a rebuild of its
// package that leaves upstream data alone.
func isVolatile(dir, name string, f *ostree.File) bool { return volatileReason(dir, name, f) != "" }

// VolatileReason says why the file at commit path p belongs to its package's volatile
// part, or returns "" for a file of the stable part (`rechunker plan --explain`).
func VolatileReason(p string, f *ostree.File) string {
	i := strings.LastIndexByte(p, '/')
	return volatileReason(p[:i+1], p[i+1:], f)
}

func volatileReason(dir, name string, f *ostree.File) string {
	if f.Header.IsSymlink() {
		return ""
	}
	switch {
	case strings.Contains(dir, "/__pycache__/"), strings.HasSuffix(name, ".pyc"), strings.HasSuffix(name, ".pyo"):
		return "Python bytecode (its header records the source's mtime)"
	case dir == "/var/lib/dpkg/info/" && !strings.HasSuffix(name, ".list") && !strings.HasSuffix(name, ".conffiles"):
		// The file and conffile lists change only when files come or go.
		return "dpkg metadata of the package's build (checksums, symbols, shlibs, triggers, scripts)"
	case strings.HasPrefix(dir, "/usr/share/doc/") && strings.HasPrefix(name, "changelog"):
		return "changelog (gains an entry with every upload)"
	case isBuildConfig(dir, name):
		return "build configuration of an interpreter (records the build)"
	case strings.HasPrefix(dir, "/usr/share/man/"):
		return "man page (generated at build time, with the version in it)"
	case isSharedObject(name):
		return "shared object (compiled)"
	case f.Header.Mode&0o111 != 0 && !strings.HasPrefix(dir, "/usr/share/"):
		// Scripts under /usr/share are data; executables elsewhere are mostly compiled.
		return "executable outside /usr/share (mostly compiled)"
	}
	return ""
}

// isBuildConfig matches the configuration interpreters record when they are built,
// with build dates, hosts and versions in it: Perl's Config.pm and Config_*.pl, and
// Python's _sysconfigdata*.py and config-*/Makefile.
func isBuildConfig(dir, name string) bool {
	switch {
	case strings.Contains(dir, "/perl") && (name == "Config.pm" || strings.HasPrefix(name, "Config_") && strings.HasSuffix(name, ".pl")):
		return true
	case strings.Contains(dir, "/python") && (strings.HasPrefix(name, "_sysconfigdata") || strings.Contains(dir, "/config-") && name == "Makefile"):
		return true
	}
	return false
}

// isSharedObject matches lib.so, lib.so.1 and lib.so.1.2.3, and Python/Perl extension
// modules (*.cpython-311-x86_64-linux-gnu.so, *.so).
func isSharedObject(name string) bool {
	i := strings.Index(name, ".so")
	if i <= 0 {
		return false
	}
	rest := name[i+3:]
	for rest != "" {
		if rest[0] != '.' {
			return false
		}
		j := 1
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		if j == 1 {
			return false
		}
		rest = rest[j:]
	}
	return true
}

// splittable lists the sources whose components are packages.
var splittable = map[string]bool{"rpm": true, "dpkg": true, "pacman": true, "apk": true}

// splitVolatile replaces every package component for which the split pays by its
// stable and volatile parts. p must already be set on comps.
func splitVolatile(comps []*component) []*component {
	out := make([]*component, 0, len(comps))
	for _, c := range comps {
		// A component under two minimum parts cannot split; most packages stop here.
		if !splittable[c.source] || c.info.exclusive || c.size < 2*splitMinPart {
			out = append(out, c)
			continue
		}
		// Partition the component's own list in place (the planner holds one list of
		// the tree's files); finish sorts each part again, and a refused split sorts
		// the whole back.
		stable, vol := splitFiles(c.files, func(fe FileRef) bool { return !isVolatile(fe.Dir, fe.Name, fe.File) })
		if len(vol) == 0 || len(stable) == 0 {
			slices.SortFunc(c.files, ComparePaths)
			out = append(out, c)
			continue
		}
		vs, ss := distinctSize(vol), distinctSize(stable)
		pStable := c.p * stableRateFactor
		if vs < splitMinPart || ss < splitMinPart || float64(ss)*(c.p-pStable) < splitMinSaving {
			slices.SortFunc(c.files, ComparePaths)
			out = append(out, c)
			continue
		}
		v := &component{name: c.name + VolatileSuffix, source: c.source, info: c.info, files: vol, at: c.at + len(stable), p: c.p}
		// The stable part keeps the package aliases: it is what a previous layout knew.
		v.info.packages = nil
		v.info.volatilePart = true
		s := &component{name: c.name, source: c.source, info: c.info, files: stable, at: c.at, p: pStable}
		s.info.changesPerYear *= stableRateFactor
		v.finish()
		s.finish()
		out = append(out, s, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// splitFiles reorders files so that those keep accepts come first and returns the two
// parts, each with its capacity cut at its end so that neither can grow into the other.
// The order within each part is not kept.
func splitFiles(files []FileRef, keep func(FileRef) bool) (kept, rest []FileRef) {
	i, j := 0, len(files)
	for i < j {
		if keep(files[i]) {
			i++
			continue
		}
		j--
		files[i], files[j] = files[j], files[i]
	}
	return files[:i:i], files[i:]
}
