package rechunk

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	rpmdb "github.com/knqyf263/go-rpmdb/pkg"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestComparePackages(t *testing.T) {
	pk := func(name, arch, version string) Package {
		return Package{Name: name, Arch: arch, Version: version, DB: "dpkg", Source: name}
	}
	ch := func(name, arch, old, new string) PackageChange {
		return PackageChange{Name: name, Arch: arch, DB: "dpkg", Source: name, Old: old, New: new}
	}
	cases := []struct {
		name     string
		old, new []Package
		want     Changelog
	}{
		{"identical", []Package{pk("a", "amd64", "1")}, []Package{pk("a", "amd64", "1")}, Changelog{}},
		{"upgrade", []Package{pk("a", "amd64", "1"), pk("b", "all", "2")}, []Package{pk("a", "amd64", "1.1"), pk("b", "all", "2")},
			Changelog{Changed: []PackageChange{ch("a", "amd64", "1", "1.1")}}},
		{"added and removed", []Package{pk("a", "amd64", "1")}, []Package{pk("b", "amd64", "1")},
			Changelog{Added: []PackageChange{ch("b", "amd64", "", "1")}, Removed: []PackageChange{ch("a", "amd64", "1", "")}}},
		{"another architecture is another package", []Package{pk("a", "amd64", "1")}, []Package{pk("a", "amd64", "1"), pk("a", "i386", "1")},
			Changelog{Added: []PackageChange{ch("a", "i386", "", "1")}}},
		{"two kernels, one replaced", []Package{pk("k", "x86_64", "6.1"), pk("k", "x86_64", "6.2")}, []Package{pk("k", "x86_64", "6.3"), pk("k", "x86_64", "6.2")},
			Changelog{Changed: []PackageChange{ch("k", "x86_64", "6.1, 6.2", "6.2, 6.3")}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := ComparePackages(c.old, c.new)
			for _, l := range []*[]PackageChange{&c.want.Added, &c.want.Removed, &c.want.Changed} {
				if *l == nil {
					*l = []PackageChange{}
				}
			}
			assert.Equal(t, c.want, got)
		})
	}
}

// TestPackagesRPMChangelog lists the packages of two real rpm databases and compares
// them, with go-rpmdb's own parser as the oracle for both.
func TestPackagesRPMChangelog(t *testing.T) {
	files := []string{"go-rpmdb/amazonlinux2023-plain/rpmdb.sqlite", "go-rpmdb/cbl-mariner-2.0/rpmdb.sqlite"}
	var lists [][]Package
	var oracle []map[string]string // name.arch -> [epoch:]version-release
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(fixtures, f))
		if err != nil {
			t.Skipf("fixture missing: %v", err)
		}
		b := newTestTree(t, nil)
		b.file("/usr/lib/sysimage/rpm/rpmdb.sqlite", data)
		tree := b.finalize()
		got, err := Packages(context.Background(), tree, b.store, nil)
		require.NoError(t, err)
		lists = append(lists, got)

		ref, err := rpmdb.Open(filepath.Join(fixtures, f))
		require.NoError(t, err)
		pkgs, err := ref.ListPackages()
		ref.Close()
		require.NoError(t, err)
		want := map[string]string{}
		for _, p := range pkgs {
			if p.Name == "gpg-pubkey" {
				continue
			}
			v := p.Version + "-" + p.Release
			if p.EpochNum() != 0 {
				v = fmt.Sprintf("%d:%s", p.EpochNum(), v)
			}
			want[p.Name+"."+p.Arch] = v
		}
		have := map[string]string{}
		for _, p := range got {
			assert.Equal(t, "rpm", p.DB)
			have[p.Name+"."+p.Arch] = p.Version
		}
		assert.Equal(t, want, have, "%s: packages and versions match go-rpmdb", f)
		oracle = append(oracle, want)
	}
	c := ComparePackages(lists[0], lists[1])
	added, removed, changed := 0, 0, 0
	for k, v := range oracle[1] {
		switch old, ok := oracle[0][k]; {
		case !ok:
			added++
		case old != v:
			changed++
		}
	}
	for k := range oracle[0] {
		if _, ok := oracle[1][k]; !ok {
			removed++
		}
	}
	assert.Len(t, c.Added, added)
	assert.Len(t, c.Removed, removed)
	assert.Len(t, c.Changed, changed)
	assert.Positive(t, changed, "the two distributions share packages in other versions")
	for _, ch := range c.Changed {
		assert.Equal(t, oracle[0][ch.Name+"."+ch.Arch], ch.Old)
		assert.Equal(t, oracle[1][ch.Name+"."+ch.Arch], ch.New)
	}
}
