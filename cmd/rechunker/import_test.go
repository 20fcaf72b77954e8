package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/bootc/bootctest"
)

// TestImportLsRootfsMatchesOstree checks import and ls against real ostree committing the
// same directory after rpm-ostree's postprocessing (/etc moved to /usr/etc).
func TestImportLsRootfsMatchesOstree(t *testing.T) {
	if _, err := exec.LookPath("ostree"); err != nil {
		t.Skip("ostree not installed")
	}
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	for p, body := range map[string]string{
		"etc/os-release": "ID=test\n", "usr/bin/hello": "#!/bin/sh\necho hi\n", "usr/lib/x.so": "lib",
	} {
		require.NoError(t, os.MkdirAll(filepath.Join(rootfs, filepath.Dir(p)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(rootfs, p), []byte(body), 0o644))
	}
	require.NoError(t, os.Symlink("usr/bin", filepath.Join(rootfs, "bin")))
	require.NoError(t, os.Chmod(rootfs, 0o755))
	mtime := time.Unix(1700000000, 0)
	require.NoError(t, os.Chtimes(rootfs, mtime, mtime))
	store := filepath.Join(dir, "store")

	sum, err := runCLI(t, "import", "--store", store, "--rootfs", rootfs)
	require.NoError(t, err, sum)
	lsAll, err := runCLI(t, "ls", "-R", "--store", store, "--rootfs", rootfs)
	require.NoError(t, err, lsAll)
	lsOne, err := runCLI(t, "ls", "--store", store, "--rootfs", rootfs, "/usr/etc")
	require.NoError(t, err, lsOne)

	// The oracle: the same directory postprocessed and committed by ostree.
	oracle := filepath.Join(dir, "oracle")
	cp := exec.Command("cp", "-a", rootfs, oracle)
	out, err := cp.CombinedOutput()
	require.NoError(t, err, string(out))
	require.NoError(t, os.Rename(filepath.Join(oracle, "etc"), filepath.Join(oracle, "usr", "etc")))
	repo := filepath.Join(dir, "repo")
	ostreeRun := func(args ...string) string {
		out, err := exec.Command("ostree", append([]string{"--repo=" + repo}, args...)...).CombinedOutput()
		require.NoError(t, err, string(out))
		return string(out)
	}
	ostreeRun("init", "--mode=bare-user")
	want := strings.TrimSpace(ostreeRun("commit", "--orphan", "--no-bindings", "--subject=", "--body=",
		"--timestamp=@"+strconv.FormatInt(mtime.Unix(), 10), "--tree=dir="+oracle))
	assert.Equal(t, want+"\n", sum)
	assert.Equal(t, ostreeRun("ls", "-RC", want, "/"), lsAll)
	assert.Equal(t, ostreeRun("ls", "-C", want, "/usr/etc"), lsOne)
}

func TestImportImageJSON(t *testing.T) {
	img := bootctest.Base().Build(t)
	store := t.TempDir()
	var first importSummary
	for run := range 2 {
		out, err := runCLI(t, "import", "--store", store, "--json", img.Ref)
		require.NoError(t, err, out)
		var s importSummary
		require.NoError(t, json.Unmarshal([]byte(out), &s), out)
		assert.Positive(t, s.Files)
		assert.Positive(t, s.Layers)
		if run == 0 {
			first = s
			assert.Zero(t, s.CachedLayers)
			continue
		}
		assert.Equal(t, first.Commit, s.Commit)
		assert.Equal(t, s.Layers, s.CachedLayers, "second import replays every layer")
	}
	out, err := runCLI(t, "ls", "--store", store, img.Ref, "/usr")
	require.NoError(t, err, out)
	assert.True(t, strings.HasPrefix(out, "d00755 0 0      0 "), out)
}

func TestImportUsage(t *testing.T) {
	for _, args := range [][]string{
		{"import"},
		{"import", "oci:x", "--rootfs", "/"},
		{"ls", "--rootfs", "/", "a", "b"},
	} {
		out, err := runCLI(t, args...)
		var ee exitError
		require.True(t, errors.As(err, &ee), "%v: %v %s", args, err, out)
		assert.Equal(t, 2, ee.code)
	}
	_, err := runCLI(t, "import", "--store", t.TempDir(), "oci:"+filepath.Join(t.TempDir(), "nothing")+":x")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "\n")
}
