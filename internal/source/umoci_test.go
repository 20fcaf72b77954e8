package source

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/rechunker-dev/rechunker/ostree"
)

func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	require.NoError(t, cmd.Run(), "%s %s: %s", name, strings.Join(args, " "), errb.String())
	return out.String()
}

// TestLoadMatchesOstreeCommitOfFlattenedImage builds a three-layer image with umoci
// (whiteouts, a directory emptied and refilled, hardlinks within and across layers,
// user.* xattrs, setuid, ownership, file<->directory replacement) plus a hand-made layer
// with an opaque directory and paths through a symlink, imports it with Load,
// and compares with real ostree committing the image's flattened root filesystem (as
// `umoci unpack` writes it, postprocessed like rpm-ostree): same `ostree ls -RC` output
// and same commit checksum.
func TestLoadMatchesOstreeCommitOfFlattenedImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an image with umoci and commits it with ostree; skipped in -short")
	}
	for _, tool := range []string{"umoci", "ostree"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: umoci unpack must restore ownership for the comparison")
	}
	work := t.TempDir()
	if err := unix.Setxattr(work, "user.probe", []byte("1"), 0); err != nil {
		t.Skipf("filesystem of %s has no user xattrs: %v", work, err)
	}
	run(t, work, "umoci", "init", "--layout", "img")
	run(t, work, "umoci", "new", "--image", "img:t")
	run(t, work, "umoci", "unpack", "--image", "img:t", "bundle")
	root := filepath.Join(work, "bundle", "rootfs")
	w := func(p, body string, mode os.FileMode) {
		p = filepath.Join(root, p)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(body), mode))
		require.NoError(t, os.Chmod(p, mode))
	}
	mkdir := func(p string, mode os.FileMode) {
		require.NoError(t, os.MkdirAll(filepath.Join(root, p), mode))
		require.NoError(t, os.Chmod(filepath.Join(root, p), mode))
	}
	xattr := func(p, k, v string) { require.NoError(t, unix.Lsetxattr(filepath.Join(root, p), k, []byte(v), 0)) }
	repack := func() { run(t, work, "umoci", "repack", "--refresh-bundle", "--image", "img:t", "bundle") }

	// Layer 1
	w("etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0o644)
	w("etc/shadow", "root:*::0:::::\n", 0o600)
	w("usr/bin/tool", "#!/bin/sh\necho v1\n", 0o755)
	w("usr/bin/suid", "suid", 0o4755|os.ModeSetuid)
	require.NoError(t, os.Chmod(filepath.Join(root, "usr/bin/suid"), 0o755|os.ModeSetuid))
	require.NoError(t, os.Link(filepath.Join(root, "usr/bin/tool"), filepath.Join(root, "usr/bin/tool-link")))
	w("usr/lib/libx.so", strings.Repeat("lib", 5000), 0o644)
	xattr("usr/lib/libx.so", "user.component", "libx")
	xattr("usr/lib/libx.so", "user.aaa", "first")
	require.NoError(t, os.Symlink("usr/lib", filepath.Join(root, "lib")))
	mkdir("home/user", 0o700)
	require.NoError(t, os.Chown(filepath.Join(root, "home/user"), 1000, 1000))
	w("home/user/.profile", "export X=1\n", 0o644)
	require.NoError(t, os.Lchown(filepath.Join(root, "home/user/.profile"), 1000, 1000))
	w("sysroot/ostree/repo/config", "[core]\n", 0o644)
	w("usr/share/doc/a", "a", 0o644)
	w("usr/share/doc/b", "b", 0o644)
	mkdir("opt/becomes-file", 0o755)
	w("opt/becomes-file/inner", "i", 0o644)
	w("opt/becomes-dir", "f", 0o644)
	mkdir("tmp", 0o1777)
	mkdir("var/empty", 0o755)
	repack()

	// Layer 2
	require.NoError(t, os.Remove(filepath.Join(root, "usr/bin/suid")))
	require.NoError(t, os.RemoveAll(filepath.Join(root, "usr/share/doc")))
	w("usr/share/doc/c", "c", 0o644)
	w("usr/bin/tool", "#!/bin/sh\necho v2\n", 0o755) // rewrites the shared inode: both links change
	require.NoError(t, os.Link(filepath.Join(root, "usr/lib/libx.so"), filepath.Join(root, "usr/lib/libx.so.1")))
	xattr("usr/share", "user.dir", "share")
	require.NoError(t, os.RemoveAll(filepath.Join(root, "opt/becomes-file")))
	w("opt/becomes-file", "now a file", 0o644)
	require.NoError(t, os.Remove(filepath.Join(root, "opt/becomes-dir")))
	w("opt/becomes-dir/x", "x", 0o644)
	repack()

	// Layer 3
	w("etc/motd", "hello\n", 0o644)
	require.NoError(t, os.Remove(filepath.Join(root, "etc/shadow")))
	require.NoError(t, os.Chmod(filepath.Join(root, "usr/lib"), 0o750))
	repack()

	// Layer 4, written by hand because umoci never writes opaque markers: an opaque
	// directory, and entries reached through the lib -> usr/lib symlink.
	raw := filepath.Join(work, "layer4.tar")
	require.NoError(t, os.WriteFile(raw, mkLayer(t,
		tarEntry{name: "usr/share/", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "usr/share/.wh..wh..opq"},
		tarEntry{name: "usr/share/new", body: "n"},
		tarEntry{name: "lib/.wh.libx.so.1"},
		tarEntry{name: "lib/added", body: "added", uid: 12, gid: 34},
	), 0o644))
	run(t, work, "umoci", "raw", "add-layer", "--image", "img:t", raw)

	s := newStore(t)
	in, err := Load(context.Background(), "oci:"+filepath.Join(work, "img")+":t", "", Options{Store: s})
	require.NoError(t, err)
	require.Len(t, in.Layers, 4)

	// The oracle: the flattened rootfs, postprocessed as rpm-ostree does, committed by ostree.
	run(t, work, "umoci", "unpack", "--image", "img:t", "flat")
	flat := filepath.Join(work, "flat", "rootfs")
	entries, err := os.ReadDir(filepath.Join(flat, "sysroot"))
	require.NoError(t, err)
	for _, e := range entries {
		require.NoError(t, os.RemoveAll(filepath.Join(flat, "sysroot", e.Name())))
	}
	require.NoError(t, os.Rename(filepath.Join(flat, "etc"), filepath.Join(flat, "usr", "etc")))
	repo := filepath.Join(work, "repo")
	run(t, work, "ostree", "init", "--repo="+repo, "--mode=bare-user")
	sum := strings.TrimSpace(run(t, work, "ostree", "commit", "--repo="+repo, "--orphan", "--no-bindings",
		"--timestamp=@"+strconv.FormatUint(in.Commit.Timestamp, 10), "--subject=", "--body=", "--tree=dir="+flat))
	want := run(t, work, "ostree", "ls", "--repo="+repo, "-RC", sum, "/")

	var got bytes.Buffer
	require.NoError(t, ostree.FormatLs(&got, in.Tree, "/", true))
	assert.Equal(t, want, got.String())
	for _, l := range in.Layers {
		t.Logf("layer %d: %+v", l.Index, l.Stats)
	}
	assert.Equal(t, sum, in.CommitSum.String())

	// The layers did what the test meant them to.
	assert.Nil(t, in.Tree.LookupFile("/usr/bin/suid"), "whiteout")
	assert.Nil(t, in.Tree.LookupDir("/usr/share/doc"), "opaque directory")
	assert.NotNil(t, in.Tree.LookupFile("/usr/lib/added"), "through the symlink")
	assert.Equal(t, in.Tree.LookupFile("/usr/bin/tool").Checksum, in.Tree.LookupFile("/usr/bin/tool-link").Checksum)
	assert.Nil(t, in.Tree.LookupFile("/usr/lib/libx.so.1"), "whiteout through the symlink")
	assert.NotNil(t, in.Tree.LookupDir("/opt/becomes-dir"))
	assert.NotNil(t, in.Tree.LookupFile("/opt/becomes-file"))
	whiteouts := 0
	for _, l := range in.Layers {
		whiteouts += l.Stats.Whiteouts + l.Stats.Opaques
	}
	assert.Positive(t, whiteouts)

	// Replaying the layer records gives the same commit.
	again, err := Load(context.Background(), "oci:"+filepath.Join(work, "img")+":t", "", Options{Store: s})
	require.NoError(t, err)
	assert.Equal(t, in.CommitSum, again.CommitSum)
	for _, l := range again.Layers {
		assert.True(t, l.Cached)
	}
}
