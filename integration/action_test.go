//go:build integration

package integration

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// actionEntrypoint is the script action.yml runs, relative to this package.
const actionEntrypoint = "../packaging/action/entrypoint.sh"

// runAction runs the GitHub Action's entry script with env (INPUT_* and other variables)
// and a fresh $GITHUB_OUTPUT file, and returns the outputs it wrote, its stderr and the
// error of the run.
func runAction(t *testing.T, env map[string]string) (map[string]string, string, error) {
	t.Helper()
	script, err := filepath.Abs(actionEntrypoint)
	require.NoError(t, err)
	outFile := filepath.Join(t.TempDir(), "github_output")
	require.NoError(t, os.WriteFile(outFile, nil, 0o644))
	cmd := exec.Command(script)
	cmd.Env = append(os.Environ(), "GITHUB_OUTPUT="+outFile, "XDG_CACHE_HOME="+filepath.Join(t.TempDir(), "cache"))
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	runErr := cmd.Run()
	t.Logf("entrypoint.sh (%v):\n%s", runErr, lastLines(stderr.String(), 20))
	raw, err := os.ReadFile(outFile)
	require.NoError(t, err)
	outputs := map[string]string{}
	for _, line := range strings.Split(strings.TrimRight(string(raw), "\n"), "\n") {
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		require.True(t, ok, "GITHUB_OUTPUT line %q is not name=value", line)
		_, dup := outputs[k]
		require.False(t, dup, "output %s written twice", k)
		outputs[k] = v
	}
	return outputs, stderr.String(), runErr
}

// TestActionEntrypoint runs the GitHub Action's entry script (packaging/action/entrypoint.sh)
// the way action.yml does: release v1, then v2 with previous-build v1, checking the
// outputs against the images written; then the release download (from a file:// release
// with SHA256SUMS, and a tampered one), the optional previous build, and bad inputs.
func TestActionEntrypoint(t *testing.T) {
	requireTools(t, "umoci", "jq", "sha256sum", "curl")
	work := t.TempDir()
	store := filepath.Join(work, "store")

	// Two releases of a small OS tree: a 3 MB incompressible file (a big unowned file,
	// so a component and a layer of its own) and some configuration; v2 adds one file.
	src := newEmptyImage(t, filepath.Join(work, "src"), "base")
	v1 := src.derive(t, "v1", "os files", func(root string) {
		writeRandomFile(t, filepath.Join(root, "usr/lib/firmware/blob.bin"), 3<<20, 7)
		writeFile(t, root, "usr/bin/tool", "#!/bin/sh\necho tool\n", 0o755)
		writeFile(t, root, "etc/os-release", "ID=actiontest\nVERSION_ID=1\n", 0o644)
		addBootcRoot(t, root)
	})
	v2 := v1.derive(t, "v2", "one more file", func(root string) {
		writeFile(t, root, "etc/motd", "release 2\n", 0o644)
	})
	out1 := ociImage{Layout: filepath.Join(work, "out"), Tag: "v1"}
	out2 := ociImage{Layout: filepath.Join(work, "out"), Tag: "v2"}

	common := map[string]string{
		"INPUT_BINARY": rechunkerBin,
		"INPUT_STORE":  store,
		"INPUT_LABELS": "org.opencontainers.image.title=action test\n\n  org.opencontainers.image.version=1 \n",
		"INPUT_BOOTC":  "true",
	}
	with := func(extra map[string]string) map[string]string {
		env := map[string]string{}
		for k, v := range common {
			env[k] = v
		}
		for k, v := range extra {
			env[k] = v
		}
		return env
	}

	o1, stderr, err := runAction(t, with(map[string]string{
		"INPUT_FROM": v1.Ref(), "INPUT_OUTPUT": out1.Ref(), "INPUT_MAX_LAYERS": "16",
	}))
	require.NoError(t, err, stderr)
	assert.Equal(t, out1.manifestDigest(t), o1["digest"], "digest output = manifest digest of the output image")
	m1 := out1.manifest(t)
	assert.Equal(t, strconv.Itoa(len(m1.Layers)), o1["layers"], "layers output = layers of the output image")
	assert.Equal(t, rechunkerBin, o1["binary"])
	assert.NotContains(t, o1, "bytes-fetched", "no previous build, no bytes-fetched")
	cfg := out1.config(t)
	assert.Equal(t, "1", cfg.Config.Labels["containers.bootc"], "bootc: true adds containers.bootc=1")
	assert.Equal(t, "action test", cfg.Config.Labels["org.opencontainers.image.title"], "labels with spaces in values")
	assert.Equal(t, "1", cfg.Config.Labels["org.opencontainers.image.version"], "labels are trimmed")
	entries, err := os.ReadDir(store)
	require.NoError(t, err, "input store is used")
	assert.NotEmpty(t, entries)

	o2, stderr, err := runAction(t, with(map[string]string{
		"INPUT_FROM": v2.Ref(), "INPUT_OUTPUT": out2.Ref(), "INPUT_PREVIOUS_BUILD": out1.Ref() + "\n",
		"INPUT_MAX_LAYERS": "16",
	}))
	require.NoError(t, err, stderr)
	m2 := out2.manifest(t)
	assert.Equal(t, out2.manifestDigest(t), o2["digest"])
	assert.NotEqual(t, o1["digest"], o2["digest"])
	assert.Equal(t, strconv.Itoa(len(m2.Layers)), o2["layers"])
	fetched, err := strconv.ParseInt(o2["bytes-fetched"], 10, 64)
	require.NoError(t, err, "bytes-fetched output %q", o2["bytes-fetched"])
	var total int64
	for _, l := range m2.Layers {
		total += l.Size
	}
	t.Logf("v1 -> v2: bytes-fetched %d of %d bytes of layers (%s layers)", fetched, total, o2["layers"])
	assert.Positive(t, fetched, "v2 adds a file, so an upgrade fetches something")
	assert.Less(t, fetched, total/2, "the 3 MB blob's layer is reused: an upgrade fetches much less than the image")
	d := newCLI(t).diff(t, out1.Ref(), out2.Ref())
	assert.Equal(t, d.BytesFetched, fetched, "bytes-fetched = rechunker diff's bytes_fetched")

	t.Run("image-format plain", func(t *testing.T) {
		out := ociImage{Layout: filepath.Join(work, "plain"), Tag: "v1"}
		o, stderr, err := runAction(t, with(map[string]string{
			"INPUT_FROM": v1.Ref(), "INPUT_OUTPUT": out.Ref(), "INPUT_IMAGE_FORMAT": "plain", "INPUT_MAX_LAYERS": "16",
		}))
		require.NoError(t, err, stderr)
		assert.Equal(t, out.manifestDigest(t), o["digest"])
		assert.NotContains(t, out.config(t).Config.Labels, "ostree.commit", "a plain image has no commit")
		assert.Equal(t, strconv.Itoa(len(m1.Layers)-1), o["layers"], "the same plan without the commit layer")
	})

	t.Run("previous-build-optional", func(t *testing.T) {
		missing := ociImage{Layout: filepath.Join(work, "none"), Tag: "latest"}
		out3 := ociImage{Layout: filepath.Join(work, "out"), Tag: "v3"}
		env := with(map[string]string{"INPUT_FROM": v2.Ref(), "INPUT_OUTPUT": out3.Ref(),
			"INPUT_PREVIOUS_BUILD": missing.Ref()})
		_, stderr, err := runAction(t, env)
		require.Error(t, err, "a previous build that cannot be read fails by default")
		assert.Contains(t, stderr, "rechunker build failed")

		env["INPUT_PREVIOUS_BUILD_OPTIONAL"] = "true"
		o, stderr, err := runAction(t, env)
		require.NoError(t, err, stderr)
		assert.Contains(t, stderr, "::warning")
		assert.Equal(t, out3.manifestDigest(t), o["digest"])
		assert.NotContains(t, o, "bytes-fetched", "the previous build was skipped")
	})

	t.Run("download", func(t *testing.T) {
		if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
			t.Skipf("no release binaries for %s", runtime.GOARCH)
		}
		// A release as hack/release.sh lays it out, served from file://.
		const version = "v0.0.0-actiontest"
		releases := filepath.Join(t.TempDir(), "releases")
		dir := filepath.Join(releases, version)
		name := fmt.Sprintf("rechunker-%s-linux-%s", version, runtime.GOARCH)
		require.NoError(t, os.MkdirAll(dir, 0o755))
		bin, err := os.ReadFile(rechunkerBin)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), bin, 0o644))
		sum := sha256.Sum256(bin)
		sums := hex.EncodeToString(sum[:]) + "  " + name + "\n"
		require.NoError(t, os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(sums), 0o644))

		toolCache := t.TempDir()
		out4 := ociImage{Layout: filepath.Join(work, "out"), Tag: "v4"}
		env := with(map[string]string{"INPUT_FROM": v2.Ref(), "INPUT_OUTPUT": out4.Ref(),
			"INPUT_VERSION": strings.TrimPrefix(version, "v"), "RUNNER_TOOL_CACHE": toolCache,
			"RECHUNKER_RELEASE_URL": "file://" + releases})
		delete(env, "INPUT_BINARY")
		o, stderr, err := runAction(t, env)
		require.NoError(t, err, stderr)
		assert.Equal(t, filepath.Join(toolCache, "rechunker", version, "rechunker"), o["binary"])
		assert.Equal(t, out4.manifestDigest(t), o["digest"])

		// A binary that does not match SHA256SUMS is refused.
		bad := append([]byte{}, bin...)
		bad[len(bad)/2] ^= 0xff
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), bad, 0o644))
		env["RUNNER_TOOL_CACHE"] = t.TempDir()
		_, stderr, err = runAction(t, env)
		require.Error(t, err)
		assert.Contains(t, stderr, "checksum mismatch for "+name)

		env["INPUT_VERSION"] = "v9.9.9"
		_, stderr, err = runAction(t, env)
		require.Error(t, err)
		assert.Contains(t, stderr, "SHA256SUMS failed")
	})

	t.Run("bad-inputs", func(t *testing.T) {
		good := map[string]string{"INPUT_FROM": v1.Ref(), "INPUT_OUTPUT": filepath.Join(work, "bad") + ":x"}
		for _, tc := range []struct {
			name, key, value, message string
		}{
			{"missing output", "INPUT_OUTPUT", "", "input 'output' is required"},
			{"missing from", "INPUT_FROM", "  ", "input 'from' is required"},
			{"max-layers", "INPUT_MAX_LAYERS", "ten", "input max-layers must be a positive integer, not 'ten'"},
			{"max-layers zero", "INPUT_MAX_LAYERS", "0", "input max-layers must be a positive integer"},
			{"compression", "INPUT_COMPRESSION", "xz", "input compression must be gzip, zstd, zstd:chunked or none, not 'xz'"},
			{"image-format", "INPUT_IMAGE_FORMAT", "docker", "input image-format must be ostree or plain, not 'docker'"},
			{"bootc", "INPUT_BOOTC", "maybe", "input bootc must be true or false, not 'maybe'"},
			{"label", "INPUT_LABELS", "a=b\nnovalue", "input labels: 'novalue' is not KEY=VALUE"},
			{"binary", "INPUT_BINARY", filepath.Join(work, "no-such-binary"), "is not an executable file"},
			{"version", "INPUT_VERSION", "1.x; rm -rf /", "input version must be vX.Y.Z, X.Y.Z or latest"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				env := with(good)
				env[tc.key] = tc.value
				if tc.key == "INPUT_VERSION" {
					delete(env, "INPUT_BINARY")
					env["RECHUNKER_RELEASE_URL"] = "file:///nonexistent"
				}
				o, stderr, err := runAction(t, env)
				require.Error(t, err)
				assert.Contains(t, stderr, tc.message)
				assert.Contains(t, stderr, "::error")
				assert.Empty(t, o, "no outputs after a failure")
			})
		}
	})
}
