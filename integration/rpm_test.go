//go:build integration

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRPMPackageUpgrade: an image whose files come from rpm packages (database at
// /usr/lib/sysimage/rpm, as rpm >= 4.17 and Fedora use) gets one package upgraded.
// Chunked with --previous-build, every other package must stay in a reused layer, and
// the upgrade must fetch only the commit layer, the upgraded package's layer and the
// package database's. v2 is built through `rechunker compose build-chunked-oci`.
func TestRPMPackageUpgrade(t *testing.T) {
	requireRoot(t)
	requireTools(t, "umoci", "rpmbuild", "rpm")
	c := newCLI(t)

	const packages, upgraded = 10, "pkg03"
	const payload = 1 << 20
	pkg := func(i int, version string, seed uint64) string {
		name := fmt.Sprintf("pkg%02d", i)
		blob := filepath.Join(t.TempDir(), "blob")
		writeRandomFile(t, blob, payload, seed)
		data, err := os.ReadFile(blob)
		require.NoError(t, err)
		return buildRPM(t, rpmPackage{Name: name, Version: version, Release: "1", Files: map[string]string{
			"/usr/lib/" + name + "/data.bin":     string(data),
			"/usr/share/doc/" + name + "/README": name + " " + version + "\n",
		}})
	}
	var rpms []string
	for i := range packages {
		rpms = append(rpms, pkg(i, "1.0", uint64(100+i)))
	}
	update := pkg(3, "1.1", 999)

	work := t.TempDir()
	base := newEmptyImage(t, filepath.Join(work, "src"), "v1")
	base.configure(t, "--config.label", "containers.bootc=1")
	v1 := base.derive(t, "v1", "install packages", func(root string) {
		writeFile(t, root, "usr/lib/os-release", "ID=rpmtest\nVERSION_ID=1\n", 0o644)
		require.NoError(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
		require.NoError(t, os.Symlink("../usr/lib/os-release", filepath.Join(root, "etc/os-release")))
		installRPMs(t, root, rpms...)
		addBootcRoot(t, root)
	})
	v2 := v1.derive(t, "v2", "upgrade "+upgraded, func(root string) {
		upgradeRPMs(t, root, update)
	})

	out := filepath.Join(work, "out")
	c1, c2 := ociImage{Layout: out, Tag: "v1"}, ociImage{Layout: out, Tag: "v2"}
	_, first := c.build(t, "--bootc", "--from", v1.Ref(), "--output", c1.Ref())
	// v2 through rpm-ostree's entry point, as a pipeline switching from rpm-ostree would call it.
	start := time.Now()
	c.mustRun(t, "compose", "build-chunked-oci", "--bootc", "--from", v2.Ref(), "--output", c2.Ref(),
		"--previous-build", c1.Ref())
	next := time.Since(start)
	c.mustRun(t, "verify", c2.Ref())

	d := c.diff(t, c1.Ref(), c2.Ref())
	plain := c.diff(t, v1.Ref(), v2.Ref())
	scenarioSummary{
		Scenario: "rpm-one-package", Fetched: d.BytesFetched, LayersFetched: d.LayersFetched,
		LayersTotal: d.LayersTotal, Unchunked: plain.BytesFetched, LowerBound: -1, BuildFirst: first, BuildNext: next,
		Note: "unchunked = the plain images, v2 = v1 plus one layer",
	}.log(t)
	var fetched []string
	for _, l := range d.Fetched {
		fetched = append(fetched, fmt.Sprintf("#%d %d B [%s]", l.Index, l.Size, strings.Join(l.Components, ",")))
	}
	t.Logf("upgrade fetches %d of %d layers, %d of %d bytes: %s", d.LayersFetched, d.LayersTotal,
		d.BytesFetched, d.BytesTotal, strings.Join(fetched, "; "))

	layerOf := func(name string) (diffLayer, bool) {
		for _, l := range d.Fetched {
			if slices.Contains(l.Components, name) {
				return l, false
			}
		}
		for _, l := range d.Reused {
			if slices.Contains(l.Components, name) {
				return l, true
			}
		}
		t.Fatalf("no layer of v2 has component %s", name)
		return diffLayer{}, false
	}
	for i := range packages {
		name := fmt.Sprintf("pkg%02d", i)
		_, reused := layerOf(name)
		if name == upgraded {
			assert.False(t, reused, "the layer holding the upgraded %s must change", name)
		} else {
			assert.True(t, reused, "the layer holding %s must be reused", name)
		}
	}
	assert.LessOrEqual(t, d.LayersFetched, 3, "commit layer, %s's layer, package database: %v", upgraded, fetched)
	assert.Less(t, d.BytesFetched, int64(2*payload+payload/2), "about one package's worth of bytes")
}
