//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// containerImageVersion is the version hack/container.sh stamps into the test image.
const containerImageVersion = "v0.0.0-container-test"

// staticRechunker builds the binary the image ships, as hack/container.sh does.
func staticRechunker(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "rechunker")
	cmd := exec.Command("go", "build", "-buildvcs=false", "-tags", "containers_image_openpgp", "-trimpath",
		"-ldflags", "-X main.version="+containerImageVersion, "-o", out, "../cmd/rechunker")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	runCmd(t, cmd)
	return out
}

// buildContainerImage runs hack/container.sh against p's private storage and returns the
// image ID, its size in bytes and the wall time of the script (go build + podman build).
// binary and revision are passed through (--binary, --revision), so that two builds have
// the same inputs even when the checkout changes in between.
func buildContainerImage(t *testing.T, p podman, tag, binary, revision string) (id string, size int64, took time.Duration) {
	t.Helper()
	repo, err := filepath.Abs("..")
	require.NoError(t, err)
	cmd := exec.Command(filepath.Join(repo, "hack", "container.sh"), "--tag", tag, "--version", containerImageVersion,
		"--binary", binary, "--revision", revision)
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+p.conf,
		"PODMAN=podman --root "+p.root+" --runroot "+p.runroot+" --events-backend file")
	start := time.Now()
	out := runCmd(t, cmd)
	took = time.Since(start)
	m := regexp.MustCompile(`(?m)^id:\s+([0-9a-f]{64})$`).FindStringSubmatch(out)
	require.NotNil(t, m, "hack/container.sh printed no image ID:\n%s", out)
	var img []struct {
		ID     string `json:"Id"`
		Size   int64
		Labels map[string]string
	}
	require.NoError(t, json.Unmarshal([]byte(p.run(t, "image", "inspect", tag)), &img))
	require.Len(t, img, 1)
	require.Equal(t, m[1], img[0].ID)
	return img[0].ID, img[0].Size, took
}

// tinyOSRoot writes a minimal tree that `rechunker verify` accepts as a bootc image:
// os-release, a "kernel", a binary, and the root directories bootc's lints require.
func tinyOSRoot(t *testing.T, root string) {
	t.Helper()
	writeFile(t, root, "usr/lib/os-release", "ID=tiny\nVERSION_ID=1\n", 0o644)
	require.NoError(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	require.NoError(t, os.Symlink("../usr/lib/os-release", filepath.Join(root, "etc/os-release")))
	writeRandomFile(t, filepath.Join(root, "usr/lib/modules/6.1.0-tiny/vmlinuz"), 100<<10, 7)
	writeRandomFile(t, filepath.Join(root, "usr/bin/tool"), 300<<10, 8)
	require.NoError(t, os.Chmod(filepath.Join(root, "usr/bin/tool"), 0o755))
	addBootcRoot(t, root)
}

// TestContainerImage: the rechunker image of packaging/container, built by
// hack/container.sh. It must be reproducible (two builds in separate, empty storages
// give the same image ID), run `version`, rechunk an oci: layout mounted into the
// container, rechunk an image from the host's containers-storage with the graph root
// mounted in, and rechunk the OS stage of a multi-stage `podman build` (the build-stage
// recipe of docs/podman.md). Every output is verified on the host with the host binary.
func TestContainerImage(t *testing.T) {
	requireRoot(t)
	requireTools(t, "podman", "runc", "umoci", "skopeo", "go", "git", "bc")
	c := newCLI(t)
	p := newPodman(t)
	const img = "localhost/rechunker:container-test"

	start := time.Now()
	bin := staticRechunker(t)
	t.Logf("static binary: %.1fs", time.Since(start).Seconds())
	revision := strings.TrimSpace(run(t, "git", "-C", "..", "rev-parse", "HEAD"))
	id, size, took := buildContainerImage(t, p, img, bin, revision)
	t.Logf("image %s: %d bytes (%.1f MiB), podman build in %.1fs", id[:12], size, float64(size)/(1<<20), took.Seconds())
	id2, _, took2 := buildContainerImage(t, newPodman(t), img, bin, revision)
	t.Logf("second build in empty storage: %s in %.1fs", id2[:12], took2.Seconds())
	assert.Equal(t, id, id2, "podman build --timestamp 0 of the same checkout must give the same image ID")
	assert.Less(t, size, int64(100<<20), "the image is the static binary and a few small files")

	var labels map[string]string
	require.NoError(t, json.Unmarshal([]byte(p.run(t, "image", "inspect", "--format", "{{json .Labels}}", img)), &labels))
	assert.Equal(t, "rechunker", labels["org.opencontainers.image.title"])
	assert.Equal(t, containerImageVersion, labels["org.opencontainers.image.version"])
	assert.Regexp(t, `^[0-9a-f]{40}$`, labels["org.opencontainers.image.revision"])
	for _, k := range []string{"description", "source", "licenses"} {
		assert.NotEmpty(t, labels["org.opencontainers.image."+k], k)
	}

	// The container has no network here (no netavark/CNI plugins in the sandbox), and needs none.
	runIn := func(args ...string) string {
		t.Helper()
		return p.run(t, append([]string{"run", "--rm", "--network=none"}, args...)...)
	}
	assert.Contains(t, runIn(img, "version"), containerImageVersion)

	// The input: a tiny bootc-shaped OS as an OCI layout, in a host directory mounted at /work.
	work := t.TempDir()
	src := newEmptyImage(t, filepath.Join(work, "src"), "v1")
	src.configure(t, "--config.label", "containers.bootc=1")
	src = src.derive(t, "v1", "tiny os", func(root string) { tinyOSRoot(t, root) })

	// 1. oci: in, oci: out, both under the mount.
	out := ociImage{Layout: filepath.Join(work, "out"), Tag: "v1"}
	start = time.Now()
	runIn("-v", work+":/work", img, "build", "--bootc", "--from", "oci:/work/src:v1", "--output", "oci:/work/out:v1")
	t.Logf("rechunk oci: -> oci: in the container: %.1fs", time.Since(start).Seconds())
	c.mustRun(t, "verify", out.Ref())
	// Any user can run it: /tmp, /var/tmp and the store are world-writable (sticky).
	assert.Contains(t, runIn("--user", "65534:65534", "-v", work+":/work:ro", img, "verify", "oci:/work/out:v1"), "PASS")

	// 2. containers-storage: the host's graph root mounted at the container's default
	// location. Opening the overlay driver needs CAP_SYS_ADMIN (it mounts overlays);
	// without it containers/storage reports "overlay is not supported over extfs".
	name := p.load(t, src, "localhost/tiny-os:v1")
	storage := p.root + ":/var/lib/containers/storage"
	if _, err := p.cmd("run", "--rm", "--network=none", "-v", storage, "-v", work+":/work", img,
		"build", "--from", "containers-storage:"+name, "--output", "oci:/work/out:denied").CombinedOutput(); err != nil {
		t.Logf("without --cap-add SYS_ADMIN, containers-storage fails as expected: %v", err)
	} else {
		t.Logf("without --cap-add SYS_ADMIN, containers-storage worked (a kernel or podman that allows it)")
	}
	start = time.Now()
	runIn("--cap-add", "SYS_ADMIN", "--security-opt", "label=disable", "-v", storage, "-v", work+":/work", img,
		"build", "--bootc", "--from", "containers-storage:"+name, "--output", "oci:/work/out:cs")
	t.Logf("rechunk containers-storage: -> oci: in the container: %.1fs", time.Since(start).Seconds())
	c.mustRun(t, "verify", ociImage{Layout: out.Layout, Tag: "cs"}.Ref())
	// ... and back into the same storage, where the host's podman sees the image.
	runIn("--cap-add", "SYS_ADMIN", "--security-opt", "label=disable", "-v", storage, img,
		"build", "--bootc", "--from", "containers-storage:"+name, "--output", "containers-storage:localhost/tiny-os:cs")
	assert.NotEmpty(t, strings.TrimSpace(p.run(t, "image", "inspect", "--format", `{{index .Labels "ostree.commit"}}`,
		"localhost/tiny-os:cs")), "the chunked image in the host's storage")
	c.mustRun(t, "verify", "containers-storage:[overlay@"+p.root+"+"+p.runroot+"]localhost/tiny-os:cs")

	// 3. The build-stage recipe: stage "os" is the OS tree (FROM scratch here, as no base
	// image can be pulled), the final stage is the rechunker image, which rechunks the OS
	// stage bind-mounted at /rootfs into a host directory mounted at /out. Exec-form RUN:
	// the image has no shell.
	ctx := filepath.Join(work, "context")
	tinyOSRoot(t, filepath.Join(ctx, "rootfs"))
	containerfile := `FROM scratch AS os
COPY rootfs/ /

FROM ` + img + `
ARG RECHUNK_ID
RUN --mount=type=bind,from=os,source=/,target=/rootfs ["rechunker", "build", "--bootc", "--rootfs", "/rootfs", "--output", "oci-archive:/out/os.tar"]
`
	require.NoError(t, os.WriteFile(filepath.Join(ctx, "Containerfile"), []byte(containerfile), 0o644))
	hostOut := filepath.Join(work, "stage-out")
	// Twice: the second build takes the OS stage from the cache, and the RECHUNK_ID
	// build arg, different every time, must keep the RUN step out of it (podman would
	// otherwise reuse the step and write no os.tar).
	for i := range 2 {
		require.NoError(t, os.RemoveAll(hostOut))
		require.NoError(t, os.MkdirAll(hostOut, 0o755))
		start = time.Now()
		p.run(t, "build", "--quiet", "--network=none", "--build-arg", fmt.Sprintf("RECHUNK_ID=%d", time.Now().UnixNano()),
			"-v", hostOut+":/out", "-t", "localhost/tiny-os-build:latest", ctx)
		t.Logf("multi-stage podman build with the rechunk step (%d): %.1fs", i+1, time.Since(start).Seconds())
		require.FileExists(t, filepath.Join(hostOut, "os.tar"), "build %d wrote no os.tar", i+1)
	}
	archive := "oci-archive:" + filepath.Join(hostOut, "os.tar")
	verify := c.mustRun(t, "verify", archive)
	assert.Contains(t, verify, "PASS")
	cmd := exec.Command("skopeo", "copy", "-q", archive,
		"containers-storage:["+"overlay@"+p.root+"+"+p.runroot+"]localhost/tiny-os:chunked")
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+p.conf)
	runCmd(t, cmd)
	var loaded []struct{ Labels map[string]string }
	require.NoError(t, json.Unmarshal([]byte(p.run(t, "image", "inspect", "localhost/tiny-os:chunked")), &loaded))
	require.Len(t, loaded, 1)
	assert.Equal(t, "1", loaded[0].Labels["containers.bootc"])
	assert.NotEmpty(t, loaded[0].Labels["ostree.commit"], "the chunked image is an ostree image: labels %v", loaded[0].Labels)
}
