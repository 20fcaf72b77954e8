//go:build integration

package integration

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPlainImage builds the Debian bootc image in the plain format (--image-format
// plain: the tree's files in the chunk layers, no ostree commit) beside the ostree-ext
// format, for two upgrades: a config file changed (the demo's sshd drop-in) and the
// security update. Plain upgrades download no commit layer; everything else is the
// same plan, so a plain upgrade must fetch at most what the ostree one fetches minus its
// commit layer (plus 1% for the formats' different tar headers). Rebuilds are byte for
// byte, and the plain previous build is read back as history.
func TestPlainImage(t *testing.T) {
	requireRoot(t)
	requireTools(t, "debootstrap", "umoci", "tar", "zstd", "chroot")
	c := newCLI(t)

	sp := newSecurityPair(t)
	v2, v3 := sp.v2, sp.v3
	// The cached layout is shared: derive from a copy.
	layoutCopy := filepath.Join(t.TempDir(), "src")
	run(t, "cp", "-a", v2.Layout, layoutCopy)
	cfg := ociImage{Layout: layoutCopy, Tag: v2.Tag}.derive(t, "config", "disable ssh password auth", func(root string) {
		writeFile(t, root, sshdDropIn, sshdDropInContent, 0o644)
	})

	for _, up := range []struct {
		name     string
		from, to ociImage
	}{
		{"config-file", v2, cfg},
		{"security-update", v2, v3},
	} {
		t.Run(up.name, func(t *testing.T) {
			fetched := map[string]diffReport{}
			for _, format := range []string{"ostree", "plain"} {
				out := filepath.Join(t.TempDir(), "out")
				a, b := ociImage{Layout: out, Tag: "a"}, ociImage{Layout: out, Tag: "b"}
				c.build(t, "--bootc", "--image-format", format, "--from", up.from.Ref(), "--output", a.Ref())
				res, _ := c.build(t, "--bootc", "--image-format", format, "--from", up.to.Ref(), "--output", b.Ref(),
					"--previous-build", a.Ref())
				require.NotEmpty(t, res.FromPrevious, "%s: the previous build is read as history", format)
				assert.Positive(t, res.Reused, "%s: unchanged layers are reused", format)
				var rep struct {
					OK       bool                     `json:"ok"`
					Tree     struct{ Files int }      `json:"tree"`
					Warnings []struct{ Check string } `json:"warnings"`
				}
				c.json(t, &rep, "verify", "--json", b.Ref())
				require.True(t, rep.OK, "%s: verify", format)
				assert.Greater(t, rep.Tree.Files, 5000, "%s: verify reads the whole tree", format)
				for _, w := range rep.Warnings {
					assert.NotEqual(t, "kernel", w.Check, "%s: verify finds the kernel", format)
				}
				d := c.diff(t, a.Ref(), b.Ref())
				fetched[format] = d
				t.Logf("%s %s: fetches %d of %d layers, %d B: %s", up.name, format, d.LayersFetched, d.LayersTotal,
					d.BytesFetched, d.describe())
				if format == "plain" {
					labels := b.config(t).Config.Labels
					assert.NotContains(t, labels, "ostree.commit")
					assert.NotContains(t, labels, "ostree.final-diffid")
					// Byte for byte: the same build again into a fresh layout.
					again := ociImage{Layout: filepath.Join(t.TempDir(), "again"), Tag: "b"}
					c.build(t, "--bootc", "--image-format", format, "--from", up.to.Ref(), "--output", again.Ref(),
						"--previous-build", a.Ref())
					assert.Equal(t, b.manifestDigest(t), again.manifestDigest(t), "plain rebuild is reproducible")
				}
			}
			commit, ok := fetched["ostree"].commitLayer()
			require.True(t, ok)
			limit := float64(fetched["ostree"].BytesFetched-commit.Size) * 1.01
			t.Logf("%s: plain %d B, ostree %d B of which commit layer %d B (plain / ostree without commit = %.3f)",
				up.name, fetched["plain"].BytesFetched, fetched["ostree"].BytesFetched, commit.Size,
				float64(fetched["plain"].BytesFetched)/float64(fetched["ostree"].BytesFetched-commit.Size))
			assert.LessOrEqual(t, float64(fetched["plain"].BytesFetched), limit,
				"plain upgrade fetches what the ostree one does minus its commit layer, or less")
			if up.name == "config-file" {
				assert.LessOrEqual(t, fetched["plain"].BytesFetched, int64(100_000),
					fmt.Sprintf("a config-file upgrade of a plain image: %s", fetched["plain"].describe()))
			}
		})
	}
}

// TestZstdChunkedImage builds the security update's two releases plain with
// --compression zstd:chunked: the table-of-contents annotations are on every layer and
// match the blob, release 2 reuses release 1's blobs, a rebuild is byte for byte, and
// verify reads it. The download (whole layers, as bootc's ostree backend fetches them)
// is logged beside the gzip figure of TestPlainImage.
func TestZstdChunkedImage(t *testing.T) {
	requireRoot(t)
	requireTools(t, "debootstrap", "umoci", "tar", "zstd", "chroot")
	c := newCLI(t)
	sp := newSecurityPair(t)
	v2, v3 := sp.v2, sp.v3

	out := filepath.Join(t.TempDir(), "out")
	a, b := ociImage{Layout: out, Tag: "a"}, ociImage{Layout: out, Tag: "b"}
	flags := []string{"--bootc", "--image-format", "plain", "--compression", "zstd:chunked"}
	c.build(t, append(flags, "--from", v2.Ref(), "--output", a.Ref())...)
	res, _ := c.build(t, append(flags, "--from", v3.Ref(), "--output", b.Ref(), "--previous-build", a.Ref())...)
	assert.Positive(t, res.Reused, "unchanged zstd:chunked layers are reused")
	for i, l := range b.manifest(t).Layers {
		assert.Equal(t, "application/vnd.oci.image.layer.v1.tar+zstd", l.MediaType)
		assert.NotEmpty(t, l.Annotations["io.github.containers.zstd-chunked.manifest-checksum"], "layer %d", i)
		assert.NotEmpty(t, l.Annotations["io.github.containers.zstd-chunked.manifest-position"], "layer %d", i)
	}
	c.mustRun(t, "verify", b.Ref())
	again := ociImage{Layout: filepath.Join(t.TempDir(), "again"), Tag: "b"}
	c.build(t, append(flags, "--from", v3.Ref(), "--output", again.Ref(), "--previous-build", a.Ref())...)
	assert.Equal(t, b.manifestDigest(t), again.manifestDigest(t), "zstd:chunked rebuild is reproducible")
	d := c.diff(t, a.Ref(), b.Ref())
	t.Logf("security update, plain + zstd:chunked: fetches %d of %d layers, %d B (whole layers)", d.LayersFetched, d.LayersTotal, d.BytesFetched)
}
