package main

import (
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/internal/imageio"
)

// TestRegistryRoundTrip pushes builds to a registry (an in-process one on loopback) and
// reads them back over docker://: the second build takes its previous build from the
// registry, and diff and verify work on remote images.
func TestRegistryRoundTrip(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	v1 := "docker://" + host + "/os/image:v1"
	v2 := "docker://" + host + "/os/image:v2"
	store := t.TempDir()

	// Two big unowned files become components with layers of their own.
	base := append(baseEntries(), hfile("usr/lib/big1.bin", randomBytes(1536<<10)), hfile("usr/lib/big2.bin", randomBytes(1536<<10)))
	src1 := writeOCI(t, filepath.Join(t.TempDir(), "src"), []hlayer{gzLayer(t, htar(t, base...))}, nil)
	out, err := runCLI(t, "build", "--bootc", "--insecure", "--quiet", "--json", "--store", store, "--from", src1, "--output", v1)
	require.NoError(t, err, out)
	var first buildSummary
	require.NoError(t, json.Unmarshal([]byte(out), &first))

	// v2 adds one file; an empty store forces the previous build to come from the registry.
	entries := append(slices.Clone(base), hfile("etc/ssh/sshd_config.d/10-disable-password-auth.conf", "PasswordAuthentication no\n"))
	src2 := writeOCI(t, filepath.Join(t.TempDir(), "src"), []hlayer{gzLayer(t, htar(t, entries...))}, nil)
	out, err = runCLI(t, "build", "--bootc", "--insecure", "--quiet", "--json", "--store", t.TempDir(), "--from", src2, "--output", v2, "--previous-build", v1)
	require.NoError(t, err, out)
	var second buildSummary
	require.NoError(t, json.Unmarshal([]byte(out), &second))
	assert.Greater(t, second.Reused, 0, "unchanged chunks are reused from the registry's v1")

	out, err = runCLI(t, "verify", "--tls-verify=false", v2)
	require.NoError(t, err, out)
	assert.Contains(t, out, "PASS")

	out, err = runCLI(t, "diff", "--tls-verify=false", "--json", v1, v2)
	require.NoError(t, err, out)
	var d struct {
		LayersTotal   int `json:"layers_total"`
		LayersFetched int `json:"layers_fetched"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &d))
	assert.Equal(t, 2, d.LayersFetched, "the commit layer and the chunk holding the new file: %s", out)
	assert.Greater(t, d.LayersTotal, d.LayersFetched)
}

// TestRegistryImageIndex: a two-platform image index pushed to a registry (skopeo copy
// --all, as registries serve bootc images) is rechunked over docker:// for the host's
// platform by default and for another with --platform.
func TestRegistryImageIndex(t *testing.T) {
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Skip("skopeo not installed")
	}
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	ref := "docker://" + strings.TrimPrefix(srv.URL, "http://") + "/os/multi:latest"
	tmp := t.TempDir()
	host, other := runtime.GOARCH, otherArch()
	src := writeTwoPlatformIndex(t, filepath.Join(tmp, "src"), host, other)
	out, err := exec.Command("skopeo", "copy", "--all", "--dest-tls-verify=false", src, ref).CombinedOutput()
	require.NoError(t, err, "skopeo copy --all: %s", out)

	for _, c := range []struct{ arch string }{{host}, {other}} {
		args := []string{"build", "--insecure", "--quiet", "--store", filepath.Join(tmp, "store"), "--from", ref,
			"--output", "oci:" + filepath.Join(tmp, "out-"+c.arch) + ":latest"}
		if c.arch != host {
			args = append(args, "--platform", "linux/"+c.arch)
		}
		r := runBin(t, tmp, args...)
		require.Equal(t, 0, r.code, r)
		assert.Equal(t, imageio.Platform{OS: "linux", Architecture: c.arch}, platformOf(t, "oci:"+filepath.Join(tmp, "out-"+c.arch)+":latest"))
	}
}
