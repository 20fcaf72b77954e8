package rechunk

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/internal/source"
	"github.com/rechunker-dev/rechunker/internal/units"
	"github.com/rechunker-dev/rechunker/ostree"
)

func TestParseDebianChangelog(t *testing.T) {
	text := `pkg (2.0-1) unstable; urgency=medium

  * New upstream release.

 -- Jane Doe <jane@example.org>  Tue, 05 Mar 2024 10:00:00 +0100

pkg (1.9-1) unstable; urgency=medium

  * Fix.

 -- Jane Doe <jane@example.org>  Sat,  6 Jan 2024 09:30:00 +0000

pkg (0.1-1) unstable; urgency=low

 -- Old <old@example.org>  Mon, 01 Jan 2018 00:00:00 +0000
`
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(text))
	zw.Close()
	dates, err := parseDebianChangelog(&buf)
	require.NoError(t, err)
	require.Len(t, dates, 2, "stops two years before the newest entry")
	assert.Equal(t, time.Date(2024, 3, 5, 9, 0, 0, 0, time.UTC), dates[0])
	assert.Equal(t, time.Date(2024, 1, 6, 9, 30, 0, 0, time.UTC), dates[1])
	_, err = parseDebianChangelog(strings.NewReader("not gzip"))
	require.Error(t, err)
}

func TestParseDpkgStatus(t *testing.T) {
	st := "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nMulti-Arch: same\nSource: glibc (2.36-9)\nDescription: x\n more\n\nPackage: gone\nStatus: deinstall ok config-files\n\n"
	pkgs, err := parseDpkgStatus(strings.NewReader(st))
	require.NoError(t, err)
	require.Len(t, pkgs, 2)
	assert.Equal(t, "glibc", pkgs[0].source)
	assert.True(t, pkgs[0].installed())
	assert.False(t, pkgs[1].installed())
	_, err = parseDpkgStatus(strings.NewReader("garbage without colon\n"))
	require.Error(t, err)
}

// debianRoot unpacks the cached debootstrap minbase rootfs (made by the ostree/rootfs
// and integration tests) or skips.
func debianRoot(t *testing.T) string {
	cache, _ := os.UserCacheDir()
	tarball := filepath.Join(cache, "rechunker-test", "debootstrap-minbase-bookworm.tar")
	if _, err := os.Stat(tarball); err != nil {
		t.Skipf("no cached debootstrap rootfs at %s (run the integration tests once)", tarball)
	}
	if testing.Short() {
		t.Skip("unpacks a Debian rootfs")
	}
	dir := t.TempDir()
	out, err := exec.Command("tar", "-C", dir, "--numeric-owner", "-xf", tarball).CombinedOutput()
	require.NoError(t, err, "%s", out)
	return dir
}

// TestDebianRoot plans a real Debian (debootstrap minbase) root: every file is
// assigned, packages are grouped by source, changelogs give change rates, and the
// catch-all stays small.
func TestDebianRoot(t *testing.T) {
	root := debianRoot(t)
	store, err := ostree.OpenStore(t.TempDir())
	require.NoError(t, err)
	ctx := context.Background()
	in, err := source.Load(ctx, "", root, source.Options{Store: store})
	require.NoError(t, err)
	var warnings []string
	start := time.Now()
	p, err := NewPlan(ctx, in.Tree, store, Options{Warn: func(s string) { warnings = append(warnings, s) }})
	require.NoError(t, err)
	t.Logf("planned %d files into %d layers in %v", in.Tree.Stats().Files+in.Tree.Stats().Symlinks, len(p.Layers), time.Since(start))
	checkPlan(t, in.Tree, p, DefaultMaxLayers)
	for path, want := range map[string]string{
		"/usr/bin/bash":                           "bash" + VolatileSuffix,  // executables change in rebuilds
		"/usr/lib/x86_64-linux-gnu/libc.so.6":     "glibc" + VolatileSuffix, // libc6 is built from glibc
		"/usr/etc/debian_version":                 "base-files",
		"/var/lib/dpkg/status":                    PackageDBComponent,
		"/var/lib/dpkg/info/bash.list":            "bash",
		"/var/lib/dpkg/info/libc6:amd64.md5sums":  "glibc" + VolatileSuffix, // Multi-Arch: same
		"/var/lib/dpkg/info/base-files.conffiles": "base-files",
		"/usr/share/doc/coreutils/copyright":      "coreutils",
	} {
		l, ok := ownerOf(p, path)
		if !ok {
			t.Errorf("%s not planned", path)
			continue
		}
		assert.Contains(t, l.Components, want, path)
	}
	var withRate int
	var catchAll int64
	bySource := map[string]int{}
	for _, c := range p.Components {
		bySource[c.Source]++
		if c.Name == UnclaimedComponent {
			catchAll = c.Size
		}
		if c.Source == "dpkg" && c.ChangeProbability > 0 {
			withRate++
		}
	}
	t.Logf("components by source: %v; catch-all %s; warnings: %d", bySource, units.Bytes(catchAll), len(warnings))
	assert.Less(t, catchAll, int64(5<<20), "catch-all under 5 MB")
	assert.Greater(t, bySource["dpkg"], 50)
	assert.Positive(t, withRate)
	if c := componentOf(p, UnclaimedComponent); c != nil {
		var files []string
		for _, l := range p.Layers {
			for _, comp := range l.Components {
				if comp == UnclaimedComponent {
					for _, f := range l.Files {
						files = append(files, f.Path())
					}
				}
			}
		}
		sort.Strings(files)
		if len(files) > 15 {
			files = files[:15]
		}
		t.Logf("catch-all has %d files, e.g. %v", c.Files, files)
	}
}

// componentsByPath runs the component sources over a tree and returns path -> component.
func componentsByPath(t *testing.T, b *testTree) map[string]string {
	t.Helper()
	tree := b.finalize()
	var warnings []string
	_, comps, err := components(context.Background(), tree, b.store, Options{BigFileSize: DefaultBigFileSize}, func(s string) { warnings = append(warnings, s) })
	require.NoError(t, err)
	assert.Empty(t, warnings)
	out := map[string]string{}
	for _, c := range comps {
		for _, fe := range c.files {
			out[fe.Path()] = c.name
		}
	}
	return out
}

// TestDpkgInfoFiles: a package's own files in the dpkg info directory belong to its
// component (they change only with the package); the files every upgrade rewrites, and
// those of packages no longer installed, stay in the package database component.
func TestDpkgInfoFiles(t *testing.T) {
	b := newTestTree(t, nil)
	status := `Package: libc6
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Source: glibc (2.36-9)

Package: libgtk2.0-0
Status: install ok installed
Architecture: amd64
Source: gtk+2.0

Package: tzdata
Status: install ok installed
Architecture: all

Package: gone
Status: deinstall ok config-files
Architecture: amd64

`
	b.file("/var/lib/dpkg/status", []byte(status))
	b.file("/var/lib/dpkg/status-old", []byte(status))
	b.file("/var/lib/dpkg/diversions", nil)
	b.file("/var/lib/dpkg/triggers/File", []byte("/usr/share/zoneinfo tzdata\n"))
	b.file("/var/lib/dpkg/info/format", []byte("1\n"))
	lists := map[string]string{
		"libc6:amd64":   "/usr/lib/x86_64-linux-gnu/libc.so.6",
		"libgtk2.0-0":   "/usr/lib/x86_64-linux-gnu/libgtk-x11-2.0.so.0",
		"tzdata":        "/usr/share/zoneinfo/UTC",
		"gone":          "/etc/gone.conf",
		"not-in-status": "/usr/bin/stray",
	}
	for key, f := range lists {
		b.file("/var/lib/dpkg/info/"+key+".list", []byte("/.\n"+f+"\n"))
		b.file("/var/lib/dpkg/info/"+key+".md5sums", []byte("0123  "+f[1:]+"\n"))
		b.sized(f, 100, key)
	}
	b.file("/var/lib/dpkg/info/libc6:amd64.triggers", []byte("activate-noawait ldconfig\n"))
	b.file("/var/lib/dpkg/info/libgtk2.0-0.postinst", []byte("#!/bin/sh\n"))
	b.file("/var/lib/dpkg/info/tzdata.templates", []byte("Template: tzdata/Areas\n"))
	b.file("/var/lib/dpkg/info/tzdata.config", []byte("#!/bin/sh\n"))
	b.file("/var/lib/dpkg/info/gone.postrm", []byte("#!/bin/sh\n"))

	owners := componentsByPath(t, b)
	for p, want := range map[string]string{
		"/var/lib/dpkg/info/libc6:amd64.list":     "glibc",
		"/var/lib/dpkg/info/libc6:amd64.md5sums":  "glibc",
		"/var/lib/dpkg/info/libc6:amd64.triggers": "glibc",
		"/usr/lib/x86_64-linux-gnu/libc.so.6":     "glibc",
		"/var/lib/dpkg/info/libgtk2.0-0.list":     "gtk+2.0", // dots in the package name
		"/var/lib/dpkg/info/libgtk2.0-0.md5sums":  "gtk+2.0",
		"/var/lib/dpkg/info/libgtk2.0-0.postinst": "gtk+2.0",
		"/var/lib/dpkg/info/tzdata.list":          "tzdata",
		"/var/lib/dpkg/info/tzdata.templates":     "tzdata",
		"/var/lib/dpkg/info/tzdata.config":        "tzdata",
		"/var/lib/dpkg/status":                    PackageDBComponent,
		"/var/lib/dpkg/status-old":                PackageDBComponent,
		"/var/lib/dpkg/diversions":                PackageDBComponent,
		"/var/lib/dpkg/triggers/File":             PackageDBComponent,
		"/var/lib/dpkg/info/format":               PackageDBComponent,
		"/var/lib/dpkg/info/gone.list":            PackageDBComponent, // not installed
		"/var/lib/dpkg/info/gone.postrm":          PackageDBComponent,
		"/var/lib/dpkg/info/not-in-status.list":   PackageDBComponent,
	} {
		assert.Equal(t, want, owners[p], p)
	}
}
