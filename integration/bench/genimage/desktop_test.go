package main

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The server profile must keep writing exactly what it wrote before the desktop profile
// existed: these manifest digests come from the generator before that change.
func TestServerProfileUnchanged(t *testing.T) {
	for _, tc := range []struct {
		name   string
		size   int64
		files  int
		change int64
		want   string
	}{
		{"16M", 16 << 20, 0, 0, "sha256:b96d87f385d99c0cd7344f15eafccc5fbba27b066274ad3c608a6f23ef0dc63b"},
		{"16M -change 5M", 16 << 20, 0, 5 << 20, "sha256:4a7bc4e9f87daf192323fae7c4b3026c247df249888eb0eb9289a781b2202ca6"},
		{"64M -files 3000", 64 << 20, 3000, 0, "sha256:360a82ad673e029e4706d101e859e9e36d9ebbc5dc0f8603b591cdf71233e07a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := tc.files
			if n == 0 {
				n = scaleFiles(tc.size)
			}
			root := t.TempDir()
			require.NoError(t, writeImage(root, "v1", newSpec(tc.size, n), tc.change, 1))
			assert.Equal(t, tc.want, readManifest(t, root, "v1").digest)
		})
	}
}

func TestDesktopFiles(t *testing.T) {
	for _, tc := range []struct {
		size int64
		want int
	}{
		{8 << 30, 320000},
		{1 << 30, 40000},
		{64 << 20, 3000},
		{0, 3000},
	} {
		assert.Equal(t, tc.want, desktopFiles(tc.size), "size %d", tc.size)
	}
}

// Same flags, same bytes; a -change rebuild shares every layer but the top one.
func TestDesktopDeterministic(t *testing.T) {
	const size = 64 << 20
	a, b := t.TempDir(), t.TempDir()
	require.NoError(t, newDesktop(size, desktopFiles(size)).write(a, "v1", 0, 1))
	require.NoError(t, newDesktop(size, desktopFiles(size)).write(b, "v1", 0, 1))
	assert.Equal(t, readManifest(t, a, "v1").digest, readManifest(t, b, "v1").digest)

	require.NoError(t, newDesktop(size, desktopFiles(size)).write(a, "v2", 5<<20, 1))
	v1, v2 := readManifest(t, a, "v1").layers, readManifest(t, a, "v2").layers
	require.Len(t, v1, desktopLayers+1)
	require.Len(t, v2, len(v1))
	assert.Equal(t, v1[:desktopLayers], v2[:desktopLayers], "lower layers")
	assert.NotEqual(t, v1[desktopLayers], v2[desktopLayers], "top layer")
}

// TestDesktopImage writes a small desktop image once and checks what it holds.
func TestDesktopImage(t *testing.T) {
	img := desktopImage(t)
	for _, tc := range []struct {
		name  string
		check func(*testing.T, *image)
	}{
		{"mix", checkDesktopMix},
		{"bound images", checkDesktopBoundImages},
		{"icon duplicates", checkDesktopIconDuplicates},
		{"symlinks", checkDesktopSymlinks},
		{"ownership", checkDesktopOwnership},
		{"paths", checkDesktopPathsValid},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.check(t, img) })
	}
}

// The mix a desktop image is made of is there, with the formats its names promise.
func checkDesktopMix(t *testing.T, img *image) {
	for _, tc := range []struct {
		name           string
		match          *regexp.Regexp
		min            int
		magic          string
		minSize, maxSz int64 // checked when maxSz > 0
	}{
		{"png icons", regexp.MustCompile(`^usr/share/icons/[^/]+/\d+x\d+/[a-z]+/[^/]+\.png$`), 200, "\x89PNG\r\n\x1a\n", 200, 8 << 10},
		{"svg icons", regexp.MustCompile(`^usr/share/icons/[^/]+/(\d+x\d+|scalable|symbolic)/[a-z]+/[^/]+\.svg$`), 100, "<?xml", 200, 8 << 10},
		{"message catalogs", regexp.MustCompile(`^usr/share/locale/[^/]+/LC_MESSAGES/[^/]+\.mo$`), 300, "\xde\x12\x04\x95", 1 << 10, 60 << 10},
		{"python modules", regexp.MustCompile(`^usr/lib/python3\.13/site-packages/.+\.py$`), 50, "# SPDX", 0, 0},
		{"python bytecode", regexp.MustCompile(`/__pycache__/[^/]+\.cpython-313(\.opt-1)?\.pyc$`), 100, "\xf3\x0d\x0d\x0a", 0, 0},
		{"kernel", regexp.MustCompile(`^usr/lib/modules/[^/]+/vmlinuz$`), 1, "MZ", 0, 0},
		{"kernel modules", regexp.MustCompile(`^usr/lib/modules/[^/]+/kernel/.+\.ko\.xz$`), 20, "\xfd7zXZ\x00", 5 << 10, 500 << 10},
		{"compressed firmware", regexp.MustCompile(`^usr/lib/firmware/.+\.xz$`), 10, "\xfd7zXZ\x00", 0, 0},
		{"shared libraries", regexp.MustCompile(`^usr/lib64/lib[^/]+\.so\.\d+$`), 5, "\x7fELF", 50 << 10, 20 << 20},
		{"bound image files", regexp.MustCompile(`^usr/lib/containers/storage/overlay/[0-9a-f]{64}/diff/`), 20, "", 0, 0},
		{"models", regexp.MustCompile(`^usr/share/ollama/models/blobs/sha256-[0-9a-f]{64}$`), 2, "GGUF", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
			for p, f := range img.final {
				if f.hdr.Typeflag != tar.TypeReg || !tc.match.MatchString(p) {
					continue
				}
				n++
				assert.True(t, strings.HasPrefix(f.head, tc.magic), "%s starts with %q", p, f.head)
				if tc.maxSz > 0 {
					assert.True(t, f.hdr.Size >= tc.minSize && f.hdr.Size <= tc.maxSz, "%s: %d bytes", p, f.hdr.Size)
				}
			}
			assert.GreaterOrEqual(t, n, tc.min)
		})
	}
}

func checkDesktopBoundImages(t *testing.T, img *image) {
	dir, ok := img.final[boundStore+"/"]
	require.True(t, ok, "the bound image store has a directory entry")
	assert.Equal(t, "bound-images", dir.hdr.PAXRecords["SCHILY.xattr.user.component"])
	assert.Equal(t, layerBound, dir.layer)
	units := 0
	for p, f := range img.final {
		if strings.HasPrefix(p, "usr/lib/bootc/bound-images.d/") && f.hdr.Typeflag != tar.TypeDir {
			units++
			require.Equal(t, byte(tar.TypeSymlink), f.hdr.Typeflag, p)
			assert.Contains(t, img.final, strings.TrimPrefix(f.hdr.Linkname, "/"), "%s points to a unit", p)
		}
	}
	assert.Equal(t, 3, units)
}

// Icon themes repeat icons with the same bytes in other files (not hardlinks).
func checkDesktopIconDuplicates(t *testing.T, img *image) {
	paths := map[[32]byte][]string{}
	icons := 0
	for p, f := range img.final {
		if f.hdr.Typeflag == tar.TypeReg && strings.HasPrefix(p, "usr/share/icons/") && !strings.HasSuffix(p, ".cache") {
			icons++
			paths[f.sum] = append(paths[f.sum], p)
		}
	}
	dups := icons - len(paths)
	assert.Greater(t, dups, icons/10, "%d of %d icons repeat another's bytes", dups, icons)
}

// Library symlinks point at the versioned library next to them.
func checkDesktopSymlinks(t *testing.T, img *image) {
	links := 0
	for p, f := range img.final {
		if f.hdr.Typeflag == tar.TypeSymlink && strings.HasPrefix(p, "usr/lib64/") {
			links++
			target := path.Join(path.Dir(p), f.hdr.Linkname)
			require.Contains(t, img.final, target, p)
			assert.Equal(t, byte(tar.TypeReg), img.final[target].hdr.Typeflag, p)
		}
	}
	assert.Greater(t, links, 5)
}

// Packages own most files, every file they list exists, and a layer's status lists the
// packages installed so far.
func checkDesktopOwnership(t *testing.T, img *image) {
	status, ok := img.final["var/lib/dpkg/status"]
	require.True(t, ok)
	require.Equal(t, layerKernel, status.layer, "the last layer that installs packages writes the final status")
	pkgs := regexp.MustCompile(`(?m)^Package: (.+)$`).FindAllStringSubmatch(status.content, -1)
	require.Greater(t, len(pkgs), 30)
	owned := map[string]bool{}
	for _, m := range pkgs {
		list, ok := img.final["var/lib/dpkg/info/"+m[1]+".list"]
		require.True(t, ok, m[1])
		sc := bufio.NewScanner(strings.NewReader(list.content))
		for sc.Scan() {
			p := strings.TrimPrefix(sc.Text(), "/")
			_, file := img.final[p]
			_, dir := img.final[p+"/"]
			require.True(t, file || dir, "%s lists %s", m[1], p)
			owned[p] = true
		}
	}
	files, own := 0, 0
	for p, f := range img.final {
		if f.hdr.Typeflag == tar.TypeReg && !strings.HasPrefix(p, "var/lib/dpkg/") {
			files++
			if owned[p] {
				own++
			}
		}
	}
	assert.Greater(t, float64(own)/float64(files), 0.9, "%d of %d files owned", own, files)
	assert.Less(t, own, files, "some files are in no package")
}

// Entries are what an OS image may hold: regular files, directories and symlinks
// below usr, etc and the package database, once per layer, with the fixed mtime.
func checkDesktopPathsValid(t *testing.T, img *image) {
	for i, layer := range img.layers {
		seen := map[string]bool{}
		for _, f := range layer {
			p := f.hdr.Name
			assert.False(t, seen[p], "layer %d has %s twice", i, p)
			seen[p] = true
			assert.Contains(t, []byte{tar.TypeReg, tar.TypeDir, tar.TypeSymlink}, f.hdr.Typeflag, p)
			assert.True(t, f.hdr.ModTime.Equal(epoch), p)
			ok := strings.HasPrefix(p, "usr/") || strings.HasPrefix(p, "etc/") || strings.HasPrefix(p, "var/lib/dpkg/") ||
				p == "var/" || p == "var/lib/"
			assert.True(t, ok, "layer %d: %s", i, p)
		}
	}
	var sizes []int64
	for _, l := range img.layers {
		var n int64
		for _, f := range l {
			n += f.hdr.Size
		}
		sizes = append(sizes, n)
	}
	for i := 1; i < len(sizes); i++ {
		assert.Greater(t, sizes[0], sizes[i], "the base layer is the largest: %v", sizes)
	}
}

// At 8 GiB the layout (not written) has the scale and mix of an Aurora image.
func TestDesktopSpec8G(t *testing.T) {
	if testing.Short() {
		t.Skip("lays out 320k files")
	}
	const size = 8 << 30
	d := newDesktop(size, desktopFiles(size))
	var report strings.Builder
	d.report(&report)
	t.Log(report.String())
	s := d.stats()
	assert.GreaterOrEqual(t, s.total.bytes, int64(size))
	assert.GreaterOrEqual(t, s.total.files, 300000)
	assert.True(t, s.pkgs >= 1500 && s.pkgs <= 2500, "%d packages", s.pkgs)
	assert.Greater(t, float64(s.owned)/float64(s.total.files), 0.9)
	share := float64(s.total.incompressible) / float64(s.total.bytes)
	assert.True(t, share >= 0.25 && share <= 0.35, "incompressible share %.3f", share)
	for c, min := range map[category]int{catIcon: 30000, catLocale: 30000, catPython: 20000, catKernel: 3000, catLib: 1000, catFirmware: 1000} {
		assert.GreaterOrEqual(t, s.cats[c].files, min, c.String())
	}
	bound := s.cats[catBound].bytes
	assert.True(t, bound >= 200<<20 && bound <= 800<<20, "bound images: %d bytes", bound)
	var big, bigFirmware int
	for _, it := range d.items {
		switch {
		case it.cat == catBlob && it.size >= 200<<20 && it.size <= 600<<20:
			big++
		case it.cat == catFirmware && it.size >= 1<<20 && it.size <= 30<<20:
			bigFirmware++
		}
	}
	assert.Equal(t, 3, big, "blobs of 200-600 MiB")
	assert.Greater(t, bigFirmware, 20, "firmware files of 1-30 MiB")
}

// desktopImage writes a small desktop image and reads it back.
func desktopImage(t *testing.T) *image {
	t.Helper()
	const size = 64 << 20
	root := t.TempDir()
	require.NoError(t, newDesktop(size, desktopFiles(size)).write(root, "v1", 0, 1))
	return scanImage(t, root, "v1")
}

type manifest struct {
	digest string
	layers []string
}

func readManifest(t *testing.T, root, tag string) manifest {
	t.Helper()
	var idx struct {
		Manifests []struct {
			Digest      string
			Annotations map[string]string
		}
	}
	readJSON(t, filepath.Join(root, "index.json"), &idx)
	for _, m := range idx.Manifests {
		if m.Annotations["org.opencontainers.image.ref.name"] != tag {
			continue
		}
		var man struct{ Layers []struct{ Digest string } }
		readJSON(t, blobPath(root, m.Digest), &man)
		out := manifest{digest: m.Digest}
		for _, l := range man.Layers {
			out.layers = append(out.layers, l.Digest)
		}
		return out
	}
	t.Fatalf("no image tagged %s in %s", tag, root)
	return manifest{}
}

func readJSON(t *testing.T, p string, v any) {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, v))
}

func blobPath(root, digest string) string {
	return filepath.Join(root, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:"))
}

// image is what a test saw of an image's layers.
type image struct {
	layers [][]tarFile
	final  map[string]tarFile // the merged tree: the last layer's entry of each name
}

type tarFile struct {
	hdr     *tar.Header
	layer   int
	head    string   // the first bytes
	sum     [32]byte // sha256 of the content
	content string   // all of it, for the package database
}

func scanImage(t *testing.T, root, tag string) *image {
	t.Helper()
	img := &image{final: map[string]tarFile{}}
	for i, l := range readManifest(t, root, tag).layers {
		f, err := os.Open(blobPath(root, l))
		require.NoError(t, err)
		img.layers = append(img.layers, scanLayer(t, f, i))
		f.Close()
		for _, tf := range img.layers[i] {
			img.final[tf.hdr.Name] = tf
		}
	}
	return img
}

func scanLayer(t *testing.T, r io.Reader, layer int) []tarFile {
	t.Helper()
	var out []tarFile
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		h := sha256.New()
		head := &prefix{n: 16}
		var content strings.Builder
		w := io.MultiWriter(h, head)
		if strings.HasPrefix(hdr.Name, "var/lib/dpkg/") {
			w = io.MultiWriter(w, &content)
		}
		_, err = io.Copy(w, tr)
		require.NoError(t, err)
		tf := tarFile{hdr: hdr, layer: layer, head: string(head.b), content: content.String()}
		copy(tf.sum[:], h.Sum(nil))
		out = append(out, tf)
	}
}

// prefix keeps the first n bytes written to it.
type prefix struct {
	b []byte
	n int
}

func (p *prefix) Write(b []byte) (int, error) {
	if k := min(p.n-len(p.b), len(b)); k > 0 {
		p.b = append(p.b, b[:k]...)
	}
	return len(b), nil
}
