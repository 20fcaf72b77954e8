//go:build integration

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// partialBlobSize is the size of each random blob in the partial-change scenarios: big
// enough that a blob gets a layer of its own inside a large component.
const partialBlobSize = 20 << 20

// newBlobImage builds a small application image with one layer per seed, each adding
// /data/blob<i>.bin of partialBlobSize random bytes, tagged name-l1, name-l2, ... and
// name for the last. A variant replacing only the last blob derives from name-l<n-1>,
// so the earlier blobs stay byte-identical.
func newBlobImage(t testing.TB, layout, name string, seeds ...uint64) ociImage {
	t.Helper()
	img := newEmptyImage(t, layout, name+"-l0")
	for i, seed := range seeds {
		tag := fmt.Sprintf("%s-l%d", name, i+1)
		if i == len(seeds)-1 {
			tag = name
		}
		img = img.derive(t, tag, fmt.Sprintf("blob %d", i+1), func(root string) {
			writeRandomFile(t, filepath.Join(root, fmt.Sprintf("data/blob%d.bin", i+1)), partialBlobSize, seed)
		})
	}
	return img
}

// lastLayerSize is the compressed size of an image's last layer blob.
func lastLayerSize(t testing.TB, img ociImage) int64 {
	t.Helper()
	m := img.manifest(t)
	return m.Layers[len(m.Layers)-1].Size
}

// TestPartialComponentUpdate is ISSUE 9: a component much bigger than one layer should
// not be downloaded whole when only part of it changes. Two cases, each with v1 and a
// from-scratch rebuild v2:
//
//   - embedded images: a user.component=containers directory holds two physically bound
//     images (skopeo dir: copies) of three ~20 MiB layers each; v2 carries a new version
//     of one image whose last layer changed (the directory, named by manifest digest,
//     changes name too);
//   - a big package: an rpm with four ~20 MiB files, of which v2's version changes one.
//
// The chunked upgrade must fetch about the changed blob (plus the commit layer and the
// component's layer of small files), far less than the component. The log line also
// gives the upgrade as it would be with the component kept in one layer (the sum of the
// component's layers) and the plain images' upgrade.
func TestPartialComponentUpdate(t *testing.T) {
	requireRoot(t)
	requireTools(t, "umoci", "skopeo", "setfattr", "rpmbuild", "rpm")

	base := func(t *testing.T, work string) ociImage {
		t.Helper()
		img := newEmptyImage(t, filepath.Join(work, "src"), "base")
		img.configure(t, "--config.label", "containers.bootc=1")
		return img.derive(t, "base", "os files", func(root string) {
			writeFile(t, root, "usr/lib/os-release", "ID=partialtest\nVERSION_ID=1\n", 0o644)
			require.NoError(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
			require.NoError(t, os.Symlink("../usr/lib/os-release", filepath.Join(root, "etc/os-release")))
			writeFile(t, root, "usr/bin/tool", "#!/bin/sh\necho tool\n", 0o755)
			addBootcRoot(t, root)
		})
	}

	type release struct {
		name   string
		modify func(root string)
	}
	// upgrade builds v1 and v2 (each from base) plain and chunked, logs the summary and
	// returns the chunked diff and the size of component's layers in v2.
	upgrade := func(t *testing.T, scenario, component string, v1, v2 release, changed int64) (diffReport, int64) {
		c := newCLI(t)
		work := t.TempDir()
		b := base(t, work)
		s1 := b.derive(t, v1.name, "build "+v1.name, v1.modify)
		s2 := b.derive(t, v2.name, "build "+v2.name, v2.modify)
		out := filepath.Join(work, "out")
		c1, c2 := ociImage{Layout: out, Tag: "v1"}, ociImage{Layout: out, Tag: "v2"}
		_, first := c.build(t, "--bootc", "--from", s1.Ref(), "--output", c1.Ref())
		_, next := c.build(t, "--bootc", "--from", s2.Ref(), "--output", c2.Ref(), "--previous-build", c1.Ref())
		c.mustRun(t, "verify", c2.Ref())
		plain := c.diff(t, s1.Ref(), s2.Ref())
		d := c.diff(t, c1.Ref(), c2.Ref())
		t.Logf("chunked upgrade fetches %d of %d layers, %d of %d B: %s", d.LayersFetched, d.LayersTotal,
			d.BytesFetched, d.BytesTotal, d.describe())

		commit, ok := d.commitLayer()
		require.True(t, ok)
		fetched, reused := d.layersWith(component)
		whole := sumSizes(fetched) + sumSizes(reused)
		oneLayer := commit.Size + whole // the component in one layer: all of it changes
		scenarioSummary{
			Scenario: scenario, Fetched: d.BytesFetched, LayersFetched: d.LayersFetched, LayersTotal: d.LayersTotal,
			Unchunked: plain.BytesFetched, LowerBound: changed, BuildFirst: first, BuildNext: next,
			Note: fmt.Sprintf("component %s in %d layers (%d B; %d fetched); as one layer the upgrade would fetch %d B",
				component, len(fetched)+len(reused), whole, len(fetched), oneLayer),
		}.log(t)
		require.False(t, d.SameImage)
		assert.GreaterOrEqual(t, len(fetched)+len(reused), 3, "a %d B component spans several layers", whole)
		assert.GreaterOrEqual(t, d.BytesFetched, changed, "the changed blob must be downloaded")
		return d, whole
	}
	// aboutChanged asserts that d fetches about the changed bytes: the changed blob, the
	// commit layer and small files, far less than the whole component.
	aboutChanged := func(t *testing.T, d diffReport, changed, whole int64) {
		commit, _ := d.commitLayer()
		assert.LessOrEqual(t, d.BytesFetched, changed+changed/10+commit.Size+(1<<20),
			"about the changed blob (%d B), the commit layer (%d B) and small files: %s", changed, commit.Size, d.describe())
		assert.Less(t, d.BytesFetched, (commit.Size+whole)/2, "far below the whole component (%d B)", whole)
	}

	// Two bound images of three blobs each; v2 has a new version of image a whose last
	// blob changed. dirs names their directories (empty: by manifest digest).
	embedded := func(t *testing.T, scenario string, dirs [2]string) (diffReport, int64, int64) {
		apps := filepath.Join(t.TempDir(), "apps")
		a := newBlobImage(t, apps, "a", 11, 12, 13)
		bImg := newBlobImage(t, apps, "b", 21, 22, 23)
		a2 := ociImage{Layout: apps, Tag: "a-l2"}.derive(t, "a2", "blob 3 updated", func(root string) {
			writeRandomFile(t, filepath.Join(root, "data/blob3.bin"), partialBlobSize, 14)
		})
		require.Equal(t, a.manifest(t).Layers[:2], a2.manifest(t).Layers[:2], "a2 keeps a's first two blobs")
		embed := func(first ociImage, tag string) func(string) {
			return func(root string) {
				embedBoundImageAs(t, root, first, "localhost/a:"+tag, dirs[0], "containers")
				embedBoundImageAs(t, root, bImg, "localhost/b:1", dirs[1], "containers")
			}
		}
		changed := lastLayerSize(t, a2)
		d, whole := upgrade(t, scenario, "containers", release{"v1", embed(a, "1")}, release{"v2", embed(a2, "2")}, changed)
		return d, changed, whole
	}

	t.Run("embedded-images", func(t *testing.T) {
		// Directories named after the images: an unchanged blob keeps its path.
		d, changed, whole := embedded(t, "embedded-images-one-blob", [2]string{"a", "b"})
		aboutChanged(t, d, changed, whole)
	})

	t.Run("embedded-images-digest-dirs", func(t *testing.T) {
		// Directories named by manifest digest (as hack/demo.sh and vm-tests do): the new
		// version of image a lives at a new path, so each of its blobs is a new file for
		// the layout, and a chunk layer carries its files' paths: all of a's blobs are
		// downloaded again, but none of b's.
		d, changed, whole := embedded(t, "embedded-images-one-blob-digest-dirs", [2]string{})
		commit, _ := d.commitLayer()
		assert.LessOrEqual(t, d.BytesFetched, 3*(changed+changed/10)+commit.Size+(1<<20),
			"at most image a's three blobs, the commit layer and small files: %s", d.describe())
		assert.Less(t, d.BytesFetched, (commit.Size+whole)*6/10, "less than the whole component (%d B)", whole)
	})

	t.Run("big-package", func(t *testing.T) {
		blobs := t.TempDir()
		pkg := func(version string, seeds [4]uint64) string {
			files := map[string]string{}
			for i, seed := range seeds {
				p := filepath.Join(blobs, fmt.Sprintf("%s-%d.bin", version, i))
				writeRandomFile(t, p, partialBlobSize, seed)
				files[fmt.Sprintf("/usr/share/bigdata/part%d.bin", i)] = p
			}
			return buildRPM(t, rpmPackage{Name: "bigdata", Version: version, Release: "1", Blobs: files,
				Files: map[string]string{"/usr/share/doc/bigdata/README": "bigdata " + version + "\n"}})
		}
		small := buildRPM(t, rpmPackage{Name: "small", Version: "1.0", Release: "1",
			Files: map[string]string{"/usr/bin/small": "#!/bin/sh\necho small\n"}})
		p1 := pkg("1.0", [4]uint64{31, 32, 33, 34})
		p2 := pkg("1.1", [4]uint64{31, 32, 35, 34}) // part2.bin changes
		install := func(rpm string) func(string) {
			return func(root string) { installRPMs(t, root, small, rpm) }
		}
		// Random data does not compress: the changed file's gzip size is about its size.
		d, whole := upgrade(t, "big-package-one-file", "bigdata", release{"v1", install(p1)}, release{"v2", install(p2)},
			partialBlobSize)
		aboutChanged(t, d, partialBlobSize, whole)
	})
}
