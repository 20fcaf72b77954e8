//go:build integration

package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSecurityUpdate is the upgrade a Debian-based bootc image ships most often: the next
// build of the same image picks up the security fixes and point-release updates
// published since (bookworm-security and bookworm-updates enabled, `apt-get upgrade`).
// Both releases are built from scratch as one-layer images, as a CI rebuild makes them,
// so the plain upgrade downloads the whole image again. Chunked with --previous-build,
// the upgrade must download at most 1.3x the gzip -6 size of the files that really
// changed (the lower bound any layout can reach, computed here from the two trees) and
// a small fraction of the plain upgrade. (The commit layer, which every upgrade of an
// ostree-ext image downloads, is added to the bound; see the assertion.)
func TestSecurityUpdate(t *testing.T) {
	requireRoot(t)
	requireTools(t, "debootstrap", "umoci", "tar", "zstd", "chroot")
	c := newCLI(t)

	sp := newSecurityPair(t)
	base, upd, v2, v3 := sp.base, sp.update, sp.v2, sp.v3
	t.Logf("apt-get upgrade upgraded %d packages: %s", len(upd.Upgraded), strings.Join(upd.Upgraded, "; "))

	trees := t.TempDir()
	oldRoot, newRoot := filepath.Join(trees, "v2"), filepath.Join(trees, "v3")
	extractTarball(t, base, oldRoot)
	extractTarball(t, upd.Tarball, newRoot)
	change := diffTrees(t, oldRoot, newRoot)
	t.Logf("v2 -> v3 changes %d paths (%d removed); changed contents %d B, gzip -6 %d B; biggest: %s",
		len(change.Paths), change.Removed, change.Raw, change.Gzipped, change.top(8))
	require.NotZero(t, change.Gzipped, "the update changes file contents")

	out := filepath.Join(t.TempDir(), "out")
	c2, c3 := ociImage{Layout: out, Tag: "v2"}, ociImage{Layout: out, Tag: "v3"}
	_, first := c.build(t, "--bootc", "--from", v2.Ref(), "--output", c2.Ref())
	b3, next := c.build(t, "--bootc", "--from", v3.Ref(), "--output", c3.Ref(), "--previous-build", c2.Ref())
	c.mustRun(t, "verify", c3.Ref())
	checkTransientBuild(t, v3, c2, b3)

	plain := c.diff(t, v2.Ref(), v3.Ref())
	d := c.diff(t, c2.Ref(), c3.Ref())
	t.Logf("chunked upgrade fetches %d of %d layers, %d of %d B: %s", d.LayersFetched, d.LayersTotal,
		d.BytesFetched, d.BytesTotal, d.describe())
	scenarioSummary{
		Scenario: "debian-security-update", Fetched: d.BytesFetched, LayersFetched: d.LayersFetched,
		LayersTotal: d.LayersTotal, Unchunked: plain.BytesFetched, LowerBound: change.Gzipped,
		BuildFirst: first, BuildNext: next,
		Note: fmt.Sprintf("%d packages upgraded, %d layers reused", len(upd.Upgraded), b3.Reused),
	}.log(t)

	require.False(t, d.SameImage)
	// The commit layer (every dirtree and dirmeta object of the tree) is downloaded on
	// every upgrade of an ostree-ext image whatever the layout, so the bound a chunked
	// upgrade can reach is the changed files plus that layer. Both ratios are logged.
	commit, ok := d.commitLayer()
	require.True(t, ok, "the chunked image has a commit layer")
	bound := change.Gzipped + commit.Size
	t.Logf("fetched / changed files = %.2f; fetched / (changed files + commit layer %d B) = %.2f; chunk layers only / changed files = %.2f",
		float64(d.BytesFetched)/float64(change.Gzipped), commit.Size, float64(d.BytesFetched)/float64(bound),
		float64(d.BytesFetched-commit.Size)/float64(change.Gzipped))
	assert.LessOrEqual(t, float64(d.BytesFetched), 1.3*float64(bound),
		"chunked upgrade fetches %d B, more than 1.3x the %d B of changed content and commit layer: %s",
		d.BytesFetched, bound, d.describe())
	assert.Less(t, d.BytesFetched, plain.BytesFetched/10,
		"chunked upgrade (%d B) must be far below the plain image's (%d B)", d.BytesFetched, plain.BytesFetched)

	// Release notes: diff --changelog lists exactly the packages whose versions differ,
	// by dpkg-query in each tree, on the plain images and on the chunked ones.
	want := dpkgChanges(t, oldRoot, newRoot)
	require.NotEmpty(t, want.Changed)
	for _, pair := range [][2]string{{v2.Ref(), v3.Ref()}, {c2.Ref(), c3.Ref()}} {
		var got changelogReport
		c.json(t, &got, "diff", "--changelog=json", pair[0], pair[1])
		assert.Equal(t, want, got.normalize(), "diff --changelog %s %s", pair[0], pair[1])
	}
	t.Logf("diff --changelog: %d changed, %d added, %d removed packages, as dpkg-query says",
		len(want.Changed), len(want.Added), len(want.Removed))

	// File-level deltas (rechunker delta, oci-delta format) of both pairs, beside the
	// plain downloads: the chunked pair's delta carries the commit layer too.
	var dPlain, dChunked struct {
		BytesFetched int64 `json:"bytes_fetched"`
		Delta        struct {
			DeltaBytes int64 `json:"delta_bytes"`
			Layers     []struct {
				Kind  string `json:"kind"`
				Bytes int64  `json:"bytes"`
			} `json:"layers"`
		} `json:"delta"`
	}
	c.json(t, &dPlain, "diff", "--delta", "--json", v2.Ref(), v3.Ref())
	c.json(t, &dChunked, "diff", "--delta", "--json", c2.Ref(), c3.Ref())
	require.NotEmpty(t, dChunked.Delta.Layers)
	commitShare := dChunked.Delta.Layers[0].Bytes // layers in manifest order: the commit layer first
	t.Logf("deltas: plain images %d B (download %d B); chunked images %d B (download %d B), of which the commit layer %d B",
		dPlain.Delta.DeltaBytes, dPlain.BytesFetched, dChunked.Delta.DeltaBytes, dChunked.BytesFetched, commitShare)
	assert.Less(t, dChunked.Delta.DeltaBytes, dChunked.BytesFetched/3, "a delta is far below the chunked download")
	assert.LessOrEqual(t, dChunked.Delta.DeltaBytes-commitShare, dPlain.Delta.DeltaBytes,
		"without its commit layer, the chunked pair's delta is no bigger than the plain pair's")

	// The same pair at 128 layers, and at 64 with every package kept whole (what the
	// volatility split saves), logged for docs/benchmarks.md.
	for _, v := range []struct {
		name  string
		flags []string
	}{
		{"128 layers", []string{"--max-layers", "128"}},
		{"64 layers, --no-volatile-split", []string{"--no-volatile-split"}},
	} {
		dir := filepath.Join(t.TempDir(), "out")
		o2, o3 := ociImage{Layout: dir, Tag: "v2"}, ociImage{Layout: dir, Tag: "v3"}
		c.build(t, append([]string{"--bootc", "--from", v2.Ref(), "--output", o2.Ref()}, v.flags...)...)
		c.build(t, append([]string{"--bootc", "--from", v3.Ref(), "--output", o3.Ref(), "--previous-build", o2.Ref()}, v.flags...)...)
		dv := c.diff(t, o2.Ref(), o3.Ref())
		cv, _ := dv.commitLayer()
		t.Logf("%s: fetches %d of %d layers, %d B = %.2f x (changed files + commit layer %d B)", v.name,
			dv.LayersFetched, dv.LayersTotal, dv.BytesFetched, float64(dv.BytesFetched)/float64(change.Gzipped+cv.Size), cv.Size)
	}
}

// changelogReport is what diff --changelog json prints, reduced to what dpkg-query can
// say: "name:arch old -> new".
type changelogReport struct {
	Added, Removed, Changed []struct{ Name, Arch, Old, New string }
}

type changeSet struct{ Added, Removed, Changed []string }

func (r changelogReport) normalize() changeSet {
	f := func(l []struct{ Name, Arch, Old, New string }) []string {
		out := []string{}
		for _, c := range l {
			out = append(out, fmt.Sprintf("%s:%s %s -> %s", c.Name, c.Arch, c.Old, c.New))
		}
		sort.Strings(out)
		return out
	}
	return changeSet{Added: f(r.Added), Removed: f(r.Removed), Changed: f(r.Changed)}
}

// dpkgChanges compares the installed packages of two extracted Debian trees as
// dpkg-query reports them.
func dpkgChanges(t *testing.T, oldRoot, newRoot string) changeSet {
	t.Helper()
	requireTools(t, "dpkg-query")
	list := func(root string) map[string]string {
		out, err := exec.Command("dpkg-query", "--admindir="+filepath.Join(root, "var/lib/dpkg"), "-W",
			"-f", "${db:Status-Abbrev}\t${Package}:${Architecture}\t${Version}\n").Output()
		require.NoError(t, err, "dpkg-query in %s", root)
		m := map[string]string{}
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			f := strings.Split(l, "\t")
			require.Len(t, f, 3, "dpkg-query line %q", l)
			if strings.HasPrefix(f[0], "ii") {
				m[f[1]] = f[2]
			}
		}
		return m
	}
	o, n := list(oldRoot), list(newRoot)
	cs := changeSet{Added: []string{}, Removed: []string{}, Changed: []string{}}
	for k, v := range n {
		switch ov, ok := o[k]; {
		case !ok:
			cs.Added = append(cs.Added, fmt.Sprintf("%s %s -> %s", k, "", v))
		case ov != v:
			cs.Changed = append(cs.Changed, fmt.Sprintf("%s %s -> %s", k, ov, v))
		}
	}
	for k, v := range o {
		if _, ok := n[k]; !ok {
			cs.Removed = append(cs.Removed, fmt.Sprintf("%s %s -> %s", k, v, ""))
		}
	}
	sort.Strings(cs.Added)
	sort.Strings(cs.Removed)
	sort.Strings(cs.Changed)
	return cs
}

// checkTransientBuild builds v3 as a CI runner would: an empty store thrown away after,
// --transient-store, the previous release pulled into a local layout. The image must be
// the one the kept store gave (want), the previous release's blobs must be linked, not
// copied, and no content object may be left in the store.
func checkTransientBuild(t *testing.T, v3 ociImage, prev ociImage, want buildOutput) {
	ci := newCLI(t)
	store := filepath.Join(t.TempDir(), "store")
	out := ociImage{Layout: filepath.Join(t.TempDir(), "ci"), Tag: "v3"}
	got, took := ci.build(t, "--bootc", "--transient-store", "--store", store, "--from", v3.Ref(),
		"--output", out.Ref(), "--previous-build", prev.Ref())
	t.Logf("transient-store build with an empty store: %.1fs, %d layers reused", took.Seconds(), got.Reused)
	assert.Equal(t, want.ManifestDigest, got.ManifestDigest, "a transient store gives the same image")
	ci.mustRun(t, "verify", out.Ref())
	objects, err := filepath.Glob(filepath.Join(store, "objects", "*", "*.file*"))
	require.NoError(t, err)
	assert.Empty(t, objects, "no content object outlives a transient build")
	linked := 0
	entries, err := os.ReadDir(filepath.Join(out.Layout, "blobs", "sha256"))
	require.NoError(t, err)
	for _, e := range entries {
		a, errA := os.Stat(filepath.Join(out.Layout, "blobs", "sha256", e.Name()))
		b, errB := os.Stat(filepath.Join(prev.Layout, "blobs", "sha256", e.Name()))
		if errA == nil && errB == nil && os.SameFile(a, b) {
			linked++
		}
	}
	assert.GreaterOrEqual(t, linked, got.Reused, "every reused blob of the previous release is a link to it")
}
