package rechunk

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/rechunker-dev/rechunker/ostree"
)

// Package is an installed package as a tree's package database records it.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Arch    string `json:"arch,omitempty"`
	Source  string `json:"source,omitempty"` // source package
	DB      string `json:"db"`               // rpm, dpkg, pacman or apk
}

// key identifies a package across releases: a database may hold one name for several
// architectures (dpkg multi-arch, rpm multilib).
func (p Package) key() string { return p.DB + "\x00" + p.Name + "\x00" + p.Arch }

// Packages lists the packages installed in a tree, from every package database it
// holds, sorted by database, name and architecture. An unreadable database is an error.
func Packages(ctx context.Context, t *ostree.Tree, store *ostree.Store, warn func(string)) ([]Package, error) {
	if warn == nil {
		warn = func(string) {}
	}
	r := newResolver(t)
	var out []Package
	for _, l := range packageLoaders(ctx, t, store, r, warn) {
		s, dir, err := l.load()
		if err != nil {
			return nil, fmt.Errorf("read %s database %s: %w", l.name, dir, err)
		}
		if s != nil {
			out = append(out, s.installed...)
		}
	}
	slices.SortFunc(out, func(a, b Package) int {
		return cmp.Or(cmp.Compare(a.DB, b.DB), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Arch, b.Arch), cmp.Compare(a.Version, b.Version))
	})
	return out, nil
}

// PackageChange is a package whose version differs between two releases; Old or New
// is empty when the package was added or removed.
type PackageChange struct {
	Name   string `json:"name"`
	Arch   string `json:"arch,omitempty"`
	DB     string `json:"db"`
	Source string `json:"source,omitempty"`
	Old    string `json:"old,omitempty"`
	New    string `json:"new,omitempty"`
}

// Changelog is what changed in the package databases between two releases.
type Changelog struct {
	Added   []PackageChange `json:"added"`
	Removed []PackageChange `json:"removed"`
	Changed []PackageChange `json:"changed"`
}

// ComparePackages returns the packages added, removed, and installed in another
// version in new compared with old. A name installed twice for one architecture (rpm
// can hold several kernels) compares its sorted version lists.
func ComparePackages(old, new []Package) Changelog {
	index := func(ps []Package) (map[string][]Package, []string) {
		m := map[string][]Package{}
		var keys []string
		for _, p := range ps {
			if _, ok := m[p.key()]; !ok {
				keys = append(keys, p.key())
			}
			m[p.key()] = append(m[p.key()], p)
		}
		return m, keys
	}
	om, okeys := index(old)
	nm, nkeys := index(new)
	change := func(p Package) PackageChange {
		return PackageChange{Name: p.Name, Arch: p.Arch, DB: p.DB, Source: p.Source}
	}
	c := Changelog{Added: []PackageChange{}, Removed: []PackageChange{}, Changed: []PackageChange{}}
	for _, k := range nkeys {
		n, o := nm[k], om[k]
		ch := change(n[0])
		ch.New = versions(n)
		switch {
		case o == nil:
			c.Added = append(c.Added, ch)
		case versions(o) != ch.New:
			ch.Old = versions(o)
			c.Changed = append(c.Changed, ch)
		}
	}
	for _, k := range okeys {
		if nm[k] == nil {
			ch := change(om[k][0])
			ch.Old = versions(om[k])
			c.Removed = append(c.Removed, ch)
		}
	}
	for _, l := range [][]PackageChange{c.Added, c.Removed, c.Changed} {
		slices.SortFunc(l, func(a, b PackageChange) int {
			return cmp.Or(cmp.Compare(a.DB, b.DB), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Arch, b.Arch))
		})
	}
	return c
}

func versions(ps []Package) string {
	vs := make([]string, len(ps))
	for i, p := range ps {
		vs[i] = p.Version
	}
	slices.Sort(vs)
	out := vs[0]
	for _, v := range vs[1:] {
		out += ", " + v
	}
	return out
}
