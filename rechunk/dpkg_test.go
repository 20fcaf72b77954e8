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
		"/usr/bin/bash":                       "bash",
		"/usr/lib/x86_64-linux-gnu/libc.so.6": "glibc", // libc6 is built from glibc
		"/usr/etc/debian_version":             "base-files",
		"/var/lib/dpkg/status":                PackageDBComponent,
		"/usr/share/doc/coreutils/copyright":  "coreutils",
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
	t.Logf("components by source: %v; catch-all %s; warnings: %d", bySource, humanSize(catchAll), len(warnings))
	assert.Less(t, catchAll, int64(5<<20), "catch-all under 5 MB")
	assert.Greater(t, bySource["dpkg"], 50)
	assert.Positive(t, withRate)
	if c := componentOf(p, UnclaimedComponent); c != nil {
		var files []string
		for _, l := range p.Layers {
			for _, comp := range l.Components {
				if comp == UnclaimedComponent {
					for _, f := range l.Files {
						files = append(files, f.Path)
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
