package bootc

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/bootc/bootctest"
)

func fixtureDir(t *testing.T) string {
	d := "/work/shared/fixtures/bootc"
	if _, err := os.Stat(filepath.Join(d, "manifest1.json")); err != nil {
		t.Skipf("fixture manifests not available: %v", err)
	}
	return d
}

// layoutFromManifest writes an OCI layout holding a real manifest's layer list. The
// layer blobs are absent and the config is FAKE: its diff_ids are derived from the
// compressed digests (one distinct value per layer), which is all Diff reads.
func layoutFromManifest(t *testing.T, file string) *bootctest.Built {
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	var m imgspecv1.Manifest
	require.NoError(t, json.Unmarshal(data, &m))
	m.MediaType = imgspecv1.MediaTypeImageManifest
	cfg := imgspecv1.Image{Platform: imgspecv1.Platform{Architecture: "amd64", OS: "linux"}, RootFS: imgspecv1.RootFS{Type: "layers"}}
	for _, l := range m.Layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromString("fake diff_id of "+l.Digest.String()))
	}
	return bootctest.WriteLayout(t, t.TempDir(), nil, m, cfg)
}

func TestDiffFixtureManifests(t *testing.T) {
	dir := fixtureDir(t)
	old := layoutFromManifest(t, filepath.Join(dir, "manifest1.json"))
	new := layoutFromManifest(t, filepath.Join(dir, "manifest2.json"))
	r := Diff(context.Background(), bootctest.Open(t, old.Ref), bootctest.Open(t, new.Ref), DiffOptions{})
	assert.Equal(t, 51, r.LayersTotal)
	assert.Equal(t, 4, r.LayersFetched)
	assert.Len(t, r.Reused, 47)
	assert.Len(t, r.Removed, 4)
	require.Len(t, r.Fetched, 4)
	// Fetched is in manifest order (layer 0, the commit layer, first); ostree-ext's own
	// test lists the same sets sorted by digest: added 0b5d930f..cb9b8a4a, removed
	// 0ff8b1fd..76b83eea.
	assert.Equal(t, 0, r.Fetched[0].Index)
	sorted := func(ls []DiffLayer) []string {
		var out []string
		for _, l := range ls {
			out = append(out, l.Digest.String())
		}
		sort.Strings(out)
		return out
	}
	fetched, removed := sorted(r.Fetched), sorted(r.Removed)
	assert.True(t, strings.HasPrefix(fetched[0], "sha256:0b5d930f"), fetched[0])
	assert.True(t, strings.HasPrefix(fetched[3], "sha256:cb9b8a4a"), fetched[3])
	assert.True(t, strings.HasPrefix(removed[0], "sha256:0ff8b1fd"), removed[0])
	assert.True(t, strings.HasPrefix(removed[3], "sha256:76b83eea"), removed[3])
	var sum int64
	for _, l := range r.Fetched {
		sum += l.Size
	}
	assert.Equal(t, sum, r.BytesFetched)
	assert.Less(t, r.BytesFetched, r.BytesTotal)

	// Same image: bootc's fast path downloads nothing.
	same := Diff(context.Background(), bootctest.Open(t, new.Ref), bootctest.Open(t, new.Ref), DiffOptions{})
	assert.True(t, same.SameImage)
	assert.Zero(t, same.LayersFetched)
}

// TestDiffAgreesWithSkopeoJq recomputes the fetched set from `skopeo inspect --raw`
// output with jq and compares it with Diff.
func TestDiffAgreesWithSkopeoJq(t *testing.T) {
	for _, tool := range []string{"skopeo", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	dir := fixtureDir(t)
	old := layoutFromManifest(t, filepath.Join(dir, "manifest1.json"))
	new := layoutFromManifest(t, filepath.Join(dir, "manifest2.json"))
	raw := func(ref string) string {
		out, err := exec.Command("skopeo", "inspect", "--raw", ref).Output()
		require.NoError(t, err, ref)
		p := filepath.Join(t.TempDir(), "m.json")
		require.NoError(t, os.WriteFile(p, out, 0o644))
		return p
	}
	oldJSON, newJSON := raw(old.Ref), raw(new.Ref)
	out, err := exec.Command("jq", "-r", "--slurpfile", "old", oldJSON,
		`([$old[0].layers[].digest]) as $o | .layers[] | select(.digest as $d | ($o | index($d)) == null) | "\(.digest) \(.size)"`,
		newJSON).Output()
	require.NoError(t, err)
	want := strings.Fields(strings.TrimSpace(string(out)))
	r := Diff(context.Background(), bootctest.Open(t, old.Ref), bootctest.Open(t, new.Ref), DiffOptions{NoDiffID: true})
	var got []string
	for _, l := range r.Fetched {
		got = append(got, l.Digest.String(), jsonInt(l.Size))
	}
	assert.Equal(t, want, got)
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

// TestDiffConfigFileChange is the unit-level form of "only a config file changed": the
// upgrade fetches the commit layer and the one chunk holding /etc.
func TestDiffConfigFileChange(t *testing.T) {
	old := bootctest.Base().Build(t)
	img := bootctest.Base()
	for i := range img.Files {
		if img.Files[i].Path == "/usr/etc/os-release" {
			img.Files[i].Data = "ID=test\nVERSION=2\n"
		}
	}
	new := img.Build(t)
	r := Diff(context.Background(), bootctest.Open(t, old.Ref), bootctest.Open(t, new.Ref), DiffOptions{})
	require.Equal(t, 2, r.LayersFetched, "%+v", r.Fetched)
	assert.Equal(t, 0, r.Fetched[0].Index, "commit layer")
	assert.Equal(t, 3, r.Fetched[1].Index)
	assert.Equal(t, []string{"rpmostree-unpackaged-content"}, r.Fetched[1].Components)
	assert.Equal(t, r.Fetched[0].Size+r.Fetched[1].Size, r.BytesFetched)
}

// TestDiffDiffIDMatching: a recompressed but identical layer is reused by newer bootc
// (diff_id match) and fetched by older bootc.
func TestDiffDiffIDMatching(t *testing.T) {
	old := bootctest.Base().Build(t)
	img := bootctest.Base()
	img.Labels = map[string]string{"version": "2"} // a new config, or bootc's fast path applies
	img.EditImage = func(m *imgspecv1.Manifest, c *imgspecv1.Image) {
		// Pretend layer 2 was recompressed: new blob digest, same diff_id.
		m.Layers[2].Digest = digest.FromString("recompressed")
	}
	new := img.Build(t)
	newer := Diff(context.Background(), bootctest.Open(t, old.Ref), bootctest.Open(t, new.Ref), DiffOptions{})
	older := Diff(context.Background(), bootctest.Open(t, old.Ref), bootctest.Open(t, new.Ref), DiffOptions{NoDiffID: true})
	assert.Equal(t, 0, newer.LayersFetched)
	assert.Equal(t, "diff_id", newer.Reused[2].ReusedBy)
	require.Equal(t, 1, older.LayersFetched)
	assert.Equal(t, 2, older.Fetched[0].Index)
}
