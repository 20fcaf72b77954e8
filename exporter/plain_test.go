package exporter

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/rechunk"
)

// plainNodes is sampleNodes with empty directories nested and carrying xattrs.
func plainNodes() []node {
	return append(sampleNodes(),
		node{path: "/opt", kind: 'd', mode: 0o755},
		node{path: "/opt/empty", kind: 'd', mode: 0o750, xattrs: map[string]string{"user.keep": "1"}},
		node{path: "/opt/empty/deeper", kind: 'd', mode: 0o700},
	)
}

func TestPlainUnpacksToSourceTree(t *testing.T) {
	needTool(t, "umoci")
	if os.Getuid() != 0 {
		t.Skip("umoci unpack keeps ownership only as root")
	}
	store := newStore(t)
	nodes := plainNodes()
	in := buildInput(t, store, nodes)
	res, dir := exportOCI(t, in, store, Options{Plain: true, Bootc: true})
	assert.Empty(t, res.Commit)
	bundle := filepath.Join(t.TempDir(), "bundle")
	run(t, "umoci", "unpack", "--image", dir+":latest", bundle)
	rootfs := filepath.Join(bundle, "rootfs")

	assert.Equal(t, expected(nodes), walkUnpacked(t, rootfs), "the tree, and nothing else (no repository, no /var/tmp)")
	a, _ := os.Stat(filepath.Join(rootfs, "usr/bin/sh"))
	b, _ := os.Stat(filepath.Join(rootfs, "usr/bin/sh-hardlink"))
	assert.True(t, os.SameFile(a, b), "one object in one layer is one inode")
}

// plainTarEntries lists each layer's tar entries as "type name [-> link]".
func plainTarEntries(t *testing.T, dir string, man imgspecv1.Manifest) [][]string {
	var out [][]string
	for _, l := range man.Layers {
		f, err := os.Open(filepath.Join(dir, "blobs", l.Digest.Algorithm().String(), l.Digest.Encoded()))
		require.NoError(t, err)
		zr, err := gzip.NewReader(f)
		require.NoError(t, err)
		tr := tar.NewReader(zr)
		var names []string
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
			e := string(h.Typeflag) + " " + h.Name
			if h.Linkname != "" {
				e += " -> " + h.Linkname
			}
			for k := range h.PAXRecords {
				if strings.HasPrefix(k, "SCHILY.xattr.security.selinux") {
					t.Errorf("%s carries %s", h.Name, k)
				}
			}
			names = append(names, e)
		}
		f.Close()
		out = append(out, names)
	}
	return out
}

func TestPlainImage(t *testing.T) {
	store := newStore(t)
	nodes := plainNodes()
	in := buildInput(t, store, nodes)
	res, dir := exportOCI(t, in, store, Options{Plain: true, Bootc: true})
	var man imgspecv1.Manifest
	readJSON(t, dir, res.ManifestDigest.String(), &man)
	var cfg imgspecv1.Image
	readJSON(t, dir, man.Config.Digest.String(), &cfg)

	plan := topLevelPlan(in)
	require.Len(t, man.Layers, len(plan.Layers), "one layer per planned layer, no commit layer")
	for i, l := range plan.Layers {
		assert.Equal(t, strings.Join(l.Components, ","), man.Layers[i].Annotations[rechunk.ComponentsAnnotation])
		assert.NotEmpty(t, man.Layers[i].Annotations[AnnLayerKey])
		assert.Equal(t, l.Name, cfg.History[i].CreatedBy)
	}
	for _, labels := range []map[string]string{cfg.Config.Labels, man.Annotations} {
		assert.NotContains(t, labels, LabelCommit, "not even the inherited one")
		assert.NotContains(t, labels, LabelFinalDiffID)
	}
	assert.Equal(t, "1", cfg.Config.Labels[LabelBootc])
	assert.Equal(t, "1", cfg.Config.Labels["rechunker.test"], "the plan's labels (history) are kept")

	entries := plainTarEntries(t, dir, man)
	all := strings.Join(func() []string {
		var s []string
		for _, e := range entries {
			s = append(s, e...)
		}
		return s
	}(), "\n")
	assert.NotContains(t, all, "sysroot/ostree")
	assert.NotContains(t, all, "usr/etc")
	// Layers in plan order: opt has no files, so the empty directories go to the
	// reserved (last, most likely to change: all equal) layer, parents first.
	assert.Equal(t, []string{"5 opt", "5 opt/empty", "5 opt/empty/deeper", "5 sysroot", "5 tmp"}, entries[len(entries)-1])
	assert.Contains(t, all, "0 usr/bin/sh\n1 usr/bin/sh-hardlink -> usr/bin/sh")
	assert.Contains(t, all, "5 etc\n0 etc/empty", "parents before their files, /usr/etc written as /etc")

	// Same input, same bytes.
	again, _ := exportOCI(t, in, store, Options{Plain: true, Bootc: true})
	assert.Equal(t, res.ManifestDigest, again.ManifestDigest)
	// Another format, other layers.
	ostreeRes, _ := exportOCI(t, in, store, Options{Bootc: true})
	assert.NotEqual(t, res.Layers[0].DiffID, ostreeRes.Layers[1].DiffID)
}

func TestPlainReusesPreviousBuild(t *testing.T) {
	store := newStore(t)
	in := buildInput(t, store, plainNodes())
	first, dir := exportOCI(t, in, store, Options{Plain: true, NoBlobCache: true})
	prev := []rechunk.Previous{previousOf("oci:"+dir+":latest", first)}
	second, _ := exportOCI(t, in, store, Options{Plain: true, NoBlobCache: true, Previous: prev})
	assert.Equal(t, first.ManifestDigest, second.ManifestDigest)
	for _, l := range second.Layers {
		assert.Equal(t, "previous-build", l.Reused, "layer %d (%s)", l.Index, l.Name)
	}
}

func TestEmptyDirs(t *testing.T) {
	for _, c := range []struct {
		name  string
		nodes []node
		want  []string
	}{
		{"none", []node{{path: "/a", kind: 'd'}, {path: "/a/f", kind: 'f'}}, nil},
		{"nested", []node{{path: "/a", kind: 'd'}, {path: "/a/b", kind: 'd'}, {path: "/a/b/c", kind: 'd'}, {path: "/z", kind: 'd'}},
			[]string{"/a", "/a/b", "/a/b/c", "/z"}},
		{"beside a file", []node{{path: "/a", kind: 'd'}, {path: "/a/f", kind: 'l', target: "x"}, {path: "/a/e", kind: 'd'}},
			[]string{"/a/e"}},
		{"file deep below", []node{{path: "/a", kind: 'd'}, {path: "/a/b", kind: 'd'}, {path: "/a/b/f", kind: 'f'}, {path: "/a/c", kind: 'd'}},
			[]string{"/a/c"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := buildInput(t, newStore(t), c.nodes)
			assert.Equal(t, c.want, emptyDirs(in.Tree))
		})
	}
}

func TestPlainDirsLayer(t *testing.T) {
	for _, c := range []struct {
		name string
		p    []float64
		want int
	}{
		{"no layers", nil, -1},
		{"highest", []float64{0.1, 0.9, 0.5}, 1},
		{"last of equals", []float64{1, 0.2, 1}, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			var layers []rechunk.Layer
			for _, p := range c.p {
				layers = append(layers, rechunk.Layer{ChangeProbability: p})
			}
			assert.Equal(t, c.want, plainDirsLayer(layers))
		})
	}
}

func TestPlainLinksOnlyIntoKeptDirs(t *testing.T) {
	store := newStore(t)
	in := buildInput(t, store, []node{
		{path: "/root", kind: 'd', mode: 0o700},
		{path: "/root/.bashrc", kind: 'f', mode: 0o644, data: "alias ll='ls -l'\n"},
		{path: "/usr", kind: 'd', mode: 0o755},
		{path: "/usr/share", kind: 'd', mode: 0o755},
		{path: "/usr/share/dot.bashrc", kind: 'f', mode: 0o644, data: "alias ll='ls -l'\n"},
		{path: "/usr/share/skel.bashrc", kind: 'f', mode: 0o644, data: "alias ll='ls -l'\n"},
	})
	plan := &rechunk.Plan{Labels: map[string]string{}}
	var l rechunk.Layer
	for _, p := range []string{"/root/.bashrc", "/usr/share/dot.bashrc", "/usr/share/skel.bashrc"} {
		i := strings.LastIndexByte(p, '/')
		l.Files = append(l.Files, rechunk.FileRef{Dir: p[:i+1], Name: p[i+1:], File: in.Tree.LookupFile(p)})
	}
	plan.Layers = []rechunk.Layer{l}
	dir := filepath.Join(t.TempDir(), "oci")
	res, err := Export(context.Background(), in, store, plan, Options{Plain: true, Output: "oci:" + dir + ":latest"})
	require.NoError(t, err)
	var man imgspecv1.Manifest
	readJSON(t, dir, res.ManifestDigest.String(), &man)
	assert.Equal(t, [][]string{{"5 root", "0 root/.bashrc", "5 usr", "5 usr/share", "0 usr/share/dot.bashrc",
		"1 usr/share/skel.bashrc -> usr/share/dot.bashrc"}}, plainTarEntries(t, dir, man),
		"no link into /root, which bootc drops; links into /usr")
}

func TestLinkTarget(t *testing.T) {
	for tp, want := range map[string]bool{
		"usr/bin/x": true, "etc/x": true, "var/lib/x": true,
		"root/x": false, "opt/x": false, "usrx/y": false, "boot/vmlinuz": false,
	} {
		assert.Equal(t, want, linkTarget(tp), tp)
	}
}
