package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func buildRootfs(t *testing.T) string {
	rootfs := t.TempDir()
	for p, content := range map[string]string{
		"usr/bin/tool":        "tool",
		"usr/lib/libx.so":     "library",
		"etc/os-release":      "ID=test\n",
		"var/lib/state/thing": "x",
	} {
		full := filepath.Join(rootfs, p)
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(t, os.WriteFile(full, []byte(content), 0o644))
	}
	addBootcRoot(t, rootfs)
	return rootfs
}

func TestBuildUsageErrors(t *testing.T) {
	rootfs := buildRootfs(t)
	out := "oci:" + filepath.Join(t.TempDir(), "out")
	cases := map[string][]string{
		"no output":       {"--rootfs", rootfs},
		"no input":        {"--output", out},
		"both inputs":     {"--rootfs", rootfs, "--from", "oci:/x", "--output", out},
		"format version":  {"--rootfs", rootfs, "--output", out, "--format-version", "3"},
		"sign spki":       {"--rootfs", rootfs, "--output", out, "--sign-commit", "spki=/k"},
		"sign no path":    {"--rootfs", rootfs, "--output", out, "--sign-commit", "ed25519"},
		"sign bad type":   {"--rootfs", rootfs, "--output", out, "--sign-commit", "gpg=/k"},
		"bad label":       {"--rootfs", rootfs, "--output", out, "--label", "novalue"},
		"bad compression": {"--rootfs", rootfs, "--output", out, "--compression", "xz"},
		"zero max layers": {"--rootfs", rootfs, "--output", out, "--max-layers", "0"},
		"bare arch":       {"--rootfs", rootfs, "--output", out, "--platform", "amd64"},
		"empty variant":   {"--rootfs", rootfs, "--output", out, "--platform", "linux/arm64/"},
	}
	for name, args := range cases {
		for _, verb := range [][]string{{"build"}, {"compose", "build-chunked-oci"}} {
			t.Run(name+"/"+verb[0], func(t *testing.T) {
				_, err := runCLI(t, append(append([]string{}, verb...), args...)...)
				var ee exitError
				require.True(t, errors.As(err, &ee), "want a usage error, got %v", err)
				assert.Equal(t, 2, ee.code)
			})
		}
	}
}

func TestBuildCommand(t *testing.T) {
	rootfs := buildRootfs(t)
	store := t.TempDir()
	dir := filepath.Join(t.TempDir(), "out")
	ref := "oci:" + dir + ":latest"
	out, err := runCLI(t, "build", "--rootfs", rootfs, "--output", ref, "--store", store, "--bootc", "--json", "-l", "a=b")
	require.NoError(t, err, out)
	var first buildSummary
	require.NoError(t, json.Unmarshal([]byte(out), &first))
	assert.Equal(t, "b", first.Labels["a"])
	assert.Equal(t, "1", first.Labels["containers.bootc"])
	assert.Zero(t, first.Reused)

	// The independent checker accepts what we wrote.
	vout, err := runCLI(t, "verify", ref)
	require.NoError(t, err, vout)

	// Same flags through the rpm-ostree entry point into another directory: same image.
	other := "oci:" + filepath.Join(t.TempDir(), "other") + ":latest"
	out, err = runCLI(t, "compose", "build-chunked-oci", "--rootfs", rootfs, "--output", other, "--store", store, "--bootc", "--json", "-l", "a=b")
	require.NoError(t, err, out)
	var second buildSummary
	require.NoError(t, json.Unmarshal([]byte(out), &second))
	assert.Equal(t, first.ManifestDigest, second.ManifestDigest)

	// Rebuilding into the existing output uses it as the previous build: nothing is
	// compressed again.
	out, err = runCLI(t, "build", "--rootfs", rootfs, "--output", ref, "--store", store, "--bootc", "--json", "-l", "a=b", "--no-blob-cache")
	require.NoError(t, err, out)
	var third buildSummary
	require.NoError(t, json.Unmarshal([]byte(out), &third))
	assert.Equal(t, len(third.Layers), third.Reused)
	for i, l := range third.Layers {
		assert.Equal(t, first.Layers[i].DiffID, l.DiffID)
	}
}

// TestBuildWarnsWhatBootcRefuses: build --bootc of a tree without /sysroot and /ostree
// writes the image as it is but says, in one line, that bootc refuses it and how to fix
// the Containerfile; verify then fails the image on the same lint.
func TestBuildWarnsWhatBootcRefuses(t *testing.T) {
	tmp := t.TempDir()
	rootfs := buildRootfs(t)
	require.NoError(t, os.Remove(filepath.Join(rootfs, "ostree")))
	require.NoError(t, os.Remove(filepath.Join(rootfs, "sysroot")))
	store := filepath.Join(tmp, "store")
	out := "oci:" + filepath.Join(tmp, "out") + ":latest"
	r := runBin(t, tmp, "build", "--bootc", "--rootfs", rootfs, "--store", store, "--output", out)
	require.Equal(t, 0, r.code, r)
	want := "rechunker: warning: baseimage-root: /sysroot is missing and /ostree is missing: bootc container lint refuses the image " +
		"(baseimage-root) and a deployment stops in emergency mode (ostree-prepare-root cannot move its root to /sysroot); " +
		"add `mkdir /sysroot && ln -s sysroot/ostree /ostree` to the Containerfile\n"
	assert.Contains(t, r.stderr, want)
	assert.Equal(t, 1, strings.Count(r.stderr, "baseimage-root:"), r.stderr)

	r = runBin(t, tmp, "verify", out)
	assert.Equal(t, 1, r.code, r)
	assert.Contains(t, r.stdout, "FAIL: baseimage-root: /sysroot is missing and /ostree is missing")

	r = runBin(t, tmp, "build", "--rootfs", rootfs, "--store", store, "--output", "oci:"+filepath.Join(tmp, "plain")+":latest")
	require.Equal(t, 0, r.code, r)
	assert.NotContains(t, r.stderr, "baseimage-root", "only --bootc builds are linted")
}
