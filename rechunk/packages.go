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
	name  string   // binary package name
	group string   // source package: binary packages built together change together
	files []string // absolute paths as the database records them (files and directories)
	// changes are the times of the package's changelog entries (any order).
	changes []time.Time
}

// pkgSource is the component source of one package database: a component per source
// package, owning the files its binary packages list.
type pkgSource struct {
	name   string
	owners map[string]string // resolved file path -> group
	// dirs maps a resolved directory to the only group listing it, or "" when shared.
	dirs   map[string]string
	groups map[string]*pkgGroup
}

type pkgGroup struct {
	packages       []string
	changesPerYear float64
}

func (s *pkgSource) kind() string { return s.name }

func (s *pkgSource) claim(p string, _ *ostree.File) string { return s.owners[p] }

func (s *pkgSource) info(c string) sourceInfo {
	g := s.groups[c]
	if g == nil {
		return sourceInfo{changesPerYear: -1}
	}
	return sourceInfo{packages: g.packages, changesPerYear: g.changesPerYear}
}

// changeWindow is how far back changelog entries count.
const changeWindow = 365 * 24 * time.Hour

// newPkgSource resolves the packages' paths in the tree and computes per-group change
// rates: distinct changelog days within a year before ref (the newest build or entry in
// the database, so that old images are judged by their own time).
func newPkgSource(kind string, r *resolver, pkgs []pkgRecord, ref time.Time) *pkgSource {
	s := &pkgSource{name: kind, owners: map[string]string{}, dirs: map[string]string{}, groups: map[string]*pkgGroup{}}
	days := map[string]map[int64]struct{}{}
	sort.SliceStable(pkgs, func(i, j int) bool { return pkgs[i].name < pkgs[j].name })
	for _, pk := range pkgs {
		g := s.groups[pk.group]
		if g == nil {
			g = &pkgGroup{changesPerYear: -1}
			s.groups[pk.group] = g
			days[pk.group] = map[int64]struct{}{}
		}
		g.packages = append(g.packages, pk.name)
		for _, c := range pk.changes {
			if !ref.IsZero() && c.After(ref.Add(-changeWindow)) && !c.After(ref.Add(24*time.Hour)) {
				days[pk.group][c.Unix()/86400] = struct{}{}
			}
			g.changesPerYear = 0 // known: the package has a changelog
		}
		for _, p := range pk.files {
			rp := r.file(p)
			if rp == "" {
				continue
			}
			if r.t.LookupDir(rp) != nil {
				if prev, ok := s.dirs[rp]; ok && prev != pk.group {
					s.dirs[rp] = ""
				} else {
					s.dirs[rp] = pk.group
				}
				continue
			}
			// Several packages may list one path (multilib, shared files): the smallest
			// group wins, which does not depend on database order.
			if prev, ok := s.owners[rp]; !ok || pk.group < prev {
				s.owners[rp] = pk.group
			}
		}
	}
	for name, g := range s.groups {
		g.packages = uniqueSorted(g.packages)
		if g.changesPerYear >= 0 {
			g.changesPerYear = float64(len(days[name]))
		}
	}
	return s
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

func (s *dirOwnerSource) claim(p string, f *ostree.File) string {
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
