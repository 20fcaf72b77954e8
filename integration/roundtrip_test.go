//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// skopeoInspect is the part of `skopeo inspect` the round trips read.
type skopeoInspect struct {
	Digest string            `json:"Digest"`
	Labels map[string]string `json:"Labels"`
	Layers []string          `json:"Layers"`
}

// podmanImage is the part of `podman image inspect` the round trips read.
type podmanImage struct {
	Digest string `json:"Digest"`
	Config struct {
		Labels map[string]string `json:"Labels"`
	} `json:"Config"`
	RootFS struct {
		Layers []string `json:"Layers"`
	} `json:"RootFS"`
}

// TestTransportRoundTrips writes the chunked Debian image through every transport a
// pipeline hands it to and reads it back with the real tools: containers-storage (podman
// image inspect, podman run with runc), oci-archive (skopeo inspect, skopeo copy to oci:),
// docker-archive (skopeo inspect). `rechunker verify` passes on each, and the same input
// built twice with separate stores gives the same manifest digest (reproducible builds).
func TestTransportRoundTrips(t *testing.T) {
	requireRoot(t)
	requireTools(t, "debootstrap", "umoci", "skopeo", "podman", "runc", "tar", "zstd")
	src := cachedRootfsImage(t, bookwormBootc().tarball(t), bootcConfig...)
	work := t.TempDir()
	c := newCLI(t)

	ociOut := ociImage{Layout: filepath.Join(work, "oci"), Tag: "v1"}
	b1, cold := c.build(t, "--bootc", "--from", src.Ref(), "--output", ociOut.Ref())
	c.mustRun(t, "verify", ociOut.Ref())

	t.Run("reproducible", func(t *testing.T) {
		other := newCLI(t) // a separate, empty store
		again := ociImage{Layout: filepath.Join(work, "again"), Tag: "v1"}
		b2, d := other.build(t, "--bootc", "--from", src.Ref(), "--output", again.Ref())
		t.Logf("cold builds: %.1fs and %.1fs", cold.Seconds(), d.Seconds())
		assert.Equal(t, b1.ManifestDigest, b2.ManifestDigest, "the same input built with another store")
		assert.Equal(t, b1.Commit, b2.Commit)
		assert.Zero(t, b2.Reused, "the second store had nothing to reuse")
	})

	t.Run("containers-storage", func(t *testing.T) {
		p := newPodman(t)
		const name = "localhost/rechunker-roundtrip:v1"
		ref := fmt.Sprintf("containers-storage:[overlay@%s+%s]%s", p.root, p.runroot, name)
		b, d := c.build(t, "--bootc", "--from", src.Ref(), "--output", ref)
		t.Logf("build to containers-storage: %.1fs", d.Seconds())
		assert.Equal(t, b1.ManifestDigest, b.ManifestDigest, "same image whatever the transport")

		var imgs []podmanImage
		require.NoError(t, json.Unmarshal([]byte(p.run(t, "image", "inspect", name)), &imgs))
		require.Len(t, imgs, 1)
		img := imgs[0]
		assert.Equal(t, b1.ManifestDigest, img.Digest, "podman sees the manifest rechunker wrote")
		assert.Equal(t, "1", img.Config.Labels["containers.bootc"])
		assert.Equal(t, b1.Commit, img.Config.Labels["ostree.commit"])
		assert.Len(t, img.RootFS.Layers, len(b1.Layers))

		osRelease := p.run(t, "run", "--rm", "--network=none", name, "cat", "/usr/lib/os-release")
		assert.Contains(t, osRelease, `VERSION_CODENAME=bookworm`)
		// /etc is in the image at /etc (not only /usr/etc), and the ostree repo is there too.
		got := p.run(t, "run", "--rm", "--network=none", name, "sh", "-c",
			"test -s /etc/passwd && test -d /sysroot/ostree/repo/objects && echo ok")
		assert.Equal(t, "ok\n", got)

		c.mustRun(t, "verify", ref)
	})

	t.Run("oci-archive", func(t *testing.T) {
		archive := filepath.Join(work, "image.oci.tar")
		ref := "oci-archive:" + archive + ":v1"
		b, _ := c.build(t, "--bootc", "--from", src.Ref(), "--output", ref)
		assert.Equal(t, b1.ManifestDigest, b.ManifestDigest)

		var info skopeoInspect
		require.NoError(t, json.Unmarshal([]byte(run(t, "skopeo", "inspect", ref)), &info))
		assert.Equal(t, b1.ManifestDigest, info.Digest)
		assert.Equal(t, b1.Commit, info.Labels["ostree.commit"])
		var m imgspecv1.Manifest
		require.NoError(t, json.Unmarshal([]byte(run(t, "skopeo", "inspect", "--raw", ref)), &m))
		require.Len(t, m.Layers, len(b1.Layers))
		for i, l := range m.Layers[1:] {
			assert.Contains(t, l.Annotations, "ostree.components", "chunk layer %d keeps its annotation", i+1)
		}

		copied := ociImage{Layout: filepath.Join(work, "copied"), Tag: "v1"}
		run(t, "skopeo", "copy", "-q", ref, copied.Ref())
		assert.Equal(t, b1.ManifestDigest, copied.manifestDigest(t), "skopeo copy keeps the manifest")
		c.mustRun(t, "verify", ref)
		c.mustRun(t, "verify", copied.Ref())
	})

	t.Run("docker-archive", func(t *testing.T) {
		archive := filepath.Join(work, "image.docker.tar")
		ref := "docker-archive:" + archive + ":localhost/rechunker-roundtrip:v1"
		c.build(t, "--bootc", "--from", src.Ref(), "--output", ref)

		var info skopeoInspect
		require.NoError(t, json.Unmarshal([]byte(run(t, "skopeo", "inspect", "docker-archive:"+archive)), &info))
		assert.Equal(t, b1.Commit, info.Labels["ostree.commit"])
		assert.Equal(t, "1", info.Labels["containers.bootc"])
		assert.Len(t, info.Layers, len(b1.Layers))
		// docker-archive has no layer annotations: verify finds the components in the
		// plan label instead.
		c.mustRun(t, "verify", "docker-archive:"+archive)
	})
}

// manifestDigest is the digest of the image's manifest, from the layout's index.
func (i ociImage) manifestDigest(t testing.TB) string {
	t.Helper()
	var index imgspecv1.Index
	readJSON(t, filepath.Join(i.Layout, "index.json"), &index)
	for _, d := range index.Manifests {
		if d.Annotations[imgspecv1.AnnotationRefName] == i.Tag {
			return d.Digest.String()
		}
	}
	t.Fatalf("%s: tag %q not in index.json", i.Layout, i.Tag)
	return ""
}

// config reads the image's config from the layout.
func (i ociImage) config(t testing.TB) imgspecv1.Image {
	t.Helper()
	var cfg imgspecv1.Image
	readJSON(t, i.blob(i.manifest(t).Config.Digest.Encoded()), &cfg)
	return cfg
}
