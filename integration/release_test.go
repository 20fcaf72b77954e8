//go:build integration

package integration

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReleaseBinaries runs hack/release.sh: static linux/amd64 and linux/arm64 binaries
// stamped with the version, SHA256SUMS that sha256sum -c accepts, each binary printing
// its version (arm64 under qemu-aarch64-static, from Debian's qemu-user-static), and a
// second run giving the same SHA256SUMS. The first run cross-compiles everything for
// arm64 when the Go build cache is cold (minutes on 2 cores); the second reuses the cache.
func TestReleaseBinaries(t *testing.T) {
	requireTools(t, "go", "sha256sum")
	if testing.Short() {
		t.Skip("cross-builds two binaries (-short)")
	}
	const version = "v0.0.0-releasetest"
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	script := filepath.Join(root, "hack", "release.sh")

	outdir := t.TempDir()
	run(t, script, version, outdir)
	sums, err := os.ReadFile(filepath.Join(outdir, "SHA256SUMS"))
	require.NoError(t, err)
	t.Logf("SHA256SUMS:\n%s", sums)

	check := exec.Command("sha256sum", "-c", "SHA256SUMS")
	check.Dir = outdir
	assert.Contains(t, runCmd(t, check), "OK")

	machines := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
	bins := map[string]string{}
	for arch, machine := range machines {
		name := "rechunker-" + version + "-linux-" + arch
		assert.Contains(t, string(sums), "  "+name+"\n", "SHA256SUMS lists %s", name)
		path := filepath.Join(outdir, name)
		bins[arch] = path
		st, err := os.Stat(path)
		require.NoError(t, err)
		t.Logf("%s: %d bytes (%.1f MiB)", name, st.Size(), float64(st.Size())/(1<<20))

		f, err := elf.Open(path)
		require.NoError(t, err)
		assert.Equal(t, machine, f.Machine, "%s is built for %s", name, arch)
		for _, p := range f.Progs {
			assert.NotEqual(t, elf.PT_INTERP, p.Type, "%s must be static (no program interpreter)", name)
		}
		libs, err := f.ImportedLibraries()
		require.NoError(t, err)
		assert.Empty(t, libs, "%s must not need shared libraries", name)
		require.NoError(t, f.Close())
	}

	out := run(t, bins["amd64"], "--version")
	assert.True(t, strings.HasPrefix(out, "rechunker "+version+","), "amd64 --version: %q", out)
	out = run(t, bins["amd64"], "version", "--json")
	assert.Contains(t, out, `"version": "`+version+`"`)

	t.Run("arm64", func(t *testing.T) {
		if _, err := exec.LookPath("qemu-aarch64-static"); err != nil {
			skipOrFailInCI(t, "needs qemu-aarch64-static to run the arm64 binary (apt-get install qemu-user-static)")
		}
		out := run(t, "qemu-aarch64-static", bins["arm64"], "--version")
		assert.True(t, strings.HasPrefix(out, "rechunker "+version+","), "arm64 --version: %q", out)
		assert.Contains(t, out, "linux/arm64")
	})

	t.Run("reproducible", func(t *testing.T) {
		again := t.TempDir()
		run(t, script, version, again)
		sums2, err := os.ReadFile(filepath.Join(again, "SHA256SUMS"))
		require.NoError(t, err)
		assert.Equal(t, string(sums), string(sums2), "two runs of hack/release.sh give the same binaries "+
			"(unless the source tree changed between them: someone editing the checkout meanwhile)")
	})

	t.Run("bad version", func(t *testing.T) {
		cmd := exec.Command(script, "1.2")
		out, err := cmd.CombinedOutput()
		require.Error(t, err)
		assert.Contains(t, string(out), "VERSION must look like v1.2.3")
	})
}
