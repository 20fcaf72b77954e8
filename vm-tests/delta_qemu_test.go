//go:build qemuvm

package vmtests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// deltaSourcePrefix limits the delta's sources to the ostree objects of the old
// image, which a bootc host keeps in /sysroot/ostree/repo/objects.
const deltaSourcePrefix = "sysroot/ostree/repo/objects/"

// deltaSummary is the part of `rechunker delta --json` (delta.Summary) the test logs.
type deltaSummary struct {
	Layers []struct {
		Digest string `json:"digest"`
		DiffID string `json:"diff_id"`
		Kind   string `json:"kind"`
		Size   int64  `json:"size"`
		Bytes  int64  `json:"bytes"`
	} `json:"layers"`
	TargetBytes int64   `json:"target_bytes"`
	FetchBytes  int64   `json:"fetch_bytes"`
	DeltaBytes  int64   `json:"delta_bytes"`
	Seconds     float64 `json:"seconds"`
}

// deltaUpgrade is the upgrade-by-delta path, run on the host side against the
// sysroot that holds v1 (deployed, not yet booted): `rechunker delta v1 v2`
// with only v1's ostree objects as sources, `rechunker delta apply --repo` reading
// them from the sysroot's ostree/repo (what a bootc host has), then the
// reconstructed image R imported into that repository with the libostree client,
// only the layers whose diff_id v1 lacks, and deployed beside v1 after a local
// /etc change. It returns R's import; the caller makes the disk and boots it.
func (s *qemuSuite) deltaUpgrade(v1, v2, sysroot, v1Commit, v2Commit string, plain LayerDiff) Imported {
	t := s.t
	t.Helper()
	sysRepo := filepath.Join(sysroot, "ostree/repo")
	dfile := filepath.Join(s.work, "v1-v2.oci-delta")
	var sum deltaSummary
	require.NoError(t, json.Unmarshal(s.run(s.bin, "delta", "--json", "--source-prefix", deltaSourcePrefix,
		"--output", dfile, "oci:"+v1, "oci:"+v2), &sum))
	st, err := os.Stat(dfile)
	require.NoError(t, err)
	require.Equal(t, st.Size(), sum.DeltaBytes, "the delta summary's size is the file's")
	kinds := map[string]int{}
	for _, l := range sum.Layers {
		kinds[l.Kind]++
	}
	t.Logf("delta: %d bytes (%s) for v2's %d layers (%d bytes; the layers v1 lacks: %d bytes), made in %.1f s; layers by kind: %v",
		sum.DeltaBytes, mb(sum.DeltaBytes), len(sum.Layers), sum.TargetBytes, sum.FetchBytes, sum.Seconds, kinds)
	t.Logf("plain upgrade download (rechunker diff bytes_fetched): %d bytes (%s) in %d layers; the delta is %.1f%% of it",
		plain.BytesFetched, mb(plain.BytesFetched), len(plain.Fetched), 100*float64(sum.DeltaBytes)/float64(max(plain.BytesFetched, 1)))
	assert.Equal(t, plain.BytesFetched, sum.FetchBytes, "rechunker diff and rechunker delta agree on what v1 lacks")
	assert.Less(t, sum.DeltaBytes, plain.BytesFetched, "the delta is smaller than the plain download")

	s.step("delta apply --repo %s --source oci:%s", sysRepo, v1)
	archive := filepath.Join(s.work, "v2-from-delta.oci-archive")
	start := time.Now()
	s.run(s.bin, "delta", "apply", dfile, "--repo", sysRepo, "--source", "oci:"+v1, "--output", "oci-archive:"+archive)
	took := time.Since(start)
	st, err = os.Stat(archive)
	require.NoError(t, err)
	t.Logf("delta apply: %.1f s, wrote %d bytes (%s)", took.Seconds(), st.Size(), mb(st.Size()))

	// The client reads OCI layouts; an oci-archive is one, tarred.
	layout := filepath.Join(s.work, "v2-from-delta")
	require.NoError(t, os.MkdirAll(layout, 0o755))
	s.run("tar", "-xf", archive, "-C", layout)
	rRef := "oci:" + layout
	assert.Equal(t, s.diffIDs("oci:"+v2), s.diffIDs(rRef), "the reconstructed image has v2's diff_ids")

	d := s.layerDiff("oci:"+v1, rRef)
	assert.Equal(t, diffIDSet(plain.Fetched), diffIDSet(d.Fetched), "the reconstructed image's new layers are v2's, by diff_id")
	fetched := Digests(d.Fetched)
	recompressed := len(Subtract(fetched, Digests(plain.Fetched)))
	t.Logf("reconstructed image: %d layers to import (%d bytes), %d of them with a digest v2 does not have (recompressed)",
		len(fetched), d.BytesFetched, recompressed)
	s.requireSeedNotFetchedRef(rRef, fetched)

	s.step("import the reconstructed image into the sysroot's repository (only the %d layers v1 lacks by diff_id)", len(fetched))
	imp := s.importImage(sysRepo, layout, fetched)
	t.Logf("delta upgrade imported %d of %d layers, %d objects written", len(imp.LayersImported), imp.LayersTotal, imp.ObjectsWritten)
	assert.Equal(t, v2Commit, imp.Commit, "the reconstructed image carries v2's ostree commit")

	s.step("local /etc change in v1's deployment, then ostree admin deploy the reconstructed image")
	etcs, err := filepath.Glob(filepath.Join(sysroot, "ostree/deploy", OSName, "deploy", v1Commit+".*", "etc"))
	require.NoError(t, err)
	require.Len(t, etcs, 1, "v1's deployment /etc")
	require.NoError(t, os.WriteFile(filepath.Join(etcs[0], filepath.Base(localEtc)), []byte("local-change\n"), 0o644))
	s.run("ostree", "admin", "deploy", "--sysroot="+sysroot, "--os="+OSName, imp.Commit)
	return imp
}

// diffIDs returns the image config's rootfs.diff_ids.
func (s *qemuSuite) diffIDs(ref string) []string {
	var cfg struct {
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	require.NoError(s.t, json.Unmarshal(s.run("skopeo", "inspect", "--config", "--raw", ref), &cfg))
	require.NotEmpty(s.t, cfg.RootFS.DiffIDs, "%s has diff_ids", ref)
	return cfg.RootFS.DiffIDs
}

func diffIDSet(ls []LayerRef) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.DiffID)
	}
	sort.Strings(out)
	return out
}

func mb(n int64) string {
	return fmt.Sprintf("%.2f MB", float64(n)/1e6)
}
