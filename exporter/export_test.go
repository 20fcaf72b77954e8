package exporter

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/rechunker-dev/rechunker/ostree"
	"github.com/rechunker-dev/rechunker/rechunk"
)

func newStore(t testing.TB) *ostree.Store {
	s, err := ostree.OpenStore(filepath.Join(t.TempDir(), "store"))
	require.NoError(t, err)
	return s
}

// describe renders what a test compares for one path of an unpacked tree.
func describe(t testing.TB, root, rel string) string {
	t.Helper()
	p := filepath.Join(root, rel)
	st, err := os.Lstat(p)
	require.NoError(t, err)
	sys := st.Sys().(*syscall.Stat_t)
	perm := uint32(sys.Mode) &^ ostree.ModeTypeMask
	s := fmt.Sprintf("uid=%d gid=%d mode=%#o", sys.Uid, sys.Gid, perm)
	switch st.Mode().Type() {
	case fs.ModeDir:
		s = "dir " + s
	case fs.ModeSymlink:
		target, err := os.Readlink(p)
		require.NoError(t, err)
		return "symlink -> " + target
	default:
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		s = fmt.Sprintf("file %s size=%d sum=%x", s, len(data), ostree.ContentChecksum(ostree.FileHeader{Mode: ostree.ModeRegular}, data))
	}
	return s + " xattrs=" + userXattrs(t, p)
}

func userXattrs(t testing.TB, p string) string {
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	require.NoError(t, err)
	var out []string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if !strings.HasPrefix(name, "user.") {
			continue
		}
		v := make([]byte, 64<<10)
		k, err := unix.Lgetxattr(p, name, v)
		require.NoError(t, err)
		out = append(out, name+"="+string(v[:k]))
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// expected renders the nodes as describe would see them after unpacking.
func expected(nodes []node) map[string]string {
	m := map[string]string{}
	for _, n := range nodes {
		rel := tarPathV1(n.path)
		var xs []string
		for k, v := range n.xattrs {
			xs = append(xs, k+"="+v)
		}
		sort.Strings(xs)
		x := " xattrs=" + strings.Join(xs, ",")
		switch n.kind {
		case 'd':
			m[rel] = fmt.Sprintf("dir uid=%d gid=%d mode=%#o", n.uid, n.gid, n.mode) + x
		case 'l':
			m[rel] = "symlink -> " + n.target
		case 'f':
			m[rel] = fmt.Sprintf("file uid=%d gid=%d mode=%#o size=%d sum=%x", n.uid, n.gid, n.mode, len(n.data),
				ostree.ContentChecksum(ostree.FileHeader{Mode: ostree.ModeRegular}, []byte(n.data))) + x
		}
	}
	return m
}

func walkUnpacked(t testing.TB, root string) map[string]string {
	got := map[string]string{}
	require.NoError(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		got[rel] = describe(t, root, rel)
		if rel == "sysroot" {
			return filepath.SkipDir // the embedded repo, checked separately
		}
		return nil
	}))
	return got
}

func exportOCI(t testing.TB, in *Input, store *ostree.Store, o Options) (*Result, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "oci")
	o.Output = "oci:" + dir + ":latest"
	plan := topLevelPlan(in)
	res, err := Export(context.Background(), in, store, plan, o)
	require.NoError(t, err)
	return res, dir
}

func TestExportUnpacksToSourceTree(t *testing.T) {
	needTool(t, "umoci")
	if os.Getuid() != 0 {
		t.Skip("umoci unpack keeps ownership only as root")
	}
	for _, version := range []int{1, 2} {
		t.Run(fmt.Sprintf("format%d", version), func(t *testing.T) {
			store := newStore(t)
			nodes := sampleNodes()
			in := buildInput(t, store, nodes)
			res, dir := exportOCI(t, in, store, Options{FormatVersion: version, Bootc: true})
			bundle := filepath.Join(t.TempDir(), "bundle")
			run(t, "umoci", "unpack", "--image", dir+":latest", bundle)
			rootfs := filepath.Join(bundle, "rootfs")

			want := expected(nodes)
			want["var/tmp"] = "dir uid=0 gid=0 mode=01777 xattrs="
			got := walkUnpacked(t, rootfs)
			assert.Equal(t, want, got)
			_, err := os.Lstat(filepath.Join(rootfs, "usr/etc"))
			assert.ErrorIs(t, err, fs.ErrNotExist, "usr/etc must appear as etc")

			// Identical content objects are one inode: the hardlinked checkout.
			a, _ := os.Stat(filepath.Join(rootfs, "usr/bin/sh"))
			b, _ := os.Stat(filepath.Join(rootfs, "usr/bin/sh-hardlink"))
			assert.True(t, os.SameFile(a, b), "usr/bin/sh and sh-hardlink must be hardlinked")
			obj := filepath.Join(rootfs, "sysroot/ostree/repo", ostree.ObjectPath(in.Tree.LookupFile("/usr/bin/sh").Checksum, ostree.ObjFile))
			c, err := os.Stat(obj)
			require.NoError(t, err)
			assert.True(t, os.SameFile(a, c), "checkout path must be a hardlink to the object")

			commit := filepath.Join(rootfs, "sysroot/ostree/repo", ostree.ObjectPath(in.CommitSum, ostree.ObjCommit))
			assert.FileExists(t, commit)
			assert.Equal(t, in.CommitSum.String(), res.Commit)
		})
	}
}

// TestOstreeAcceptsObjects checks every unpacked object with the real ostree: the
// unpacked repository is a bare-split-xattrs repo, which ostree 2022.7 does not know,
// but its .file objects carry uid, gid, mode and (user) xattrs exactly like a "bare"
// repo, so switching the mode lets `ostree fsck` recompute every checksum.
func TestOstreeAcceptsObjects(t *testing.T) {
	needTool(t, "umoci")
	needTool(t, "ostree")
	if os.Getuid() != 0 {
		t.Skip("needs root to unpack ownership and to read a bare repo")
	}
	store := newStore(t)
	nodes := sampleNodes()
	in := buildInput(t, store, nodes)
	_, dir := exportOCI(t, in, store, Options{})
	bundle := filepath.Join(t.TempDir(), "bundle")
	run(t, "umoci", "unpack", "--image", dir+":latest", bundle)
	repo := filepath.Join(bundle, "rootfs/sysroot/ostree/repo")
	cfg, err := os.ReadFile(filepath.Join(repo, "config"))
	require.NoError(t, err)
	assert.Equal(t, repoConfig, string(cfg))
	require.NoError(t, os.WriteFile(filepath.Join(repo, "config"), []byte("[core]\nrepo_version=1\nmode=bare\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(repo, "refs/heads/test"), []byte(in.CommitSum.String()+"\n"), 0o644))
	out := run(t, "ostree", "fsck", "--repo="+repo)
	assert.Contains(t, out, "Verifying content integrity of 1 commit objects")
	// The checkout of the commit by ostree equals the unpacked tree.
	co := filepath.Join(t.TempDir(), "co")
	run(t, "ostree", "checkout", "--repo="+repo, "test", co)
	want := expected(nodes)
	got := walkUnpacked(t, co)
	// ostree checks out usr/etc where it is stored.
	remapped := map[string]string{}
	for k, v := range want {
		if k == "etc" || strings.HasPrefix(k, "etc/") {
			k = "usr/" + k
		}
		remapped[k] = v
	}
	assert.Equal(t, remapped, got)
}

func readJSON(t testing.TB, dir string, d string, v any) {
	t.Helper()
	alg, hex, _ := strings.Cut(d, ":")
	b, err := os.ReadFile(filepath.Join(dir, "blobs", alg, hex))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, v))
}

func TestImageMetadata(t *testing.T) {
	store := newStore(t)
	in := buildInput(t, store, sampleNodes())
	res, dir := exportOCI(t, in, store, Options{Bootc: true, Labels: map[string]string{"user": "label"}})
	var man imgspecv1.Manifest
	readJSON(t, dir, res.ManifestDigest.String(), &man)
	var cfg imgspecv1.Image
	readJSON(t, dir, man.Config.Digest.String(), &cfg)

	plan := topLevelPlan(in)
	require.Len(t, man.Layers, len(plan.Layers)+1)
	assert.Nil(t, man.Layers[0].Annotations, "the commit layer has no annotations")
	for i, l := range plan.Layers {
		assert.Equal(t, strings.Join(l.Components, ","), man.Layers[i+1].Annotations[rechunk.ComponentsAnnotation])
	}
	assert.Equal(t, "", man.Layers[len(man.Layers)-1].Annotations[rechunk.ComponentsAnnotation], "reserved bin")
	require.Len(t, cfg.History, len(man.Layers))
	assert.Equal(t, "ostree export of commit "+in.CommitSum.String(), cfg.History[0].CreatedBy)
	assert.Equal(t, plan.Layers[0].Name, cfg.History[1].CreatedBy)
	require.Len(t, cfg.RootFS.DiffIDs, len(man.Layers))
	final := cfg.RootFS.DiffIDs[len(cfg.RootFS.DiffIDs)-1]

	labels := cfg.Config.Labels
	assert.Equal(t, in.CommitSum.String(), labels[LabelCommit], "stale inherited ostree.commit replaced")
	assert.Equal(t, final.String(), labels[LabelFinalDiffID])
	assert.Equal(t, "1", labels[LabelBootc])
	assert.Equal(t, "label", labels["user"])
	assert.Equal(t, "1", labels["rechunker.test"])
	assert.Equal(t, "yes", labels["inherited"])
	_, inherited := man.Annotations["inherited"]
	assert.False(t, inherited, "manifest annotations carry only the computed labels")
	assert.Equal(t, in.CommitSum.String(), man.Annotations[LabelCommit])
	assert.Equal(t, in.Config.Config.Env, cfg.Config.Env)
	assert.Equal(t, in.Config.Config.Cmd, cfg.Config.Cmd)
	assert.Equal(t, "SIGRTMIN+3", cfg.Config.StopSignal)
	assert.Equal(t, "amd64", cfg.Architecture)
	assert.True(t, cfg.Created.Equal(in.Created))
	for i, l := range res.Layers {
		assert.Equal(t, man.Layers[i].Digest, l.Digest)
		assert.Equal(t, cfg.RootFS.DiffIDs[i], l.DiffID)
	}
}
