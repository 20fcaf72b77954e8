package bootc

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/rechunker-dev/rechunker/internal/testbin"
)

// rechunkerBin returns RECHUNKER_BIN or the CLI built with this test binary's build tags.
func rechunkerBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("RECHUNKER_BIN"); p != "" {
		return p
	}
	return testbin.Path(t)
}

func runBin(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String() + errb.String(), err
	}
	return out.String(), nil
}

func writeRootfs(t *testing.T, dir, conf string) {
	t.Helper()
	random := func(n int) []byte {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		return b
	}
	files := map[string][]byte{
		"usr/bin/app":                   random(200 << 10),
		"usr/bin/tool":                  []byte("#!/bin/sh\necho tool\n"),
		"usr/lib/modules/6.1.0/vmlinuz": random(1 << 20),
		"usr/share/data/blob":           random(2 << 20),
		"etc/app.conf":                  []byte(conf),
	}
	for p, data := range files {
		full := filepath.Join(dir, p)
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		if _, err := os.Stat(full); err == nil && p != "etc/app.conf" {
			continue // keep identical content across versions
		}
		require.NoError(t, os.WriteFile(full, data, 0o644))
	}
	_ = unix.Setxattr(filepath.Join(dir, "usr/share/data/blob"), "user.component", []byte("data"), 0)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "var/tmp"), 0o1777))
	// What bootc's fatal lints require of a base image (fatal.go).
	for _, d := range []string{"sysroot", "dev", "proc", "sys", "run", "tmp"} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	if _, err := os.Lstat(filepath.Join(dir, "ostree")); err != nil {
		require.NoError(t, os.Symlink("sysroot/ostree", filepath.Join(dir, "ostree")))
	}
}

// TestCLIBuildVerifyDiff builds two chunked images with `rechunker build` (the second
// differing only in /etc/app.conf), verifies both with `rechunker verify`, and checks
// that `rechunker diff` fetches only the commit layer and one small layer.
func TestCLIBuildVerifyDiff(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the CLI and images; skipped with -short")
	}
	bin := rechunkerBin(t)
	help, _ := runBin(t, bin, "build", "--help")
	if !strings.Contains(help, "--rootfs") || !strings.Contains(help, "--output") {
		t.Skip("rechunker build --rootfs is not available yet")
	}
	tmp := t.TempDir()
	root := filepath.Join(tmp, "rootfs")
	layout := filepath.Join(tmp, "oci")
	extra := []string{}
	if strings.Contains(help, "--store") {
		extra = append(extra, "--store", filepath.Join(tmp, "store"))
	}
	build := func(tag string, more ...string) string {
		ref := "oci:" + layout + ":" + tag
		args := append([]string{"build", "--bootc", "--rootfs", root, "--output", ref}, extra...)
		out, err := runBin(t, bin, append(args, more...)...)
		require.NoError(t, err, "%s", out)
		return ref
	}
	verify := func(ref string) {
		out, err := runBin(t, bin, "verify", "--json", ref)
		require.NoError(t, err, "%s", out)
		var r Report
		require.NoError(t, json.Unmarshal([]byte(out), &r))
		assert.True(t, r.OK)
		assert.NotEmpty(t, r.Commit)
	}

	writeRootfs(t, root, "setting=1\n")
	v1 := build("v1")
	verify(v1)
	writeRootfs(t, root, "setting=2\n")
	v2 := build("v2", "--previous-build", v1)
	verify(v2)

	out, err := runBin(t, bin, "diff", "--json", v1, v2)
	require.NoError(t, err, "%s", out)
	var d DiffReport
	require.NoError(t, json.Unmarshal([]byte(out), &d))
	require.Equal(t, 2, d.LayersFetched, "%s", out)
	assert.Equal(t, 0, d.Fetched[0].Index, "the commit layer changes on every build")
	assert.Less(t, d.Fetched[1].Size, d.BytesTotal/10, "the second fetched layer holds the config file, not the big content")
}
