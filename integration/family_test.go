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

	"github.com/rechunker-dev/rechunker/rechunk"
)

// TestImageFamily builds a family of Debian bookworm bootc images, as the parallel jobs
// of one CI matrix would: the base (bookwormBootc), a variant that adds python3, curl
// and gpgv with their dependencies, and a variant without openssh-server. It measures
// what switching from the base to each variant downloads (rechunker diff), against the
// changed-files bound (gzip -6 of every new or changed file), three ways: every image
// chunked alone (no history), each variant's first release with the base as --family,
// and a variant's next release with its own previous build and the base as family.
func TestImageFamily(t *testing.T) {
	requireRoot(t)
	requireTools(t, "debootstrap", "umoci", "tar", "zstd")
	c := newCLI(t)

	// Variants made from the base's tree in a chroot, as a Containerfile's RUN apt-get
	// would: the same kernel, initramfs and untouched packages, byte for byte.
	base := bookwormBootc().tarball(t)
	add, _ := aptRootfs(t, base, "family+python3-1", func(apt func(...string) string) []string {
		apt("update")
		apt("-y", "install", "--no-install-recommends", "python3", "curl", "gpgv")
		return nil
	})
	remove, _ := aptRootfs(t, base, "family-ssh-1", func(apt func(...string) string) []string {
		apt("-y", "purge", "openssh-server", "openssh-sftp-server")
		return nil
	})
	tarballs := map[string]string{"base": base, "add": add, "remove": remove}
	trees := t.TempDir()
	plain := map[string]ociImage{}
	for name, tb := range tarballs {
		plain[name] = cachedRootfsImage(t, tb, bootcConfig...)
		extractTarball(t, tb, filepath.Join(trees, name))
	}
	bound := map[string]int64{}
	for _, v := range []string{"add", "remove"} {
		ch := diffTrees(t, filepath.Join(trees, "base"), filepath.Join(trees, v))
		bound[v] = ch.Gzipped
		t.Logf("base -> %s: %d paths new or changed, %d removed; changed-files bound %d B", v, len(ch.Paths), ch.Removed, ch.Gzipped)
	}
	require.NotZero(t, bound["add"])

	out := filepath.Join(t.TempDir(), "out")
	img := func(tag string) ociImage { return ociImage{Layout: out, Tag: tag} }
	labels := map[string]map[string]string{}
	build := func(tag string, args ...string) ociImage {
		o, _ := c.build(t, append([]string{"--bootc", "--output", img(tag).Ref()}, args...)...)
		digests, err := rechunk.ComponentDigests(o.Labels[rechunk.PlanLabel])
		require.NoError(t, err)
		labels[tag] = digests
		return img(tag)
	}
	// switchCost is what a client of image from downloads to switch to image to, and
	// the fetched layers that hold no component new or changed in to and are not a
	// layer of from that only lost components (orphans: regrouping alone made them).
	switchCost := func(from, to string) (diffReport, []diffLayer) {
		d := c.diff(t, img(from).Ref(), img(to).Ref())
		var orphans []diffLayer
		for _, l := range d.Fetched {
			if l.Index == 0 {
				continue // the commit layer: new with every tree
			}
			justified := false
			for _, comp := range l.Components {
				old, ok := labels[from][comp]
				justified = justified || !ok || old != labels[to][comp]
			}
			if !justified && !lostOnly(t, c, img(from), img(to), l.Components) {
				orphans = append(orphans, l)
			}
		}
		return d, orphans
	}

	cBase := build("base", "--from", plain["base"].Ref())
	type result struct {
		fetched int64
		layers  int
		orphans int
	}
	results := map[string]result{}
	for _, mode := range []string{"alone", "family"} {
		for _, v := range []string{"add", "remove"} {
			tag := v + "-" + mode
			args := []string{"--from", plain[v].Ref()}
			if mode == "family" {
				args = append(args, "--family", cBase.Ref())
			}
			build(tag, args...)
			d, orphans := switchCost("base", tag)
			results[tag] = result{d.BytesFetched, d.LayersFetched, len(orphans)}
			t.Logf("switch base -> %s: %d of %d layers, %d B = %.2fx the changed-files bound; %d fetched layers hold only components the base has unchanged: %s; fetched: %s",
				tag, d.LayersFetched, d.LayersTotal, d.BytesFetched, float64(d.BytesFetched)/float64(bound[v]), len(orphans), describeLayers(orphans), d.describe())
		}
	}
	// Planned alone, the variant still regroups a few shared layers (issue 22's goal of
	// none is not met: the greedy budget gives the base's last layers to the variant's
	// new large components); these bounds catch a regression, the log has the figures.
	assert.LessOrEqual(t, results["add-alone"].orphans, 6, "regrouped layers, variant planned alone")
	assert.LessOrEqual(t, float64(results["add-alone"].fetched), 2.5*float64(bound["add"]), "switch to the variant planned alone")
	// With --family the variant follows the base: only layers with new or changed
	// components are fetched.
	assert.Zero(t, results["add-family"].orphans, "with --family no layer is regrouped")
	assert.LessOrEqual(t, float64(results["add-family"].fetched), 1.25*float64(bound["add"]), "switch to the variant planned with --family")
	assert.Less(t, float64(results["add-family"].fetched), 0.6*float64(results["add-alone"].fetched), "--family at least halves the switch")
	assert.LessOrEqual(t, float64(results["remove-family"].fetched), 1.01*float64(results["remove-alone"].fetched))

	// The variant's next release (a config file changed), with its own previous build
	// and the base as family, against its own history alone.
	// The cached layout is shared: derive from a copy.
	layoutCopy := filepath.Join(t.TempDir(), "add")
	run(t, "cp", "-a", plain["add"].Layout, layoutCopy)
	next := ociImage{Layout: layoutCopy, Tag: plain["add"].Tag}.derive(t, "add-next", "edit motd", func(root string) {
		writeFile(t, root, "etc/motd", "variant release 2\n", 0o644)
	})
	build("add-next-own", "--from", next.Ref(), "--previous-build", img("add-family").Ref())
	build("add-next-family", "--from", next.Ref(), "--previous-build", img("add-family").Ref(), "--family", cBase.Ref())
	own := c.diff(t, img("add-family").Ref(), img("add-next-own").Ref())
	withFam := c.diff(t, img("add-family").Ref(), img("add-next-family").Ref())
	sw, orphans := switchCost("base", "add-next-family")
	t.Logf("variant release 2: its own upgrade fetches %d B with --family, %d B with its history alone; switch base -> release 2 %d B = %.2fx the bound, %d orphans",
		withFam.BytesFetched, own.BytesFetched, sw.BytesFetched, float64(sw.BytesFetched)/float64(bound["add"]), len(orphans))
	assert.LessOrEqual(t, withFam.BytesFetched, own.BytesFetched, "a family never costs the image's own upgrade")
	assert.Zero(t, len(orphans))
	assert.LessOrEqual(t, float64(sw.BytesFetched), 1.25*float64(bound["add"])+float64(64<<10), "switch to release 2 (bound plus the motd change)")

	// The same siblings in the plain format (--image-format plain, issue 23): no commit
	// layer in the switch, and plain chunks are smaller. Logged for docs/benchmarks.md;
	// the bound only catches a regression (the archive moves between runs).
	pBase := build("p-base", "--image-format", "plain", "--from", plain["base"].Ref())
	plainSwitch := map[string]diffReport{}
	for _, mode := range []string{"alone", "family"} {
		args := []string{"--image-format", "plain", "--from", plain["add"].Ref()}
		if mode == "family" {
			args = append(args, "--family", pBase.Ref())
		}
		build("p-add-"+mode, args...)
		d := c.diff(t, pBase.Ref(), img("p-add-"+mode).Ref())
		plainSwitch[mode] = d
		t.Logf("plain format, switch base -> add %s: %d of %d layers, %d B = %.3fx the changed-files bound",
			mode, d.LayersFetched, d.LayersTotal, d.BytesFetched, float64(d.BytesFetched)/float64(bound["add"]))
	}
	assert.LessOrEqual(t, float64(plainSwitch["family"].BytesFetched), 1.15*float64(bound["add"]), "plain switch with --family")
	assert.Less(t, plainSwitch["family"].BytesFetched, results["add-family"].fetched, "plain switch below the ostree-format one")

	// inspect --family: the shared layers are the ones the switch does not fetch.
	var rep struct {
		Family []struct {
			Image        string `json:"image"`
			SharedLayers int    `json:"shared_layers"`
			SwitchBytes  int64  `json:"switch_bytes"`
		} `json:"family"`
	}
	c.json(t, &rep, "inspect", "--json", "--family", cBase.Ref(), img("add-family").Ref())
	require.Len(t, rep.Family, 1)
	d := c.diff(t, cBase.Ref(), img("add-family").Ref())
	assert.Equal(t, d.LayersTotal-d.LayersFetched, rep.Family[0].SharedLayers, "inspect --family counts the layers diff reuses")
	assert.Equal(t, d.BytesFetched, rep.Family[0].SwitchBytes)
}

// lostOnly reports whether some layer of from holds exactly comps plus components to
// does not have: a layer that only lost members (removed packages) is explained.
func lostOnly(t *testing.T, c cli, from, to ociImage, comps []string) bool {
	t.Helper()
	var fromRep, toRep struct {
		Layers []struct {
			Components []string `json:"components"`
		} `json:"layers"`
	}
	c.json(t, &fromRep, "inspect", "--json", from.Ref())
	c.json(t, &toRep, "inspect", "--json", to.Ref())
	inTo := map[string]bool{}
	for _, l := range toRep.Layers {
		for _, comp := range l.Components {
			inTo[comp] = true
		}
	}
	want := strings.Join(slices.Sorted(slices.Values(comps)), ",")
	for _, l := range fromRep.Layers {
		var kept []string
		for _, comp := range l.Components {
			if inTo[comp] {
				kept = append(kept, comp)
			}
		}
		slices.Sort(kept)
		if len(kept) < len(l.Components) && strings.Join(kept, ",") == want {
			return true
		}
	}
	return false
}

func describeLayers(ls []diffLayer) string {
	var out []string
	for _, l := range ls {
		out = append(out, fmt.Sprintf("#%d %d B [%s]", l.Index, l.Size, strings.Join(l.Components, ",")))
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, "; ")
}
