package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/delta"
	"github.com/rechunker-dev/rechunker/internal/imageio"
)

// TestDeltaChunked makes a delta between two chunked builds (the second with
// --previous-build after a small change), applies it to the first build's files as
// umoci unpacks them, and checks that the rebuilt image has NEW's diff_ids and passes
// verify.
func TestDeltaChunked(t *testing.T) {
	umoci, err := exec.LookPath("umoci")
	if err != nil {
		t.Skip("umoci unpacks the old image; not installed")
	}
	rootfs := previousRootfs(t)
	store, dir := t.TempDir(), t.TempDir()
	oldRef, newRef := "oci:"+filepath.Join(dir, "old")+":latest", "oci:"+filepath.Join(dir, "new")+":latest"
	out, err := runCLI(t, "build", "--bootc", "--quiet", "--store", store, "--rootfs", rootfs, "--output", oldRef)
	require.NoError(t, err, out)
	blob := filepath.Join(rootfs, "usr/share/blobs/a")
	b, err := os.ReadFile(blob)
	require.NoError(t, err)
	b[1000] ^= 0xff
	require.NoError(t, os.WriteFile(blob, b, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(rootfs, "etc/os-release"), []byte("ID=test\nVERSION=2\n"), 0o644))
	out, err = runCLI(t, "build", "--bootc", "--quiet", "--store", store, "--rootfs", rootfs, "--output", newRef,
		"--previous-build", oldRef)
	require.NoError(t, err, out)

	df := filepath.Join(dir, "update.delta")
	out, err = runCLI(t, "delta", oldRef, newRef, "--output", df, "--json")
	require.NoError(t, err, out)
	var sum delta.Summary
	require.NoError(t, json.Unmarshal([]byte(out), &sum), out)
	kinds := map[string]int{}
	for _, l := range sum.Layers {
		kinds[l.Kind]++
	}
	assert.Positive(t, kinds[delta.KindReused], "unchanged chunks are reused: %s", out)
	assert.Positive(t, kinds[delta.KindDelta], "changed layers are deltas: %s", out)
	assert.Less(t, sum.DeltaBytes, sum.FetchBytes/4, "a one-byte change makes a small delta: %s", out)

	// diff --delta reports the same delta beside the plain download.
	out, err = runCLI(t, "diff", "--delta", "--json", oldRef, newRef)
	require.NoError(t, err, out)
	var dj struct {
		BytesFetched int64          `json:"bytes_fetched"`
		Delta        *delta.Summary `json:"delta"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &dj), out)
	require.NotNil(t, dj.Delta, out)
	assert.Equal(t, sum.DeltaBytes, dj.Delta.DeltaBytes, "the same delta as rechunker delta writes")
	assert.Less(t, dj.Delta.DeltaBytes, dj.BytesFetched)
	out, err = runCLI(t, "diff", "--delta", oldRef, newRef)
	require.NoError(t, err, out)
	assert.Contains(t, out, "As an oci-delta file (rechunker delta): ")

	bundle := filepath.Join(t.TempDir(), "bundle")
	uout, err := exec.Command(umoci, "unpack", "--image", filepath.Join(dir, "old")+":latest", bundle).CombinedOutput()
	require.NoError(t, err, string(uout))
	rebuilt := filepath.Join(dir, "rebuilt.tar")
	out, err = runCLI(t, "delta", "apply", df, "--root", filepath.Join(bundle, "rootfs"),
		"--output", "oci-archive:"+rebuilt, "--source", oldRef)
	require.NoError(t, err, out)
	assert.Equal(t, configDiffIDs(t, newRef), configDiffIDs(t, "oci-archive:"+rebuilt))
	out, err = runCLI(t, "verify", "oci-archive:"+rebuilt)
	require.NoError(t, err, out)

	t.Run("from a bare-user repository", func(t *testing.T) {
		repo := bareUserRepo(t, filepath.Join(bundle, "rootfs", "sysroot/ostree/repo"))
		tmp := t.TempDir()
		df := filepath.Join(tmp, "objects.delta")
		out, err := runCLI(t, "delta", oldRef, newRef, "--output", df, "--source-prefix", delta.ObjectsPrefix)
		require.NoError(t, err, out)
		rebuilt := filepath.Join(tmp, "rebuilt.tar")
		out, err = runCLI(t, "delta", "apply", df, "--repo", repo, "--output", "oci-archive:"+rebuilt, "--source", oldRef)
		require.NoError(t, err, out)
		assert.Equal(t, configDiffIDs(t, newRef), configDiffIDs(t, "oci-archive:"+rebuilt))
	})
}

// bareUserRepo copies the commit of the image's repository (bare-split-xattrs) into a
// new bare-user repository with the ostree CLI, as a host's repository holds it.
func bareUserRepo(t *testing.T, imageRepo string) string {
	ostree, err := exec.LookPath("ostree")
	if err != nil {
		t.Skip("ostree CLI not installed")
	}
	commits, err := filepath.Glob(filepath.Join(imageRepo, "objects", "*", "*.commit"))
	require.NoError(t, err)
	require.Len(t, commits, 1)
	rel, err := filepath.Rel(filepath.Join(imageRepo, "objects"), commits[0])
	require.NoError(t, err)
	commit := strings.TrimSuffix(strings.ReplaceAll(rel, "/", ""), ".commit")
	repo := filepath.Join(t.TempDir(), "repo")
	for _, args := range [][]string{{"init", "--mode=bare-user", "--repo=" + repo}, {"--repo=" + repo, "pull-local", imageRepo, commit}} {
		out, err := exec.Command(ostree, args...).CombinedOutput()
		require.NoError(t, err, "ostree %v: %s", args, out)
	}
	return repo
}

func configDiffIDs(t *testing.T, ref string) []digest.Digest {
	src, err := imageio.Open(context.Background(), ref, imageio.Options{})
	require.NoError(t, err)
	defer src.Close()
	return src.Config.RootFS.DiffIDs
}

func TestDeltaUsage(t *testing.T) {
	tmp := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"delta", "oci:" + tmp + "/a", "oci:" + tmp + "/b"}, "--output is required"},
		{[]string{"delta", "apply", tmp + "/d", "--output", "oci-archive:" + tmp + "/o"}, "--output and one of --root and --repo are required"},
		{[]string{"delta", "apply", tmp + "/d", "--root", tmp, "--output", "oci:" + tmp + "/o"}, "give oci-archive:PATH"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			out, err := runCLI(t, tc.args...)
			var ee exitError
			require.ErrorAs(t, err, &ee, out)
			assert.Equal(t, 2, ee.code)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	out, err := runCLI(t, "delta", "apply", tmp+"/missing.delta", "--root", tmp, "--output", "oci-archive:"+tmp+"/o")
	require.Error(t, err, out)
	assert.Contains(t, err.Error(), "missing.delta")
	assert.NoFileExists(t, tmp+"/o")
}
