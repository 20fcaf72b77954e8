//go:build integration

package integration

import (
	"path/filepath"
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
	c.requireCommand(t, "build", "--bootc", "--from", "--output", "--previous-build")
	c.requireCommand(t, "diff", "--json")
	c.requireCommand(t, "verify")

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
			c.mustRun(t, "build", "--bootc", "--from", v1.Ref(), "--output", c1.Ref())
			c.mustRun(t, "build", "--bootc", "--from", v2.Ref(), "--output", c2.Ref(),
				"--previous-build", c1.Ref())
			c.mustRun(t, "verify", c2.Ref())

			var d diffReport
			c.json(t, &d, "diff", "--json", c1.Ref(), c2.Ref())
			u := upgrade{totalBytes: d.NewSize}
			var fetched []string
			for _, l := range d.Layers {
				if !l.Reused {
					u.fetchLayers++
					u.fetchBytes += l.Size
					fetched = append(fetched, l.Name)
				}
			}
			results[tc.name] = u
			t.Logf("%s: upgrade v1 -> v2 fetches %d layers, %d bytes of %d (%s)",
				tc.name, u.fetchLayers, u.fetchBytes, u.totalBytes, strings.Join(fetched, "; "))

			if tc.component == "" {
				return
			}
			assert.LessOrEqual(t, u.fetchLayers, 2, "only the commit layer and the layer with the new file may change: %v", fetched)
			assert.Less(t, u.fetchBytes, int64(4<<20), "a one-file upgrade must fetch at most a few MB")
			var containers *diffLayer
			for i, l := range d.Layers {
				if strings.Contains(","+l.Components+",", ",containers,") {
					containers = &d.Layers[i]
				}
			}
			require.NotNil(t, containers, "no layer carries the containers component: %+v", d.Layers)
			assert.True(t, containers.Reused, "the bound-image layer must be reused")
			assert.GreaterOrEqual(t, containers.Size, int64(boundAppSize), "the bound-image layer must hold the bound image")

			// The chunked image is a runnable container with the new file at /etc.
			p := newPodman(t)
			p.run(t, "pull", "-q", c2.Ref())
			got := p.run(t, "run", "--rm", "--network=none", c2.Ref(), "cat", "/"+sshdDropIn)
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

// diffReport is what `rechunker diff --json OLD NEW` prints.
type diffReport struct {
	NewSize int64       `json:"new_size"`
	Layers  []diffLayer `json:"layers"`
}

// diffLayer is one layer of the new image in a diff report.
type diffLayer struct {
	Name       string `json:"name"`
	Components string `json:"components"`
	Size       int64  `json:"size"`
	Reused     bool   `json:"reused"`
}
