package exporter

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestContainersStorageOutput copies the image into a private containers-storage and
// reads it back with podman.
func TestContainersStorageOutput(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	needTool(t, "podman")
	if os.Getuid() != 0 {
		t.Skip("containers-storage needs root")
	}
	tmp := t.TempDir()
	conf := filepath.Join(tmp, "containers.conf")
	require.NoError(t, os.WriteFile(conf, []byte("[containers]\ndefault_ulimits=[\"nofile=1024:1024\",\"nproc=4096:4096\"]\n[engine]\nruntime=\"runc\"\n"), 0o644))
	root, runroot := filepath.Join(tmp, "root"), filepath.Join(tmp, "run")
	store := newStore(t)
	in := buildInput(t, store, sampleNodes())
	ref := "containers-storage:[vfs@" + root + "+" + runroot + "]localhost/rechunker-test:latest"
	res, err := Export(context.Background(), in, store, topLevelPlan(in), Options{Output: ref, Bootc: true})
	require.NoError(t, err)

	cmd := exec.Command("podman", "--root", root, "--runroot", runroot, "--storage-driver", "vfs",
		"image", "inspect", "localhost/rechunker-test:latest")
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+conf)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	var images []struct {
		Digest string
		Labels map[string]string
		RootFS struct{ Layers []string }
	}
	require.NoError(t, json.Unmarshal(out, &images))
	require.Len(t, images, 1)
	img := images[0]
	assert.Equal(t, in.CommitSum.String(), img.Labels[LabelCommit])
	assert.Equal(t, "1", img.Labels[LabelBootc])
	assert.Equal(t, res.Layers[len(res.Layers)-1].DiffID.String(), img.Labels[LabelFinalDiffID])
	assert.Equal(t, res.ManifestDigest.String(), img.Digest, "manifest kept as written")
	assert.Len(t, img.RootFS.Layers, len(res.Layers))
}
