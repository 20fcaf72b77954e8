// Package bootctest is test scaffolding only: a small, independent writer of ostree-ext chunked images
// (section 2 of the format notes) used to exercise Verify until, and besides, the real
// exporter. It builds the tree with ostree/ encodings, lays out the commit layer and
// chunk layers by hand with archive/tar, and writes an OCI image layout. It shares no
// code with exporter/ on purpose.
package bootctest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	imgspecs "github.com/opencontainers/image-spec/specs-go"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/internal/imageio"
	"github.com/rechunker-dev/rechunker/ostree"
)

// File is a file of the test tree, by commit path (etc lives at /usr/etc).
type File struct {
	Path   string
	Data   string
	Target string // symlink when set
	Mode   uint32 // permission bits; default 0644 (0777 for symlinks)
	UID    uint32
	Xattrs ostree.Xattrs
	Chunk  int // chunk layer index (1-based); 0 means 1
}

// Entry is one tar entry of a layer under construction.
type Entry struct {
	Hdr  tar.Header
	Data []byte
}

// Image describes an image to build.
type Image struct {
	Files          []File
	Chunks         int // number of chunk layers (>= max File.Chunk)
	HardlinkXattrs bool
	CommitMeta     bool
	Derived        [][]Entry
	Components     []string // ostree.components per chunk layer
	Labels         map[string]string
	Arch           string
	// EditLayer may rewrite layer i's entries before they are written.
	EditLayer func(i int, es []Entry) []Entry
	// EditImage may change manifest and config after the layers are written.
	EditImage func(m *imgspecv1.Manifest, c *imgspecv1.Image)
	// EditTree may add or remove directories of the commit tree before it is written
	// (files come from Files only: the chunk layers carry their objects).
	EditTree func(t *ostree.Tree)
}

// RootDirs are the directories Build creates in every commit, as a bootc base image
// has them: /sysroot, and the mount points bootc's api-base-directories lint wants.
var RootDirs = []string{"/sysroot", "/dev", "/proc", "/sys", "/run", "/tmp", "/var"}

// built is the result of Image.build.
type Built struct {
	Dir       string
	Ref       string
	CommitSum ostree.Checksum
	Sums      map[string]ostree.Checksum // commit path -> content checksum
	Manifest  imgspecv1.Manifest
	Config    imgspecv1.Image
}

type memMeta map[ostree.Checksum][]byte

func (m memMeta) WriteMetadata(_ ostree.ObjectType, data []byte) (ostree.Checksum, error) {
	c := ostree.Checksum(sha256.Sum256(data))
	m[c] = data
	return c, nil
}

func Hdr(name string, typ byte, mode int64, size int64) tar.Header {
	return tar.Header{Name: name, Typeflag: typ, Mode: mode, Size: size, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
}

func ObjPath(c ostree.Checksum, suffix string) string {
	s := c.String()
	return "sysroot/ostree/repo/objects/" + s[:2] + "/" + s[2:] + "." + suffix
}

func Skeleton() []Entry {
	var es []Entry
	for _, d := range []string{"sysroot", "sysroot/ostree", "sysroot/ostree/repo", "sysroot/ostree/repo/objects"} {
		es = append(es, Entry{Hdr: Hdr(d, tar.TypeDir, 0o755, 0)})
	}
	for i := 0; i < 256; i++ {
		es = append(es, Entry{Hdr: Hdr(fmt.Sprintf("sysroot/ostree/repo/objects/%02x", i), tar.TypeDir, 0o755, 0)})
	}
	for _, d := range []string{"extensions", "refs", "refs/heads", "refs/mirrors", "refs/remotes", "state", "tmp", "tmp/cache"} {
		es = append(es, Entry{Hdr: Hdr("sysroot/ostree/repo/"+d, tar.TypeDir, 0o755, 0)})
	}
	cfg := "[core]\nrepo_version=1\nmode=bare-split-xattrs\n"
	es = append(es, Entry{Hdr: Hdr("sysroot/ostree/repo/config", tar.TypeReg, 0o644, int64(len(cfg))), Data: []byte(cfg)})
	return es
}

// checkoutPath maps a commit path to its tar path (usr/etc is shown as etc).
func checkoutPath(p string) string {
	p = strings.TrimPrefix(p, "/")
	if p == "usr/etc" || strings.HasPrefix(p, "usr/etc/") {
		p = p[len("usr/"):]
	}
	return p
}

func (ti Image) Build(t testing.TB) *Built {
	t.Helper()
	tree := ostree.NewTree()
	mkdir := func(p string) *ostree.Dir {
		d := tree.Root
		parts, err := ostree.SplitPath(p)
		require.NoError(t, err)
		for _, c := range parts {
			if d.Dirs[c] == nil {
				d.Dirs[c] = ostree.NewDir(ostree.DirMeta{Mode: ostree.ModeDir | 0o755})
			}
			d = d.Dirs[c]
		}
		return d
	}
	for _, d := range RootDirs {
		mkdir(d)
	}
	mkdir("/var/tmp").Meta.Mode = ostree.ModeDir | 0o1777
	b := &Built{Sums: map[string]ostree.Checksum{}}
	chunkOf := map[ostree.Checksum]int{}
	payload := map[ostree.Checksum][]byte{}
	headers := map[ostree.Checksum]ostree.FileHeader{}
	pathsOf := map[ostree.Checksum][]string{}
	for _, f := range ti.Files {
		h := ostree.FileHeader{UID: f.UID, GID: f.UID, Mode: f.Mode, Xattrs: f.Xattrs.Normalize()}
		if f.Target != "" {
			h.Target = f.Target
			if h.Mode == 0 {
				h.Mode = 0o777
			}
			h.Mode |= ostree.ModeSymlink
		} else {
			if h.Mode == 0 {
				h.Mode = 0o644
			}
			h.Mode |= ostree.ModeRegular
		}
		sum := ostree.ContentChecksum(h, []byte(f.Data))
		mkdir(path.Dir(f.Path)).Files[path.Base(f.Path)] = &ostree.File{Header: &h, Size: int64(len(f.Data)), Checksum: sum}
		b.Sums[f.Path] = sum
		c := max(f.Chunk, 1)
		if _, ok := chunkOf[sum]; !ok {
			chunkOf[sum] = c
		}
		payload[sum], headers[sum] = []byte(f.Data), h
		pathsOf[sum] = append(pathsOf[sum], f.Path)
	}
	if ti.EditTree != nil {
		ti.EditTree(tree)
	}
	meta := memMeta{}
	rootTree, rootMeta, err := tree.Finalize(meta)
	require.NoError(t, err)
	commit := ostree.Commit{Timestamp: 1700000000, RootTree: rootTree, RootMeta: rootMeta}
	cb, err := commit.Marshal()
	require.NoError(t, err)
	b.CommitSum = ostree.Checksum(sha256.Sum256(cb))

	// Layer 0: the commit layer.
	l0 := []Entry{{Hdr: Hdr("./", tar.TypeDir, 0o755, 0)}}
	l0 = append(l0, Skeleton()...)
	l0 = append(l0, Entry{Hdr: Hdr(ObjPath(b.CommitSum, "commit"), tar.TypeReg, 0o644, int64(len(cb))), Data: cb})
	if ti.CommitMeta {
		md, err := ostree.Metadata{}.Marshal()
		require.NoError(t, err)
		l0 = append(l0, Entry{Hdr: Hdr(ObjPath(b.CommitSum, "commitmeta"), tar.TypeReg, 0o644, int64(len(md))), Data: md})
	}
	seenMeta := map[ostree.Checksum]bool{}
	addMeta := func(c ostree.Checksum, suffix string) {
		if seenMeta[c] {
			return
		}
		seenMeta[c] = true
		l0 = append(l0, Entry{Hdr: Hdr(ObjPath(c, suffix), tar.TypeReg, 0o644, int64(len(meta[c]))), Data: meta[c]})
	}
	addMeta(rootMeta, "dirmeta")
	var walk func(p string, d *ostree.Dir)
	walk = func(p string, d *ostree.Dir) {
		addMeta(d.TreeSum, "dirtree")
		for _, n := range d.DirNames() {
			s := d.Dirs[n]
			sp := path.Join(p, n)
			addMeta(s.MetaSum, "dirmeta")
			if sp == "/sysroot" {
				addMeta(s.TreeSum, "dirtree")
				continue
			}
			h := Hdr(checkoutPath(sp), tar.TypeDir, int64(s.Meta.Mode&0o7777), 0)
			h.Uid, h.Gid = int(s.Meta.UID), int(s.Meta.GID)
			l0 = append(l0, Entry{Hdr: h})
			walk(sp, s)
		}
	}
	walk("/", tree.Root)
	layers := [][]Entry{l0}

	// Chunk layers.
	nChunks := max(ti.Chunks, 1)
	sums := make([]ostree.Checksum, 0, len(chunkOf))
	for s := range chunkOf {
		sums = append(sums, s)
	}
	sort.Slice(sums, func(i, j int) bool { return bytes.Compare(sums[i][:], sums[j][:]) < 0 })
	for c := 1; c <= nChunks; c++ {
		es := Skeleton()
		xattrsDone := map[ostree.Checksum]bool{}
		for _, s := range sums {
			if chunkOf[s] != c {
				continue
			}
			h := headers[s]
			xb := h.Xattrs.Marshal()
			if ti.HardlinkXattrs {
				xs := ostree.Checksum(sha256.Sum256(xb))
				if !xattrsDone[xs] {
					xattrsDone[xs] = true
					es = append(es, Entry{Hdr: Hdr(ObjPath(xs, "file-xattrs"), tar.TypeReg, 0o644, int64(len(xb))), Data: xb})
				}
				lh := Hdr(ObjPath(s, "file-xattrs-link"), tar.TypeLink, 0o644, 0)
				lh.Linkname = ObjPath(xs, "file-xattrs")
				es = append(es, Entry{Hdr: lh})
			} else {
				es = append(es, Entry{Hdr: Hdr(ObjPath(s, "file-xattrs-link"), tar.TypeReg, 0o644, int64(len(xb))), Data: xb})
			}
			oh := Hdr(ObjPath(s, "file"), tar.TypeReg, int64(h.Mode&0o7777), int64(len(payload[s])))
			oh.Uid, oh.Gid = int(h.UID), int(h.GID)
			if h.IsSymlink() {
				oh.Typeflag, oh.Size, oh.Linkname = tar.TypeSymlink, 0, h.Target
			}
			oh.PAXRecords = map[string]string{}
			for _, x := range h.Xattrs {
				if x.Name != "security.selinux" {
					oh.PAXRecords["SCHILY.xattr."+x.Name] = string(x.Value)
				}
			}
			es = append(es, Entry{Hdr: oh, Data: payload[s]})
			for _, p := range pathsOf[s] {
				ch := Hdr(checkoutPath(p), tar.TypeLink, int64(h.Mode&0o7777), 0)
				ch.Uid, ch.Gid = int(h.UID), int(h.GID)
				ch.Linkname = ObjPath(s, "file")
				if !h.IsSymlink() && len(payload[s]) == 0 {
					ch.Typeflag, ch.Linkname = tar.TypeReg, ""
				}
				es = append(es, Entry{Hdr: ch})
			}
		}
		layers = append(layers, es)
	}
	layers = append(layers, ti.Derived...)
	return ti.write(t, b, layers, nChunks)
}

func tarBytes(t testing.TB, es []Entry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := e.Hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.Data))
		}
		require.NoError(t, tw.WriteHeader(&h), h.Name)
		_, err := tw.Write(e.Data)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	return buf.Bytes()
}

func gzipBytes(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(b)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

func writeBlob(t testing.TB, dir string, data []byte) digest.Digest {
	d := digest.FromBytes(data)
	p := filepath.Join(dir, "blobs", "sha256", d.Encoded())
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, data, 0o644))
	return d
}

func (ti Image) write(t testing.TB, b *Built, layers [][]Entry, nChunks int) *Built {
	dir := t.TempDir()
	arch := ti.Arch
	if arch == "" {
		arch = runtime.GOARCH
	}
	created := time.Unix(1700000000, 0).UTC()
	cfg := imgspecv1.Image{
		Created:  &created,
		Platform: imgspecv1.Platform{Architecture: arch, OS: "linux"},
		Config:   imgspecv1.ImageConfig{Labels: map[string]string{}},
		RootFS:   imgspecv1.RootFS{Type: "layers"},
	}
	m := imgspecv1.Manifest{Versioned: imgspecs.Versioned{SchemaVersion: 2}, MediaType: imgspecv1.MediaTypeImageManifest}
	for i, es := range layers {
		if ti.EditLayer != nil {
			es = ti.EditLayer(i, es)
		}
		raw := tarBytes(t, es)
		gz := gzipBytes(t, raw)
		desc := imgspecv1.Descriptor{MediaType: imgspecv1.MediaTypeImageLayerGzip, Digest: writeBlob(t, dir, gz), Size: int64(len(gz))}
		if i >= 1 && i <= nChunks {
			c := ""
			if i-1 < len(ti.Components) {
				c = ti.Components[i-1]
			}
			desc.Annotations = map[string]string{"ostree.components": c}
		}
		m.Layers = append(m.Layers, desc)
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromBytes(raw))
		by := fmt.Sprintf("chunk %d", i)
		if i == 0 {
			by = "ostree export of commit " + b.CommitSum.String()
		} else if i > nChunks {
			by = fmt.Sprintf("RUN derived %d", i)
		}
		cfg.History = append(cfg.History, imgspecv1.History{Created: &created, CreatedBy: by})
	}
	cfg.Config.Labels["ostree.commit"] = b.CommitSum.String()
	cfg.Config.Labels["ostree.final-diffid"] = cfg.RootFS.DiffIDs[nChunks].String()
	cfg.Config.Labels["containers.bootc"] = "1"
	for k, v := range ti.Labels {
		if v == "" {
			delete(cfg.Config.Labels, k)
		} else {
			cfg.Config.Labels[k] = v
		}
	}
	if ti.EditImage != nil {
		ti.EditImage(&m, &cfg)
	}
	return WriteLayout(t, dir, b, m, cfg)
}

// writeLayout writes config, manifest and index of an OCI layout (blobs already there).
func WriteLayout(t testing.TB, dir string, b *Built, m imgspecv1.Manifest, cfg imgspecv1.Image) *Built {
	cb, err := json.Marshal(cfg)
	require.NoError(t, err)
	m.Config = imgspecv1.Descriptor{MediaType: imgspecv1.MediaTypeImageConfig, Digest: writeBlob(t, dir, cb), Size: int64(len(cb))}
	mb, err := json.Marshal(m)
	require.NoError(t, err)
	idx := imgspecv1.Index{Versioned: imgspecs.Versioned{SchemaVersion: 2}, MediaType: imgspecv1.MediaTypeImageIndex,
		Manifests: []imgspecv1.Descriptor{{MediaType: imgspecv1.MediaTypeImageManifest, Digest: writeBlob(t, dir, mb), Size: int64(len(mb)),
			Annotations: map[string]string{imgspecv1.AnnotationRefName: "latest"}}}}
	ib, err := json.Marshal(idx)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "index.json"), ib, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644))
	if b == nil {
		b = &Built{}
	}
	b.Dir, b.Ref, b.Manifest, b.Config = dir, "oci:"+dir+":latest", m, cfg
	return b
}

func Open(t testing.TB, ref string) *imageio.Source {
	t.Helper()
	src, err := imageio.Open(context.Background(), ref, imageio.Options{CacheDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { src.Close() })
	return src
}

// baseFiles is a small bootable tree spread over three chunk layers.
func BaseFiles() []File {
	sel := ostree.Xattrs{{Name: "security.selinux", Value: []byte("system_u:object_r:bin_t:s0\x00")}}
	return []File{
		{Path: "/usr/bin/bash", Data: "#!bash binary", Mode: 0o755, Xattrs: sel, Chunk: 1},
		{Path: "/usr/bin/sh", Target: "bash", Chunk: 1},
		{Path: "/usr/bin/ping", Data: "ping", Mode: 0o755, Xattrs: ostree.Xattrs{{Name: "security.capability", Value: []byte{1, 0, 0, 2}}}, Chunk: 1},
		{Path: "/usr/lib/modules/6.1.0/vmlinuz", Data: strings.Repeat("K", 5000), Chunk: 2},
		{Path: "/usr/lib/modules/6.1.0/initramfs.img", Data: strings.Repeat("I", 3000), Chunk: 2},
		{Path: "/usr/etc/os-release", Data: "ID=test\n", Chunk: 3},
		{Path: "/usr/etc/hostname", Data: "", Chunk: 3},
		{Path: "/usr/share/doc/a", Data: "same", Chunk: 3},
		{Path: "/usr/share/doc/b", Data: "same", Chunk: 3}, // hardlinked content
		{Path: "/ostree", Target: "sysroot/ostree", Chunk: 3},
	}
}

func Base() Image {
	return Image{Files: BaseFiles(), Chunks: 3, Components: []string{"bash", "kernel", "rpmostree-unpackaged-content"}}
}

// WriteLayers writes an image from ready-made layer entries: layer 0 is the commit
// layer of commit, layers 1..nChunks are chunks, the rest derived. Labels, history and
// edits are applied as for Build.
func (ti Image) WriteLayers(t testing.TB, commit ostree.Checksum, layers [][]Entry, nChunks int) *Built {
	return ti.write(t, &Built{CommitSum: commit, Sums: map[string]ostree.Checksum{}}, layers, nChunks)
}
