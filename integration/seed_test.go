//go:build integration

package integration

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sshdDropIn is the one file release v2 adds.
const (
	sshdDropIn        = "etc/ssh/sshd_config.d/10-disable-password-auth.conf"
	sshdDropInContent = "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
	boundAppSize      = 24 << 20 // incompressible, so the bound image is visible in any layer it lands in
)

// TestSeedScenario is the upgrade the product exists for: a Debian bootc image that embeds
// a physically bound container image gets a one-file change. Chunked with rechunker
// (v2 built with --previous-build v1), the upgrade must fetch only the commit layer and one
// small layer, and the layer holding the bound image (tagged user.component=containers)
// must be reused. The same two releases are also built without the xattr, and both
// upgrade sizes are logged for comparison.
func TestSeedScenario(t *testing.T) {
	requireRoot(t)
	requireTools(t, "debootstrap", "umoci", "skopeo", "setfattr", "tar", "zstd")
	c := newCLI(t)
	work := t.TempDir()

	rootfs := bookwormBootc().tarball(t)
	app := newAppImage(t, filepath.Join(work, "app"), "v1", boundAppSize)
	base := newImageFromRootfs(t, filepath.Join(work, "src"), "base", rootfs,
		"--config.label", "containers.bootc=1", "--config.cmd", "/sbin/init")

	type upgrade struct {
		fetchLayers int
		fetchBytes  int64
		totalBytes  int64
	}
	results := map[string]upgrade{}
	for i, tc := range []struct {
		name      string
		component string
	}{
		{name: "xattr", component: "containers"},
		{name: "no-xattr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := base
			if i == 0 {
				b = base.clone(t) // the last variant may consume the base bundle
			}
			v1 := b.commit(t, tc.name+"-v1", "embed bound image", func(root string) {
				embedBoundImage(t, root, app, "localhost/bound-app:v1", tc.component)
			})
			if tc.component != "" {
				x := v1.layerXattrs(t, -1)
				require.Equal(t, tc.component, x[boundImageDir+"/"]["user.component"],
					"umoci must carry user.component into the layer (entries with xattrs: %v)", x)
			}
			v2 := b.commit(t, tc.name+"-v2", "disable ssh password auth", func(root string) {
				writeFile(t, root, sshdDropIn, sshdDropInContent, 0o644)
			})

			out := filepath.Join(work, "out-"+tc.name)
			c1 := ociImage{Layout: out, Tag: "v1"}
			c2 := ociImage{Layout: out, Tag: "v2"}
			_, first := c.build(t, "--bootc", "--from", v1.Ref(), "--output", c1.Ref())
			_, next := c.build(t, "--bootc", "--from", v2.Ref(), "--output", c2.Ref(),
				"--previous-build", c1.Ref())
			c.mustRun(t, "verify", c2.Ref())

			d := c.diff(t, c1.Ref(), c2.Ref())
			plain := c.diff(t, v1.Ref(), v2.Ref())
			scenarioSummary{
				Scenario: "seed-one-file-" + tc.name, Fetched: d.BytesFetched, LayersFetched: d.LayersFetched,
				LayersTotal: d.LayersTotal, Unchunked: plain.BytesFetched, LowerBound: -1, BuildFirst: first, BuildNext: next,
				Note: "unchunked = the plain images, v2 = v1 plus one layer",
			}.log(t)
			u := upgrade{fetchLayers: d.LayersFetched, fetchBytes: d.BytesFetched, totalBytes: d.BytesTotal}
			var fetched []string
			for _, l := range d.Fetched {
				fetched = append(fetched, fmt.Sprintf("#%d %d B [%s]", l.Index, l.Size, strings.Join(l.Components, ",")))
			}
			results[tc.name] = u
			t.Logf("%s: upgrade v1 -> v2 fetches %d of %d layers, %d of %d bytes: %s",
				tc.name, u.fetchLayers, d.LayersTotal, u.fetchBytes, u.totalBytes, strings.Join(fetched, "; "))
			require.False(t, d.SameImage, "v2 differs from v1")

			if tc.component == "" {
				return
			}
			assert.LessOrEqual(t, u.fetchLayers, 2, "only the commit layer and the layer with the new file may change: %v", fetched)
			assert.Less(t, u.fetchBytes, int64(4<<20), "a one-file upgrade must fetch at most a few MB")
			var containers []diffLayer
			for _, l := range append(d.Fetched, d.Reused...) {
				if slices.Contains(l.Components, tc.component) {
					containers = append(containers, l)
				}
			}
			require.Len(t, containers, 1, "exactly one layer carries the %s component", tc.component)
			assert.Contains(t, d.Reused, containers[0], "the bound-image layer must be reused")
			assert.GreaterOrEqual(t, containers[0].Size, int64(boundAppSize), "the bound-image layer must hold the bound image")

			// The chunked image is a runnable container with the new file at /etc.
			p := newPodman(t)
			name := p.load(t, c2, "localhost/rechunker-seed:v2")
			got := p.run(t, "run", "--rm", "--network=none", name, "cat", "/"+sshdDropIn)
			assert.Equal(t, sshdDropInContent, got)
		})
	}
	if x, ok := results["xattr"]; ok {
		if n, ok := results["no-xattr"]; ok {
			t.Logf("upgrade bytes fetched: with user.component=containers %d (%d layers); without %d (%d layers)",
				x.fetchBytes, x.fetchLayers, n.fetchBytes, n.fetchLayers)
		}
	}
}

// diffReport is the part of `rechunker diff --json OLD NEW` the scenarios read.
type diffReport struct {
	LayersTotal   int         `json:"layers_total"`
	LayersFetched int         `json:"layers_fetched"`
	BytesTotal    int64       `json:"bytes_total"`
	BytesFetched  int64       `json:"bytes_fetched"`
	Fetched       []diffLayer `json:"fetched"`
	Reused        []diffLayer `json:"reused"`
	SameImage     bool        `json:"same_image"`
}

// diffLayer is one layer of a diff report.
type diffLayer struct {
	Index      int      `json:"index"`
	Digest     string   `json:"digest"`
	Size       int64    `json:"size"`
	Components []string `json:"components"`
}
