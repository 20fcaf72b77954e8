//go:build integration

package integration

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDerivedImageKeepsBaseMarks builds an image FROM a chunked base whose /usr/lib/app
// directory is marked user.component=app. The container view of a chunked image has its
// directories without xattrs (ostree-ext keeps them in dirmeta objects only), so the
// derived image would lose the mark; rechunker reads it back from the base's commit in
// /sysroot/ostree/repo. Rechunked with the base as previous build, app keeps a layer of
// its own, the same blob as in the base.
func TestDerivedImageKeepsBaseMarks(t *testing.T) {
	requireRoot(t)
	requireTools(t, "umoci", "setfattr", "getfattr")
	c := newCLI(t)
	work := t.TempDir()

	src := newEmptyImage(t, filepath.Join(work, "src"), "v1")
	src.configure(t, "--config.label", "containers.bootc=1")
	src = src.derive(t, "v1", "os files", func(root string) {
		writeFile(t, root, "usr/lib/os-release", "ID=derivedtest\n", 0o644)
		writeRandomFile(t, filepath.Join(root, "usr/lib/app/data.bin"), 1<<20, 7)
		writeFile(t, root, "usr/lib/app/app.conf", "mode = fast\n", 0o644)
		writeFile(t, root, "usr/bin/tool", "#!/bin/sh\necho tool\n", 0o755)
		run(t, "setfattr", "-n", "user.component", "-v", "app", filepath.Join(root, "usr/lib/app"))
		addBootcRoot(t, root)
	})
	out := filepath.Join(work, "out")
	base := ociImage{Layout: out, Tag: "base"}
	b1, _ := c.build(t, "--bootc", "--from", src.Ref(), "--output", base.Ref())
	appLayer := func(b buildOutput) (buildLayer, bool) {
		for _, l := range b.Layers {
			if len(l.Components) == 1 && l.Components[0] == "app" {
				return l, true
			}
		}
		return buildLayer{}, false
	}
	l1, ok := appLayer(b1)
	require.True(t, ok, "the base has a layer of its own for component app: %+v", b1.Layers)

	// FROM base: one more layer. The mark is gone from the container view.
	derived := base.derive(t, "derived", "add a file", func(root string) {
		err := exec.Command("getfattr", "-n", "user.component", filepath.Join(root, "usr/lib/app")).Run()
		require.Error(t, err, "the chunked base's container view has no directory xattrs")
		writeFile(t, root, "usr/share/derived/readme", "added by the derived image\n", 0o644)
	})
	b2, _ := c.build(t, "--bootc", "--from", derived.Ref(), "--output", ociImage{Layout: out, Tag: "derived-chunked"}.Ref(),
		"--previous-build", base.Ref())
	assert.Equal(t, 1, b2.BaseMarks, "one directory mark restored from the base's commit")
	l2, ok := appLayer(b2)
	require.True(t, ok, "the derived image keeps component app in a layer of its own: %+v", b2.Layers)
	assert.Equal(t, l1.Digest, l2.Digest, "the app layer is the base's blob: a client already has it")
	c.mustRun(t, "verify", ociImage{Layout: out, Tag: "derived-chunked"}.Ref())
}
