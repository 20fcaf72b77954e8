//go:build integration

package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// podmanContainerfile is the seed's bootc Containerfile adapted to the Debian base:
// embed a physically bound image (prepared with skopeo in the build context, since the
// build has no network), tag its directory user.component=containers with setfattr
// (bind-mounted from the host for that one step: Debian's minbase has no attr package),
// and label the image for bootc. Version 2 adds one file after version 1's steps, so
// podman reuses their cached layers, as a real pipeline's rebuild would.
func podmanContainerfile(base string, version int) string {
	s := fmt.Sprintf(`FROM %s
COPY containers-image-cache /%s
RUN --mount=type=bind,source=setfattr,target=/usr/local/bin/setfattr \
    setfattr -n user.component -v containers /%s
LABEL containers.bootc=1
`, base, boundImageDir, boundImageDir)
	if version >= 2 {
		s += "RUN mkdir -p /etc/ssh/sshd_config.d && echo 'PasswordAuthentication no' > /" + sshdDropIn + "\n"
	}
	return s + fmt.Sprintf("LABEL org.opencontainers.image.version=v%d\n", version)
}

// TestPodmanBuildInput: the input is what most users have, an image built by `podman
// build` from a Containerfile, read straight from containers-storage. The debootstrap
// rootfs is imported into podman's storage as the base; v1 embeds a bound image in a
// user.component=containers directory; v2 adds one file. rechunker must keep the xattr
// set by the RUN step (the bound image gets its own, reused layer), and the upgrade must
// fetch only the commit layer and one small layer.
func TestPodmanBuildInput(t *testing.T) {
	requireRoot(t)
	requireTools(t, "debootstrap", "podman", "runc", "skopeo", "umoci", "setfattr", "tar", "zstd")
	c := newCLI(t)
	p := newPodman(t)
	work := t.TempDir()

	// The base goes in with skopeo from the cached one-layer OCI image: podman 4.3 never
	// reuses build steps on top of a `podman import`ed image, so v2 would rebuild them.
	base := p.load(t, cachedRootfsImage(t, bookwormBootc().tarball(t), bootcConfig...), "localhost/debian-bootc-base:latest")

	ctx := filepath.Join(work, "context")
	app := newAppImage(t, filepath.Join(work, "app"), "v1", boundAppSize)
	embedBoundImage(t, filepath.Join(work, "embed"), app, "localhost/bound-app:v1", "")
	require.NoError(t, os.MkdirAll(ctx, 0o755))
	run(t, "cp", "-a", filepath.Join(work, "embed", boundImageDir), filepath.Join(ctx, "containers-image-cache"))
	setfattr, err := exec.LookPath("setfattr")
	require.NoError(t, err)
	run(t, "install", "-m", "0755", setfattr, filepath.Join(ctx, "setfattr"))

	storageRef := func(name string) string {
		return fmt.Sprintf("containers-storage:[overlay@%s+%s]%s", p.root, p.runroot, name)
	}
	build := func(version int) string {
		name := fmt.Sprintf("localhost/rechunker-podman-build:v%d", version)
		file := filepath.Join(work, fmt.Sprintf("Containerfile.v%d", version))
		require.NoError(t, os.WriteFile(file, []byte(podmanContainerfile(base, version)), 0o644))
		p.run(t, "build", "--quiet", "--network=none", "-f", file, "-t", name, ctx)
		return name
	}
	n1, n2 := build(1), build(2)

	out := filepath.Join(work, "out")
	c1, c2 := ociImage{Layout: out, Tag: "v1"}, ociImage{Layout: out, Tag: "v2"}
	_, first := c.build(t, "--from", storageRef(n1), "--output", c1.Ref())
	checkStorageReadInPlace(t, c, storageRef(n1), c1)
	labels := c1.config(t).Config.Labels
	assert.Equal(t, "1", labels["containers.bootc"], "the Containerfile's labels are carried over")
	assert.Equal(t, "v1", labels["org.opencontainers.image.version"])
	c.mustRun(t, "verify", c1.Ref())
	b2, next := c.build(t, "--from", storageRef(n2), "--output", c2.Ref(), "--previous-build", c1.Ref())
	c.mustRun(t, "verify", c2.Ref())

	plain := c.diff(t, storageRef(n1), storageRef(n2))
	d := c.diff(t, c1.Ref(), c2.Ref())
	t.Logf("chunked upgrade fetches %d of %d layers, %d of %d B: %s", d.LayersFetched, d.LayersTotal,
		d.BytesFetched, d.BytesTotal, d.describe())
	t.Logf("podman images: upgrade fetches %d of %d layers, %d B (containers-storage reports uncompressed sizes)",
		plain.LayersFetched, plain.LayersTotal, plain.BytesFetched)
	scenarioSummary{
		Scenario: "podman-build-one-file", Fetched: d.BytesFetched, LayersFetched: d.LayersFetched,
		LayersTotal: d.LayersTotal, Unchunked: plain.BytesFetched, LowerBound: -1, BuildFirst: first, BuildNext: next,
		Note: fmt.Sprintf("%d layers reused; unchunked = podman's own v1->v2 delta (%d layer, cached build steps, uncompressed size)",
			b2.Reused, plain.LayersFetched),
	}.log(t)

	require.False(t, d.SameImage)
	assert.LessOrEqual(t, d.LayersFetched, 2, "the commit layer and the layer with the new file: %s", d.describe())
	assert.Less(t, d.BytesFetched, int64(4<<20), "a one-file upgrade fetches at most a few MB")
	fetched, reused := d.layersWith("containers")
	assert.Empty(t, fetched, "the bound image's layer must not change")
	require.Len(t, reused, 1, "the RUN step's user.component=containers reached the plan")
	assert.GreaterOrEqual(t, reused[0].Size, int64(boundAppSize), "the containers layer holds the bound image")
	assert.True(t, slices.ContainsFunc(b2.Layers, func(l buildLayer) bool { return l.Reused != "" }),
		"v2 reuses v1's blobs")
}

// storeObjects lists the content objects in c's store.
func storeObjects(t *testing.T, c cli) []string {
	objects, err := filepath.Glob(filepath.Join(c.home, "cache", "rechunker", "store", "objects", "*", "*.file*"))
	require.NoError(t, err)
	return objects
}

// checkStorageReadInPlace: the build of ref (a containers-storage image) by c into built
// read the image through its mount (no content object in c's store), and gives the
// commit that reading the same image through its layers gives (an oci: copy of it,
// compressed as skopeo writes it by default). The same image with uncompressed layers
// (a dir: copy made with skopeo copy --dest-decompress) is read from its blobs in place:
// the image that copying gives, and almost nothing in the store.
func checkStorageReadInPlace(t *testing.T, c cli, ref string, built ociImage) {
	assert.Less(t, len(storeObjects(t, c)), 10, "a containers-storage image is read in place, not copied into the store")

	layout := ociImage{Layout: filepath.Join(t.TempDir(), "copy"), Tag: "v1"}
	run(t, "skopeo", "copy", "-q", ref, layout.Ref())
	viaLayers := ociImage{Layout: filepath.Join(t.TempDir(), "out"), Tag: "v1"}
	copying := newCLI(t)
	copying.build(t, "--from", layout.Ref(), "--output", viaLayers.Ref())
	want := viaLayers.config(t).Config.Labels["ostree.commit"]
	require.NotEmpty(t, want)
	assert.Equal(t, want, built.config(t).Config.Labels["ostree.commit"],
		"the tree read from the mount is the tree its layers give")

	plain := "dir:" + filepath.Join(t.TempDir(), "plain")
	run(t, "skopeo", "copy", "-q", "--dest-decompress", ref, plain)
	viaBlobs := ociImage{Layout: filepath.Join(t.TempDir(), "out-blobs"), Tag: "v1"}
	inPlace := newCLI(t)
	inPlace.build(t, "--from", plain, "--output", viaBlobs.Ref())
	assert.Equal(t, viaLayers.manifestDigest(t), viaBlobs.manifestDigest(t),
		"uncompressed blobs read in place give the image their copy gives")
	stored, copied := len(storeObjects(t, inPlace)), len(storeObjects(t, copying))
	t.Logf("content objects in the store: %d reading uncompressed blobs in place, %d copying compressed ones", stored, copied)
	assert.Less(t, stored*5, copied, "only symlinks are stored when the blobs are read in place")
}
