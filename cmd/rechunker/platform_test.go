package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	imgspecs "github.com/opencontainers/image-spec/specs-go"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/internal/imageio"
)

// otherArch is an architecture that is not the host's.
func otherArch() string {
	if runtime.GOARCH == "arm64" {
		return "amd64"
	}
	return "arm64"
}

// writeTwoPlatformIndex writes an OCI layout whose "latest" is an image index of one
// image per architecture (sharing no blob) and returns its oci: reference.
func writeTwoPlatformIndex(t *testing.T, dir string, arches ...string) string {
	var manifests []imgspecv1.Descriptor
	for _, arch := range arches {
		// Each image is written as a one-image layout first; its manifest moves into the index.
		writeOCI(t, dir, []hlayer{gzLayer(t, htar(t, append(baseEntries(), hfile("usr/share/arch", arch))...))},
			func(_ *imgspecv1.Manifest, c *imgspecv1.Image) { c.Architecture = arch })
		var top imgspecv1.Index
		b, err := os.ReadFile(filepath.Join(dir, "index.json"))
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, &top))
		m := top.Manifests[0]
		m.Annotations = nil
		m.Platform = &imgspecv1.Platform{OS: "linux", Architecture: arch}
		manifests = append(manifests, m)
	}
	ib, err := json.Marshal(imgspecv1.Index{Versioned: imgspecs.Versioned{SchemaVersion: 2}, MediaType: imgspecv1.MediaTypeImageIndex, Manifests: manifests})
	require.NoError(t, err)
	d := digest.FromBytes(ib)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "blobs", "sha256", d.Encoded()), ib, 0o644))
	top, err := json.Marshal(imgspecv1.Index{Versioned: imgspecs.Versioned{SchemaVersion: 2}, MediaType: imgspecv1.MediaTypeImageIndex,
		Manifests: []imgspecv1.Descriptor{{MediaType: imgspecv1.MediaTypeImageIndex, Digest: d, Size: int64(len(ib)),
			Annotations: map[string]string{imgspecv1.AnnotationRefName: "latest"}}}})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "index.json"), top, 0o644))
	return "oci:" + dir + ":latest"
}

// platformOf opens ref and returns the platform its config declares.
func platformOf(t *testing.T, ref string) imageio.Platform {
	t.Helper()
	src, err := imageio.Open(context.Background(), ref, imageio.Options{CacheDir: t.TempDir()})
	require.NoError(t, err)
	defer src.Close()
	return src.Platform
}

// TestBuildPlatform builds from a two-platform image index: the host's image by default,
// another with --platform, a clear refusal for a platform the index lacks, and for
// previous builds of another platform than the input.
func TestBuildPlatform(t *testing.T) {
	host, other := runtime.GOARCH, otherArch()
	tmp := t.TempDir()
	store := filepath.Join(tmp, "store")
	src := writeTwoPlatformIndex(t, filepath.Join(tmp, "src"), host, other)
	out := func(name string) (string, string) {
		dir := filepath.Join(tmp, name)
		return "oci:" + dir + ":latest", dir
	}
	build := func(args ...string) cliResult {
		r := runBin(t, tmp, append([]string{"build", "--from", src, "--store", store}, args...)...)
		t.Logf("build %v: exit %d: %s", args, r.code, strings.TrimSpace(r.stderr))
		return r
	}
	hostOut, _ := out("host")
	otherOut, otherDir := out("other")

	r := build("--output", hostOut)
	require.Equal(t, 0, r.code, r)
	assert.Equal(t, imageio.Platform{OS: "linux", Architecture: host}, platformOf(t, hostOut))

	r = build("--output", otherOut, "--platform", "linux/"+other)
	require.Equal(t, 0, r.code, r)
	assert.Equal(t, imageio.Platform{OS: "linux", Architecture: other}, platformOf(t, otherOut))

	t.Run("platform the index lacks", func(t *testing.T) {
		ref, dir := out("s390x")
		r := build("--output", ref, "--platform", "linux/s390x")
		require.Equal(t, 1, r.code, r)
		assert.Contains(t, r.stderr, "has no image for linux/s390x; it offers linux/"+host+", linux/"+other)
		_, err := os.Stat(dir)
		assert.True(t, os.IsNotExist(err), "no output: %v", err)
	})
	t.Run("malformed platform", func(t *testing.T) {
		ref, _ := out("bad")
		for _, p := range []string{other, "linux/", "linux/arm/v7/x"} {
			r := build("--output", ref, "--platform", p)
			require.Equal(t, 2, r.code, r)
			assert.Contains(t, r.stderr, `--platform: platform "`+p+`": `)
			assert.Contains(t, r.stderr, "want OS/ARCH[/VARIANT]")
		}
	})
	t.Run("previous build of another platform", func(t *testing.T) {
		ref, _ := out("prev")
		r := build("--output", ref, "--previous-build", otherOut)
		require.Equal(t, 1, r.code, r)
		assert.Contains(t, r.stderr, "previous build "+otherOut+" is linux/"+other+", but the input is linux/"+host)
		// Asked for explicitly, the previous build is refused when it is opened.
		r = build("--output", ref, "--previous-build", otherOut, "--platform", "linux/"+host)
		require.Equal(t, 1, r.code, r)
		assert.Contains(t, r.stderr, "image is linux/"+other+", not the requested linux/"+host)
		// plan takes previous builds too.
		r = runBin(t, tmp, "plan", "--store", store, "--previous-build", otherOut, src)
		require.Equal(t, 1, r.code, r)
		assert.Contains(t, r.stderr, "previous build "+otherOut+" is linux/"+other+", but the input is linux/"+host)
	})
	t.Run("output holding another platform", func(t *testing.T) {
		before := snapshot(t, otherDir)
		r := build("--output", otherOut)
		require.Equal(t, 1, r.code, r)
		assert.Contains(t, r.stderr, "previous build "+otherOut+" is linux/"+other+", but the input is linux/"+host)
		assert.Equal(t, before, snapshot(t, otherDir), "the output is untouched")
	})
	t.Run("readers", func(t *testing.T) {
		r := runBin(t, tmp, "verify", "--arch", other, otherOut)
		require.Equal(t, 0, r.code, r)
		r = runBin(t, tmp, "verify", "--platform", "linux/"+other, "--arch", host, otherOut)
		require.Equal(t, 2, r.code, r)
		assert.Contains(t, r.stderr, "--arch "+host+" contradicts --platform linux/"+other)
		r = runBin(t, tmp, "inspect", "--json", "--platform", "linux/"+other, src)
		require.Equal(t, 0, r.code, r)
		assert.Contains(t, r.stdout, `"architecture": "`+other+`"`)
	})
	t.Run("rootfs built for a platform", func(t *testing.T) {
		ref, _ := out("rootfs")
		r := runBin(t, tmp, "build", "--rootfs", buildRootfs(t), "--store", store, "--output", ref, "--platform", "linux/"+other)
		require.Equal(t, 0, r.code, r)
		assert.Equal(t, imageio.Platform{OS: "linux", Architecture: other}, platformOf(t, ref))
	})
	t.Run("rootfs built for a platform with a variant", func(t *testing.T) {
		ref, _ := out("rootfs-variant")
		r := runBin(t, tmp, "build", "--rootfs", buildRootfs(t), "--store", store, "--output", ref, "--platform", "linux/arm64/v8")
		require.Equal(t, 0, r.code, r)
		assert.Equal(t, imageio.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, platformOf(t, ref))
	})
}
