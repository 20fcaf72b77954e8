//go:build integration

package integration

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// ---- tools and commands ----

// requireTools skips t when a tool it needs is not on PATH.
func requireTools(t testing.TB, tools ...string) {
	t.Helper()
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		skipOrFailInCI(t, "needs %s on PATH (install with sudo ./hack/setup.sh)", strings.Join(missing, ", "))
	}
}

// skipOrFailInCI skips t, except under CI (CI=true), where hack/setup.sh has installed
// every tool, so a missing one is a failure rather than a silently skipped test.
func skipOrFailInCI(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true: "+format, args...)
	}
	t.Skipf(format, args...)
}

// requireRoot skips t unless it runs as root: debootstrap, and umoci unpack keeping real
// ownership, need it.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFailInCI(t, "needs root (debootstrap, umoci unpack with real ownership)")
	}
}

// runCmd runs c and returns its stdout; on failure it fails t with both output streams.
func runCmd(t testing.TB, c *exec.Cmd) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if c.Stdout == nil {
		c.Stdout = &stdout
	}
	c.Stderr = &stderr
	start := time.Now()
	if err := c.Run(); err != nil {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(c.Args, " "), err,
			lastLines(stdout.String(), 40), lastLines(stderr.String(), 40))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Logf("%s: %.1fs", shortArgs(c.Args), d.Seconds())
	}
	return stdout.String()
}

// run runs a command and returns its stdout, failing t when it fails.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	return runCmd(t, exec.Command(name, args...))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

func shortArgs(args []string) string {
	s := strings.Join(args, " ")
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}

// ---- cache ----

// cacheDir is where slow inputs are kept between runs: $RECHUNKER_TEST_CACHE, else
// ~/.cache/rechunker-test.
func cacheDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("RECHUNKER_TEST_CACHE")
	if dir == "" {
		base, err := os.UserCacheDir()
		require.NoError(t, err, "find cache directory (set RECHUNKER_TEST_CACHE)")
		dir = filepath.Join(base, "rechunker-test")
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

// lockFile holds an exclusive flock on path until the returned function is called, so
// that concurrent test processes build a cache entry only once.
func lockFile(t testing.TB, path string) func() {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	require.NoError(t, err)
	require.NoError(t, unix.Flock(int(f.Fd()), unix.LOCK_EX), "lock %s", path)
	return func() { _ = f.Close() }
}

// ---- Debian root file systems ----

// debianRootfs is a debootstrap recipe.
type debianRootfs struct {
	Suite   string
	Variant string
	Include []string
}

// bookwormBootc is the realistic OS the scenarios build on: a minimal Debian 12 with
// systemd, a kernel (moved to /usr/lib/modules/<kver>/ as bootc expects) and sshd.
// About 75 s to debootstrap and 630 MB unpacked; cached after the first run.
func bookwormBootc() debianRootfs {
	return debianRootfs{
		Suite:   "bookworm",
		Variant: "minbase",
		Include: []string{"systemd", "systemd-sysv", "linux-image-amd64", "openssh-server"},
	}
}

// rootfsRecipeVersion changes whenever shapeForBootc changes, so stale caches are not used.
const rootfsRecipeVersion = "2"

// tarball returns a zstd tarball of the root file system, building it with debootstrap
// on first use and caching it.
func (d debianRootfs) tarball(t testing.TB) string {
	t.Helper()
	requireRoot(t)
	requireTools(t, "debootstrap", "tar", "zstd")
	mirror := os.Getenv("RECHUNKER_DEBIAN_MIRROR")
	if mirror == "" {
		mirror = "http://deb.debian.org/debian"
	}
	key := sha256.Sum256([]byte(strings.Join([]string{rootfsRecipeVersion, d.Suite, d.Variant,
		strings.Join(d.Include, ","), mirror}, "\n")))
	dir := cacheDir(t)
	path := filepath.Join(dir, fmt.Sprintf("debian-%s-%s-%s.tar.zst", d.Suite, d.Variant, hex.EncodeToString(key[:6])))
	unlock := lockFile(t, path+".lock")
	defer unlock()
	if _, err := os.Stat(path); err == nil {
		return path
	}

	start := time.Now()
	work, err := os.MkdirTemp(dir, "debootstrap-")
	require.NoError(t, err)
	defer os.RemoveAll(work)
	root := filepath.Join(work, "rootfs")
	logPath := filepath.Join(work, "debootstrap.log")
	logf, err := os.Create(logPath)
	require.NoError(t, err)
	args := []string{"--variant=" + d.Variant}
	if len(d.Include) > 0 {
		args = append(args, "--include="+strings.Join(d.Include, ","))
	}
	args = append(args, d.Suite, root, mirror)
	t.Logf("debootstrap %s (first run only; cached in %s)", strings.Join(args, " "), path)
	cmd := exec.Command("debootstrap", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	err = cmd.Run()
	_ = logf.Close()
	if err != nil {
		log, _ := os.ReadFile(logPath)
		t.Fatalf("debootstrap %s: %v\n%s", strings.Join(args, " "), err, lastLines(string(log), 30))
	}
	shapeForBootc(t, root)
	tmp := path + ".tmp"
	run(t, "tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-I", "zstd -T0 -3 -q",
		"-C", root, "-cf", tmp, ".")
	require.NoError(t, os.Rename(tmp, path))
	st, err := os.Stat(path)
	require.NoError(t, err)
	t.Logf("built %s in %.0fs (%d MB)", path, time.Since(start).Seconds(), st.Size()>>20)
	return path
}

// shapeForBootc turns a debootstrap tree into what a bootc base image looks like: no
// device nodes, no apt caches, the kernel and initramfs in /usr/lib/modules/<kver>/, an
// empty /boot and an empty machine-id.
func shapeForBootc(t testing.TB, root string) {
	t.Helper()
	for _, dir := range []string{"dev", "run", "tmp", "var/cache/apt", "var/lib/apt/lists"} {
		emptyDir(t, filepath.Join(root, dir))
	}
	kernels, err := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	require.NoError(t, err)
	for _, k := range kernels {
		kver := strings.TrimPrefix(filepath.Base(k), "vmlinuz-")
		mod := filepath.Join(root, "usr/lib/modules", kver)
		require.DirExists(t, mod, "kernel %s has no modules directory", kver)
		require.NoError(t, os.Rename(k, filepath.Join(mod, "vmlinuz")))
		initrd := filepath.Join(root, "boot", "initrd.img-"+kver)
		if _, err := os.Stat(initrd); err == nil {
			require.NoError(t, os.Rename(initrd, filepath.Join(mod, "initramfs.img")))
		}
	}
	emptyDir(t, filepath.Join(root, "boot"))
	for _, l := range []string{"vmlinuz", "vmlinuz.old", "initrd.img", "initrd.img.old"} {
		require.NoError(t, removeIfExists(filepath.Join(root, l)))
	}
	if _, err := os.Stat(filepath.Join(root, "etc/machine-id")); err == nil {
		require.NoError(t, os.Truncate(filepath.Join(root, "etc/machine-id"), 0))
	}
	addBootcRoot(t, root)
}

// addBootcRoot adds what bootc's fatal lints require of every base image's root:
// the API directories, /sysroot and /ostree -> sysroot/ostree (ostree-prepare-root
// moves the physical root there; without them a deployment stops in emergency mode).
func addBootcRoot(t testing.TB, root string) {
	t.Helper()
	for _, dir := range []string{"dev", "proc", "sys", "run", "tmp", "var", "sysroot"} {
		require.NoError(t, os.MkdirAll(filepath.Join(root, dir), 0o755))
	}
	link := filepath.Join(root, "ostree")
	if _, err := os.Lstat(link); errors.Is(err, os.ErrNotExist) {
		require.NoError(t, os.Symlink("sysroot/ostree", link))
	}
}

func emptyDir(t testing.TB, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	require.NoError(t, err)
	for _, e := range entries {
		require.NoError(t, os.RemoveAll(filepath.Join(dir, e.Name())))
	}
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// extractTarball unpacks a tarball made by tarball into dst, keeping owners, modes and xattrs.
func extractTarball(t testing.TB, tarball, dst string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dst, 0o755))
	run(t, "tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-I", "zstd -T0 -q",
		"-C", dst, "-xpf", tarball)
}

// ---- OCI images with umoci ----

// ociImage is one tag in an OCI image layout directory.
type ociImage struct {
	Layout string
	Tag    string
}

// Ref is the containers/image reference of the image.
func (i ociImage) Ref() string { return "oci:" + i.Layout + ":" + i.Tag }

func (i ociImage) umoci() string { return i.Layout + ":" + i.Tag }

// newEmptyImage creates an image with no layers (umoci new) in layout, creating the
// layout when missing.
func newEmptyImage(t testing.TB, layout, tag string) ociImage {
	t.Helper()
	requireTools(t, "umoci")
	if _, err := os.Stat(filepath.Join(layout, "index.json")); err != nil {
		run(t, "umoci", "init", "--layout", layout)
	}
	img := ociImage{Layout: layout, Tag: tag}
	run(t, "umoci", "new", "--image", img.umoci())
	return img
}

// newImageFromRootfs creates a one-layer image holding the tree of a rootfs tarball and
// returns it unpacked, ready for further layers. config are umoci config flags applied
// first (e.g. "--config.label", "containers.bootc=1"): set the config here, because
// umoci repack builds on the manifest a bundle was unpacked or packed as, so a later
// umoci config on a tag would not reach images packed from the bundle.
func newImageFromRootfs(t testing.TB, layout, tag, tarball string, config ...string) *bundle {
	t.Helper()
	img := newEmptyImage(t, layout, tag)
	if len(config) > 0 {
		img.configure(t, config...)
	}
	b := unpack(t, img)
	extractTarball(t, tarball, b.rootfs())
	b.commit(t, tag, "rootfs "+filepath.Base(tarball), func(string) {})
	return b
}

// bundle is an image unpacked by umoci (a runtime bundle) that can be changed and packed
// into new tags, one layer per commit. Unpacking a large image is slow (tens of seconds
// for the Debian rootfs), so scenarios keep bundles and clone them to branch.
type bundle struct {
	dir string
	img ociImage // the image the bundle currently matches
}

// unpack unpacks img into a new bundle.
func unpack(t testing.TB, img ociImage) *bundle {
	t.Helper()
	requireTools(t, "umoci")
	b := &bundle{dir: filepath.Join(t.TempDir(), "bundle"), img: img}
	run(t, "umoci", "unpack", "--image", img.umoci(), b.dir)
	return b
}

func (b *bundle) rootfs() string { return filepath.Join(b.dir, "rootfs") }

// clone copies the bundle (owners, modes, xattrs and hardlinks kept) so that two
// releases can branch from the same image.
func (b *bundle) clone(t testing.TB) *bundle {
	t.Helper()
	c := &bundle{dir: filepath.Join(t.TempDir(), "bundle"), img: b.img}
	run(t, "cp", "-a", b.dir, c.dir)
	return c
}

// commit lets modify change the root file system and packs the result as tag in the same
// layout: the image the bundle was at plus one layer holding exactly the changes (umoci
// computes them with mtree, xattrs included). The bundle then matches the new image.
func (b *bundle) commit(t testing.TB, tag, createdBy string, modify func(root string)) ociImage {
	t.Helper()
	modify(b.rootfs())
	out := ociImage{Layout: b.img.Layout, Tag: tag}
	run(t, "umoci", "repack", "--refresh-bundle", "--history.created_by", createdBy,
		"--image", out.umoci(), b.dir)
	b.img = out
	return out
}

// derive unpacks i, lets modify change it, and packs the result as a new tag with one
// more layer. For large images prefer keeping a bundle.
func (i ociImage) derive(t testing.TB, tag, createdBy string, modify func(root string)) ociImage {
	t.Helper()
	b := unpack(t, i)
	defer os.RemoveAll(b.dir)
	return b.commit(t, tag, createdBy, modify)
}

// configure changes the image config in place (umoci config flags, e.g.
// "--config.label", "containers.bootc=1").
func (i ociImage) configure(t testing.TB, args ...string) {
	t.Helper()
	run(t, "umoci", append([]string{"config", "--no-history", "--image", i.umoci()}, args...)...)
}

// manifest reads the image's manifest from the layout.
func (i ociImage) manifest(t testing.TB) imgspecv1.Manifest {
	t.Helper()
	var index imgspecv1.Index
	readJSON(t, filepath.Join(i.Layout, "index.json"), &index)
	for _, d := range index.Manifests {
		if d.Annotations[imgspecv1.AnnotationRefName] == i.Tag {
			var m imgspecv1.Manifest
			readJSON(t, i.blob(d.Digest.Encoded()), &m)
			return m
		}
	}
	t.Fatalf("%s: tag %q not in index.json", i.Layout, i.Tag)
	return imgspecv1.Manifest{}
}

func (i ociImage) blob(hexDigest string) string {
	return filepath.Join(i.Layout, "blobs", "sha256", hexDigest)
}

// layerXattrs returns, for every entry of layer n (negative counts from the end) that
// carries PAX xattrs, its path and xattr names and values.
func (i ociImage) layerXattrs(t testing.TB, n int) map[string]map[string]string {
	t.Helper()
	m := i.manifest(t)
	if n < 0 {
		n += len(m.Layers)
	}
	require.True(t, n >= 0 && n < len(m.Layers), "layer %d of %d", n, len(m.Layers))
	f, err := os.Open(i.blob(m.Layers[n].Digest.Encoded()))
	require.NoError(t, err)
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(m.Layers[n].MediaType, "+gzip") {
		zr, err := gzip.NewReader(f)
		require.NoError(t, err)
		defer zr.Close()
		r = zr
	}
	out := map[string]map[string]string{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err, "read layer %d of %s", n, i.Ref())
		for k, v := range h.PAXRecords {
			if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				if out[h.Name] == nil {
					out[h.Name] = map[string]string{}
				}
				out[h.Name][name] = v
			}
		}
	}
	return out
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, v), "parse %s", path)
}

// writeFile writes content to root/rel, creating parent directories (0755, root-owned).
func writeFile(t testing.TB, root, rel, content string, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(root, rel)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte(content), mode))
	require.NoError(t, os.Chmod(p, mode))
}

// writeRandomFile writes size bytes of incompressible data, the same for the same seed.
func writeRandomFile(t testing.TB, path string, size int64, seed uint64) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	f, err := os.Create(path)
	require.NoError(t, err)
	var key [32]byte
	key[0], key[1] = byte(seed), byte(seed>>8)
	_, err = io.CopyN(f, rand.NewChaCha8(key), size)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

// newAppImage builds a small application image (one layer: a binary-like blob and a
// config file) of roughly size bytes, to embed as a bound image.
func newAppImage(t testing.TB, layout, tag string, size int64) ociImage {
	t.Helper()
	img := newEmptyImage(t, layout, tag)
	img = img.derive(t, tag, "app files", func(root string) {
		writeRandomFile(t, filepath.Join(root, "usr/bin/app"), size, 1)
		require.NoError(t, os.Chmod(filepath.Join(root, "usr/bin/app"), 0o755))
		writeFile(t, root, "etc/app.conf", "listen = 8080\n", 0o644)
	})
	img.configure(t, "--config.cmd", "/usr/bin/app")
	return img
}

// boundImageDir is where the scenarios keep physically bound images inside the OS image.
const boundImageDir = "usr/lib/containers-image-cache"

// embedBoundImage copies img into root/usr/lib/containers-image-cache/<manifest sha256>
// with skopeo (digests preserved, so the client can verify it), records "name sha" in
// mapping.txt there, and, when component is not empty, sets user.component=<component>
// on that directory so that rechunker gives the bound images a layer of their own.
// It returns the manifest digest's hex.
func embedBoundImage(t testing.TB, root string, img ociImage, name, component string) string {
	t.Helper()
	return embedBoundImageAs(t, root, img, name, "", component)
}

// embedBoundImageAs is embedBoundImage with the directory named dir instead of by the
// manifest digest (when dir is not empty).
func embedBoundImageAs(t testing.TB, root string, img ociImage, name, dir, component string) string {
	t.Helper()
	requireTools(t, "skopeo", "setfattr")
	raw := run(t, "skopeo", "inspect", "--raw", img.Ref())
	sum := sha256.Sum256([]byte(raw))
	sha := hex.EncodeToString(sum[:])
	if dir == "" {
		dir = sha
	}
	cache := filepath.Join(root, boundImageDir)
	require.NoError(t, os.MkdirAll(cache, 0o755))
	dst := filepath.Join(cache, dir)
	run(t, "skopeo", "copy", "-q", "--preserve-digests", img.Ref(), "dir:"+dst)
	got, err := os.ReadFile(filepath.Join(dst, "manifest.json"))
	require.NoError(t, err)
	require.Equal(t, raw, string(got), "skopeo --preserve-digests must keep the manifest bytes")
	mapping, err := os.OpenFile(filepath.Join(cache, "mapping.txt"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	require.NoError(t, err)
	_, err = fmt.Fprintf(mapping, "%s %s\n", name, dir)
	require.NoError(t, err)
	require.NoError(t, mapping.Close())
	if component != "" {
		run(t, "setfattr", "-n", "user.component", "-v", component, cache)
	}
	return sha
}

// ---- rpm ----

// rpmPackage describes a noarch rpm: Files are path -> content, Blobs path -> a file on
// disk to package (for big contents).
type rpmPackage struct {
	Name, Version, Release string
	Files                  map[string]string
	Blobs                  map[string]string
}

// buildRPM builds p with rpmbuild in a temporary top dir and returns the .rpm path.
func buildRPM(t testing.TB, p rpmPackage) string {
	t.Helper()
	requireTools(t, "rpmbuild")
	top := t.TempDir()
	src := filepath.Join(top, "payload")
	paths := make([]string, 0, len(p.Files))
	for path, content := range p.Files {
		writeFile(t, src, path, content, 0o644)
		paths = append(paths, path)
	}
	for path, from := range p.Blobs {
		run(t, "install", "-D", "-m", "0644", from, filepath.Join(src, path))
		paths = append(paths, path)
	}
	slices.Sort(paths)
	spec := fmt.Sprintf(`Name: %s
Version: %s
Release: %s
Summary: rechunker test package %s
License: MIT
BuildArch: noarch
%%define __os_install_post %%{nil}
%%define _build_id_links none
%%define _binary_payload w1.gzdio

%%description
Test package %s.

%%install
mkdir -p %%{buildroot}
cp -a %s/. %%{buildroot}/

%%files
%s
`, p.Name, p.Version, p.Release, p.Name, p.Name, src, strings.Join(paths, "\n"))
	specPath := filepath.Join(top, p.Name+".spec")
	require.NoError(t, os.WriteFile(specPath, []byte(spec), 0o644))
	run(t, "rpmbuild", "--quiet", "--define", "_topdir "+top, "-bb", specPath)
	rpms, err := filepath.Glob(filepath.Join(top, "RPMS", "noarch", p.Name+"-*.rpm"))
	require.NoError(t, err)
	require.Len(t, rpms, 1, "rpmbuild output for %s", p.Name)
	return rpms[0]
}

// rpmDBPath is where the scenarios keep the rpm database (rpm >= 4.17's default).
const rpmDBPath = "/usr/lib/sysimage/rpm"

// installRPMs installs rpms into root with its own database at rpmDBPath.
func installRPMs(t testing.TB, root string, rpms ...string) {
	t.Helper()
	requireTools(t, "rpm")
	run(t, "rpm", "--root", root, "--dbpath", rpmDBPath, "--initdb")
	args := append([]string{"--root", root, "--dbpath", rpmDBPath, "-i", "--nodeps", "--noscripts"}, rpms...)
	run(t, "rpm", args...)
}

// upgradeRPMs upgrades packages in root (rpm -U) using the database at rpmDBPath.
func upgradeRPMs(t testing.TB, root string, rpms ...string) {
	t.Helper()
	requireTools(t, "rpm")
	args := append([]string{"--root", root, "--dbpath", rpmDBPath, "-U", "--nodeps", "--noscripts"}, rpms...)
	run(t, "rpm", args...)
}

// ---- the CLI under test ----

// cli runs the rechunker binary with its store and caches in a private directory.
type cli struct {
	home string
}

func newCLI(t testing.TB) cli {
	t.Helper()
	require.NotEmpty(t, rechunkerBin, "TestMain did not build rechunker")
	return cli{home: t.TempDir()}
}

// run runs rechunker with args and returns stdout; err includes stderr.
func (c cli) run(t testing.TB, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(rechunkerBin, args...)
	// The default store lives under $XDG_CACHE_HOME; keep every test's store private.
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+filepath.Join(c.home, "cache"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("rechunker %s: %.1fs", shortArgs(args), time.Since(start).Seconds())
	if err != nil {
		return stdout.String(), fmt.Errorf("rechunker %s: %w\nstderr:\n%s", strings.Join(args, " "), err,
			lastLines(stderr.String(), 40))
	}
	return stdout.String(), nil
}

// mustRun runs rechunker and fails t when it fails.
func (c cli) mustRun(t testing.TB, args ...string) string {
	t.Helper()
	out, err := c.run(t, args...)
	require.NoError(t, err)
	return out
}

// json runs rechunker (args should include --json) and decodes its stdout into v.
func (c cli) json(t testing.TB, v any, args ...string) {
	t.Helper()
	out := c.mustRun(t, args...)
	require.NoError(t, json.Unmarshal([]byte(out), v), "decode output of rechunker %s:\n%s",
		strings.Join(args, " "), lastLines(out, 20))
}

// ---- podman ----

// podman runs podman against private storage and the containers.conf that works in
// sandboxes (runc, lowered ulimits).
type podman struct {
	conf, root, runroot string
}

func newPodman(t testing.TB) podman {
	t.Helper()
	requireRoot(t)
	requireTools(t, "podman", "runc")
	// Not t.TempDir: podman refuses a runroot longer than 50 characters, and test names
	// make those long.
	dir, err := os.MkdirTemp("", "rcp-")
	require.NoError(t, err)
	p := podman{conf: containersConf(t), root: filepath.Join(dir, "storage"), runroot: filepath.Join(dir, "run")}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove podman storage: %v", err)
		}
	})
	t.Cleanup(func() {
		// Containers are run with --rm; remove images so no overlay mount outlives the test.
		cmd := p.cmd("rmi", "--all", "--force")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Logf("podman rmi: %v: %s", err, out)
		}
	})
	return p
}

func (p podman) cmd(args ...string) *exec.Cmd {
	cmd := exec.Command("podman", append([]string{"--root", p.root, "--runroot", p.runroot,
		"--events-backend", "file"}, args...)...)
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+p.conf)
	return cmd
}

// load copies an image into the podman storage with skopeo and returns its name there.
// (podman pull oci:DIR derives the name from DIR, which fails for paths with capitals.)
func (p podman) load(t testing.TB, img ociImage, name string) string {
	t.Helper()
	requireTools(t, "skopeo")
	cmd := exec.Command("skopeo", "copy", "-q", img.Ref(),
		fmt.Sprintf("containers-storage:[overlay@%s+%s]%s", p.root, p.runroot, name))
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+p.conf)
	runCmd(t, cmd)
	return name
}

// run runs podman and returns stdout, failing t when podman fails.
func (p podman) run(t testing.TB, args ...string) string {
	t.Helper()
	return runCmd(t, p.cmd(args...))
}

// containersConf returns $CONTAINERS_CONF, else the file hack/setup.sh writes, else a
// temporary copy of the same settings.
func containersConf(t testing.TB) string {
	t.Helper()
	if c := os.Getenv("CONTAINERS_CONF"); c != "" {
		return c
	}
	const installed = "/etc/rechunker-test/containers.conf"
	if _, err := os.Stat(installed); err == nil {
		return installed
	}
	p := filepath.Join(t.TempDir(), "containers.conf")
	require.NoError(t, os.WriteFile(p, []byte(`[containers]
default_ulimits=["nofile=1024:1024","nproc=4096:4096"]
[engine]
runtime="runc"
`), 0o644))
	return p
}
