package vmtests

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRechunkerDiffCLI runs the host side of the VM suite's download
// prediction without a VM: two images made with umoci (v2 = v1 plus one
// layer), read with skopeo, compared by the real `rechunker diff --json`.
// It proves the suite's parser reads the CLI's actual output and that the
// CLI and the suite's manifest comparison agree.
func TestRechunkerDiffCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the rechunker CLI")
	}
	for _, tool := range []string{"umoci", "skopeo", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	run := func(c Cmd) []byte {
		t.Helper()
		res, err := Run(ctx, c, nil)
		require.NoError(t, err)
		return res.Stdout
	}

	root, err := filepath.Abs("..")
	require.NoError(t, err)
	bin := filepath.Join(dir, "rechunker")
	require.NoError(t, BuildRechunker(ctx, root, bin))

	layout := filepath.Join(dir, "layout")
	run(Cmd{Name: "umoci", Args: []string{"init", "--layout", layout}})
	run(Cmd{Name: "umoci", Args: []string{"new", "--image", layout + ":v1"}})
	addLayer := func(from, to, file, content string) {
		bundle := filepath.Join(dir, "bundle-"+filepath.Base(file))
		run(Cmd{Name: "umoci", Args: []string{"unpack", "--rootless", "--image", layout + ":" + from, bundle}})
		require.NoError(t, os.MkdirAll(filepath.Join(bundle, "rootfs", "usr", "lib"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(bundle, "rootfs", file), []byte(content), 0o644))
		run(Cmd{Name: "umoci", Args: []string{"repack", "--image", layout + ":" + to, bundle}})
	}
	addLayer("v1", "v1", "usr/lib/a", "first layer")
	addLayer("v1", "v1", "usr/lib/b", "second layer")
	addLayer("v1", "v2", "etc-file", "only in v2")

	ref := func(tag string) string { return "oci:" + layout + ":" + tag }
	m1, err := ParseManifest(run(SkopeoInspectRaw(ref("v1"))))
	require.NoError(t, err)
	m2, err := ParseManifest(run(SkopeoInspectRaw(ref("v2"))))
	require.NoError(t, err)
	require.Len(t, m1.Layers, 2)
	require.Len(t, m2.Layers, 3)
	byDigest := Digests(NewLayers(m1, m2))
	require.Equal(t, []string{m2.Layers[2].Digest}, byDigest)

	for _, noDiffID := range []bool{true, false} {
		d, err := ParseLayerDiff(run(RechunkerDiff(bin, ref("v1"), ref("v2"), noDiffID)))
		require.NoError(t, err, "no-diffid=%v", noDiffID)
		assert.Equal(t, byDigest, Digests(d.Fetched), "no-diffid=%v", noDiffID)
		assert.Equal(t, Digests(m1.Layers), Digests(d.Reused), "no-diffid=%v", noDiffID)
		assert.False(t, d.SameImage)
	}
	same, err := ParseLayerDiff(run(RechunkerDiff(bin, ref("v2"), ref("v2"), true)))
	require.NoError(t, err)
	assert.True(t, same.SameImage)
	assert.Empty(t, same.Fetched)
}
