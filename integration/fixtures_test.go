//go:build integration

package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFixtureBuilders checks the assumptions the scenarios build on, against the real
// tools, on small trees: umoci keeps user.component in the layer it packs, skopeo keeps
// the bound image's digests, and rpm installs into a root with its own database whose
// file digests are the plain sha256 of the content (what rechunker maps files by).
func TestFixtureBuilders(t *testing.T) {
	requireRoot(t)
	requireTools(t, "umoci", "skopeo", "setfattr", "rpmbuild", "rpm")
	work := t.TempDir()
	app := newAppImage(t, filepath.Join(work, "app"), "v1", 1<<20)

	const conf = "key = value\n"
	rpmFile := buildRPM(t, rpmPackage{Name: "hello", Version: "1.0", Release: "1",
		Files: map[string]string{"/usr/share/hello/hello.conf": conf, "/usr/bin/hello": "#!/bin/sh\necho hi\n"}})

	img := newEmptyImage(t, filepath.Join(work, "os"), "v1")
	var sha string
	img = img.derive(t, "v1", "fixture", func(root string) {
		writeFile(t, root, "etc/os-release", "ID=test\n", 0o644)
		sha = embedBoundImage(t, root, app, "localhost/app:v1", "containers")
		installRPMs(t, root, rpmFile)

		mapping, err := os.ReadFile(filepath.Join(root, boundImageDir, "mapping.txt"))
		require.NoError(t, err)
		assert.Equal(t, "localhost/app:v1 "+sha+"\n", string(mapping))

		q := run(t, "rpm", "--root", root, "--dbpath", rpmDBPath, "-qa", "--qf", "%{NAME}-%{VERSION}-%{RELEASE}\n")
		assert.Equal(t, "hello-1.0-1", strings.TrimSpace(q))
		assert.FileExists(t, filepath.Join(root, rpmDBPath, "rpmdb.sqlite"))
		digests := run(t, "rpm", "--root", root, "--dbpath", rpmDBPath, "-q", "--qf", "[%{FILENAMES} %{FILEDIGESTS}\n]", "hello")
		sum := sha256.Sum256([]byte(conf))
		assert.Contains(t, digests, "/usr/share/hello/hello.conf "+hex.EncodeToString(sum[:]))
	})

	x := img.layerXattrs(t, -1)
	assert.Equal(t, "containers", x[boundImageDir+"/"]["user.component"], "xattrs in layer: %v", x)
	m := img.manifest(t)
	require.Len(t, m.Layers, 1)
	assert.FileExists(t, filepath.Join(work, "app", "blobs", "sha256", sha), "bound image manifest digest is the directory name")
}
