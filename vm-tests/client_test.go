package vmtests

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestClientRefusesBrokenImages breaks a real rechunker image the ways a writer
// bug or a lying registry would, and checks that the QEMU suite's host side
// (the libostree client, `ostree fsck`, `ostree admin deploy`) fails with a
// message that names the object and the path. No VM is booted.
func TestClientRefusesBrokenImages(t *testing.T) {
	env := newClientEnv(t)
	const target = "usr/bin/hello"
	tests := []struct {
		name   string
		rootfs func(root string) // changes the tree before the build
		break_ func(t *testing.T, img string)
		stage  string // "import", "check" or "deploy"
		want   []string
	}{
		{name: "intact image deploys", stage: ""},
		{name: "dropped object", stage: "check",
			break_: func(t *testing.T, img string) { dropObject(t, img, target, false) },
			want:   []string{"is incomplete: 1 objects missing", "for path /" + target, "ostree fsck says:"}},
		{name: "wrong checksum", stage: "import",
			break_: func(t *testing.T, img string) { corruptObject(t, img, target) },
			want:   []string{"libostree refused content object", "Corrupted file object", "/" + target}},
		{name: "xattrs entry missing", stage: "import",
			break_: func(t *testing.T, img string) { dropObject(t, img, target, true) },
			want:   []string{"Missing xattrs reference for content object"}},
		{name: "missing kernel", stage: "deploy",
			rootfs: func(root string) { require.NoError(t, os.RemoveAll(filepath.Join(root, "usr/lib/modules"))) },
			want:   []string{"set up a sysroot", "Failed to find kernel in /usr/lib/modules"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img := env.build(t, tc.rootfs)
			if tc.break_ != nil {
				tc.break_(t, img)
			}
			err := env.importAndDeploy(t, img)
			if tc.stage == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			t.Logf("the suite would say: %v", err)
			assert.Contains(t, err.Error(), tc.stage+":", "fails at the %s stage", tc.stage)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

type clientEnv struct {
	ctx    context.Context
	bin    string
	client Client
}

func newClientEnv(t *testing.T) clientEnv {
	if testing.Short() {
		t.Skip("builds the rechunker CLI and drives libostree")
	}
	var missing []string
	for _, tool := range []string{"ostree", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	client := Client{Python: "/usr/bin/python3", Script: mustAbsPath(t, "client/ostree_client.py")}
	if exec.Command(client.Python, "-c", "import gi; gi.require_version('OSTree', '1.0')").Run() != nil {
		missing = append(missing, "python3-gi and gir1.2-ostree-1.0")
	}
	if os.Getuid() != 0 {
		missing = append(missing, "root (ostree admin deploy keeps file ownership)")
	}
	if len(missing) > 0 {
		msg := "needs " + strings.Join(missing, ", ") + " (sudo ./hack/setup.sh)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	bin := filepath.Join(t.TempDir(), "rechunker")
	require.NoError(t, BuildRechunker(ctx, mustAbsPath(t, ".."), bin))
	return clientEnv{ctx: ctx, bin: bin, client: client}
}

// build chunks a tiny bootable-looking tree and returns its OCI layout DIR:TAG.
func (e clientEnv) build(t *testing.T, modify func(root string)) string {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	files := map[string]string{
		"usr/bin/hello": "#!/bin/sh\necho hello\n", "usr/lib/os-release": "ID=clienttest\n",
		"etc/hostname": "test\n", "usr/lib/modules/6.1.0-test/vmlinuz": "not a real kernel",
		"usr/lib/modules/6.1.0-test/initramfs.img": "not a real initramfs",
	}
	for p, content := range files {
		require.NoError(t, os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(root, p), []byte(content), 0o755))
	}
	for _, d := range []string{"sysroot", "dev", "proc", "sys", "run", "tmp", "var"} {
		require.NoError(t, os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	require.NoError(t, os.Symlink("sysroot/ostree", filepath.Join(root, "ostree")))
	if modify != nil {
		modify(root)
	}
	out := filepath.Join(dir, "out")
	_, err := Run(e.ctx, Cmd{Name: e.bin, Args: []string{"build", "--bootc", "--quiet", "--rootfs", root, "--output", "oci:" + out + ":v1"}}, nil)
	require.NoError(t, err)
	return out + ":v1"
}

// importAndDeploy runs the QEMU suite's host side on img; the error starts
// with the stage that failed.
func (e clientEnv) importAndDeploy(t *testing.T, img string) error {
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	_, err := Run(e.ctx, Cmd{Name: "ostree", Args: []string{"init", "--repo=" + repo, "--mode=bare"}}, nil)
	require.NoError(t, err)
	imp, err := e.client.Import(e.ctx, repo, img, nil, "")
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if err := e.client.CheckComplete(e.ctx, repo, imp.Commit); err != nil {
		return fmt.Errorf("check: %w", err)
	}
	sysroot := filepath.Join(dir, "sysroot")
	t.Cleanup(func() { assert.NoError(t, RemoveSysroot(context.Background(), sysroot)) })
	if err := NewSysroot(e.ctx, sysroot, repo, imp.Commit); err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	return nil
}

// objectOf finds the layer whose checkout entry for path hardlinks its object,
// and the object's tar path.
func objectOf(t *testing.T, img, path string) (int, string) {
	layout, tag, _ := strings.Cut(img, ":")
	m, _ := readManifest(t, layout, tag)
	for i, l := range m.Layers {
		found := ""
		rewriteLayer(t, layout, l, func(h *tar.Header, data []byte) (*tar.Header, []byte) {
			if h.Name == path && h.Typeflag == tar.TypeLink {
				found = h.Linkname
			}
			return h, data
		})
		if found != "" {
			return i, found
		}
	}
	t.Fatalf("no layer of %s has a checkout entry for %s", img, path)
	return 0, ""
}

// dropObject removes path's content object (or only its xattrs entry) from its layer.
func dropObject(t *testing.T, img, path string, xattrsOnly bool) {
	idx, obj := objectOf(t, img, path)
	xattrs := strings.TrimSuffix(obj, ".file") + ".file-xattrs-link"
	mutateImage(t, img, idx, func(h *tar.Header, data []byte) (*tar.Header, []byte) {
		if h.Name == xattrs || (!xattrsOnly && h.Name == obj) {
			return nil, nil
		}
		return h, data
	})
}

// corruptObject changes one byte of path's content object, keeping its name.
func corruptObject(t *testing.T, img, path string) {
	idx, obj := objectOf(t, img, path)
	mutateImage(t, img, idx, func(h *tar.Header, data []byte) (*tar.Header, []byte) {
		if h.Name == obj && len(data) > 0 {
			data = append([]byte(nil), data...)
			data[0] ^= 0x20
		}
		return h, data
	})
}

func readManifest(t *testing.T, layout, tag string) (imgspecv1.Manifest, imgspecv1.Index) {
	var index imgspecv1.Index
	readJSONFile(t, filepath.Join(layout, "index.json"), &index)
	for _, d := range index.Manifests {
		if d.Annotations[imgspecv1.AnnotationRefName] == tag {
			var m imgspecv1.Manifest
			readJSONFile(t, blobPath(layout, d.Digest), &m)
			return m, index
		}
	}
	t.Fatalf("no manifest tagged %s in %s", tag, layout)
	return imgspecv1.Manifest{}, index
}

// rewriteLayer streams layer l through f (nil header: drop the entry) and
// returns the new blob's descriptor and diff_id.
func rewriteLayer(t *testing.T, layout string, l imgspecv1.Descriptor, f func(*tar.Header, []byte) (*tar.Header, []byte)) (imgspecv1.Descriptor, digest.Digest) {
	in, err := os.Open(blobPath(layout, l.Digest))
	require.NoError(t, err)
	defer in.Close()
	zr, err := gzip.NewReader(in)
	require.NoError(t, err)
	var blob, raw bytes.Buffer
	zw := gzip.NewWriter(&blob)
	tw := tar.NewWriter(io.MultiWriter(zw, &raw))
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		data, err := io.ReadAll(tr)
		require.NoError(t, err)
		if h, data = f(h, data); h == nil {
			continue
		}
		require.NoError(t, tw.WriteHeader(h))
		_, err = tw.Write(data)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, zw.Close())
	d := digest.FromBytes(blob.Bytes())
	require.NoError(t, os.WriteFile(blobPath(layout, d), blob.Bytes(), 0o644))
	l.Digest, l.Size = d, int64(blob.Len())
	return l, digest.FromBytes(raw.Bytes())
}

// mutateImage rewrites layer idx of img and updates its config and manifest,
// as a registry serving altered blobs under a consistent manifest would.
func mutateImage(t *testing.T, img string, idx int, f func(*tar.Header, []byte) (*tar.Header, []byte)) {
	layout, tag, _ := strings.Cut(img, ":")
	m, index := readManifest(t, layout, tag)
	var cfg imgspecv1.Image
	readJSONFile(t, blobPath(layout, m.Config.Digest), &cfg)
	oldDiffID := cfg.RootFS.DiffIDs[idx]
	var diffID digest.Digest
	m.Layers[idx], diffID = rewriteLayer(t, layout, m.Layers[idx], f)
	cfg.RootFS.DiffIDs[idx] = diffID
	if cfg.Config.Labels["ostree.final-diffid"] == oldDiffID.String() {
		cfg.Config.Labels["ostree.final-diffid"] = diffID.String()
	}
	m.Config = writeJSONBlob(t, layout, m.Config, cfg)
	for i, d := range index.Manifests {
		if d.Annotations[imgspecv1.AnnotationRefName] == tag {
			index.Manifests[i] = writeJSONBlob(t, layout, d, m)
		}
	}
	b, err := json.Marshal(index)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(layout, "index.json"), b, 0o644))
}

func writeJSONBlob(t *testing.T, layout string, d imgspecv1.Descriptor, v any) imgspecv1.Descriptor {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	d.Digest = digest.Digest(fmt.Sprintf("sha256:%x", sha256.Sum256(b)))
	d.Size = int64(len(b))
	require.NoError(t, os.WriteFile(blobPath(layout, d.Digest), b, 0o644))
	return d
}

func blobPath(layout string, d digest.Digest) string {
	return filepath.Join(layout, "blobs", d.Algorithm().String(), d.Encoded())
}

func readJSONFile(t *testing.T, path string, v any) {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, v))
}

func mustAbsPath(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	require.NoError(t, err)
	return a
}
