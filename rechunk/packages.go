package rechunk

import (
	"path"
	"sort"
	"strings"
	"time"

	"github.com/rechunker-dev/rechunker/ostree"
)

// pkgRecord is one installed binary package as a package database describes it.
type pkgRecord struct {
	name string // binary package name
	// version and arch as the database records them (for Packages).
	version, arch string
	group         string   // source package: binary packages built together change together
	files         []string // absolute paths as the database records them (files and directories)
	// changes are the times of the package's changelog entries (any order).
	changes []time.Time
}

// pkgSource is the component source of one package database: a component per source
// package, owning the files its binary packages list.
type pkgSource struct {
	// installed lists the installed packages with their versions.
	installed []Package
	name      string
	// owners gives each file of the tree (by its position in the resolver's files) the
	// group listing it (an index in groupNames), or -1. A database lists nearly every
	// file of the image: paths, or even a map keyed by file, would be most of the
	// planner's memory.
	owners     []int32
	groupNames []string
	// dirs maps a resolved directory to the only group listing it, or "" when shared.
	dirs   map[string]string
	groups map[string]*pkgGroup
}

type pkgGroup struct {
	index          int32
	packages       []string
	changesPerYear float64
	// days holds, until finish, the first and last changelog entry (Unix seconds) of
	// each distinct day: enough to count days in a window exactly.
	days map[int64][2]int64
}

func (s *pkgSource) kind() string { return s.name }

func (s *pkgSource) claim(i int, _ string, _ *ostree.File) string {
	if g := s.owners[i]; g >= 0 {
		return s.groupNames[g]
	}
	return ""
}

func (s *pkgSource) info(c string) sourceInfo {
	g := s.groups[c]
	if g == nil {
		return sourceInfo{changesPerYear: -1}
	}
	return sourceInfo{packages: g.packages, changesPerYear: g.changesPerYear}
}

// changeWindow is how far back changelog entries count.
const changeWindow = 365 * 24 * time.Hour

// pkgSourceBuilder builds a pkgSource one package at a time, resolving each listed path
// as it comes, so that the databases' file lists never have to be in memory at once.
// The result does not depend on the order packages are added in.
type pkgSourceBuilder struct {
	r *resolver
	s *pkgSource
}

func newPkgSourceBuilder(kind string, r *resolver) *pkgSourceBuilder {
	owners := make([]int32, len(r.files))
	for i := range owners {
		owners[i] = -1
	}
	return &pkgSourceBuilder{r: r, s: &pkgSource{
		name: kind, owners: owners, dirs: map[string]string{}, groups: map[string]*pkgGroup{},
	}}
}

// installed records an installed package for Packages.
func (b *pkgSourceBuilder) installed(p Package) {
	p.DB = b.s.name
	b.s.installed = append(b.s.installed, p)
}

// pkg registers a binary package of group with its changelog entry times.
func (b *pkgSourceBuilder) pkg(name, group string, changes []time.Time) {
	g := b.group(group)
	g.packages = append(g.packages, name)
	for _, c := range changes {
		if g.days == nil {
			g.days = map[int64][2]int64{}
		}
		t := c.Unix()
		day := floorDiv(t, 86400)
		if r, ok := g.days[day]; !ok {
			g.days[day] = [2]int64{t, t}
		} else {
			g.days[day] = [2]int64{min(r[0], t), max(r[1], t)}
		}
	}
}

func (b *pkgSourceBuilder) group(name string) *pkgGroup {
	g := b.s.groups[name]
	if g == nil {
		g = &pkgGroup{index: int32(len(b.s.groupNames)), changesPerYear: -1}
		b.s.groups[name] = g
		b.s.groupNames = append(b.s.groupNames, name)
	}
	return g
}

// own records that group lists path p (as the database records it: a file, symlink or
// directory). Paths not in the tree are ignored.
func (b *pkgSourceBuilder) own(group, p string) {
	f, dir := b.r.entry(p)
	switch {
	case f >= 0:
		// Several packages may list one path (multilib, shared files): the smallest
		// group wins, which does not depend on database order.
		g := b.group(group)
		if prev := b.s.owners[f]; prev < 0 || group < b.s.groupNames[prev] {
			b.s.owners[f] = g.index
		}
	case dir != "":
		if prev, ok := b.s.dirs[dir]; ok && prev != group {
			b.s.dirs[dir] = ""
		} else {
			b.s.dirs[dir] = group
		}
	}
}

// add registers a whole package record.
func (b *pkgSourceBuilder) add(pk pkgRecord) {
	b.installed(Package{Name: pk.name, Version: pk.version, Arch: pk.arch, Source: pk.group})
	b.pkg(pk.name, pk.group, pk.changes)
	for _, p := range pk.files {
		b.own(pk.group, p)
	}
}

// finish computes per-group change rates: distinct changelog days within a year before
// ref (the newest build or entry in the database, so that old images are judged by
// their own time).
func (b *pkgSourceBuilder) finish(ref time.Time) *pkgSource {
	lo, hi := ref.Add(-changeWindow), ref.Add(24*time.Hour)
	for _, g := range b.s.groups {
		g.packages = uniqueSorted(g.packages)
		if g.days == nil {
			continue
		}
		g.changesPerYear = 0 // known: the package has a changelog
		if ref.IsZero() {
			g.days = nil
			continue
		}
		for _, r := range g.days {
			// A day counts when one of its entries lies in (lo, hi]. The window is
			// longer than a day, so a day holds at most one of its ends, and its first
			// and last entries decide.
			if r[1] > lo.Unix() && r[0] <= hi.Unix() {
				g.changesPerYear++
			}
		}
		g.days = nil
	}
	return b.s
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// newPkgSource builds a source from complete package records.
func newPkgSource(kind string, r *resolver, pkgs []pkgRecord, ref time.Time) *pkgSource {
	b := newPkgSourceBuilder(kind, r)
	for _, pk := range pkgs {
		b.add(pk)
	}
	return b.finish(ref)
}

func uniqueSorted(in []string) []string {
	sort.Strings(in)
	out := in[:0]
	for i, v := range in {
		if i == 0 || v != in[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// dirOwnerSource weakly claims files that no package lists but that live below a
// directory only one package owns, such as Python bytecode caches and generated
// indexes. It only looks below /usr and only at small files: state under /etc and /var
// changes for reasons of its own.
type dirOwnerSource struct {
	pkgs    []*pkgSource
	maxSize int64
}

func (*dirOwnerSource) kind() string { return "package-dir" }

func (s *dirOwnerSource) claim(_ int, p string, f *ostree.File) string {
	if !strings.HasPrefix(p, "/usr/") || strings.HasPrefix(p, "/usr/etc/") || f.Size >= s.maxSize {
		return ""
	}
	for d := path.Dir(p); d != "/usr" && d != "/"; d = path.Dir(d) {
		for _, ps := range s.pkgs {
			if g, ok := ps.dirs[d]; ok {
				if g == "" {
					return "" // a shared directory such as /usr/lib: nobody in particular
				}
				return ps.kind() + "\x00" + g
			}
		}
	}
	return ""
}

func (s *dirOwnerSource) info(c string) sourceInfo {
	if target, g := s.delegate(c); target != nil {
		return target.info(g)
	}
	return sourceInfo{changesPerYear: -1}
}

// delegate makes the claimed files part of the owning package's component.
func (s *dirOwnerSource) delegate(c string) (componentSource, string) {
	kind, g, _ := strings.Cut(c, "\x00")
	for _, ps := range s.pkgs {
		if ps.kind() == kind {
			return ps, g
		}
	}
	return nil, c
}
