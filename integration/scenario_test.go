//go:build integration

package integration

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// ---- one summary line per scenario ----

// scenarioSummary is what every upgrade scenario reports in one greppable line
// ("scenario summary: ..."), collected into docs/benchmarks.md.
type scenarioSummary struct {
	Scenario      string
	Fetched       int64 // bytes the upgrade between the chunked images downloads
	LayersFetched int
	LayersTotal   int
	Unchunked     int64 // bytes the same upgrade downloads between the plain images; <0: not measured
	LowerBound    int64 // gzip -6 of the files that really changed; <0: not computed
	BuildFirst    time.Duration
	BuildNext     time.Duration
	Note          string
}

func (s scenarioSummary) log(t testing.TB) {
	t.Helper()
	opt := func(n int64) string {
		if n < 0 {
			return "n/a"
		}
		return fmt.Sprintf("%d B", n)
	}
	line := fmt.Sprintf("scenario summary: %s | chunked %d B | unchunked %s | lower bound %s | layers fetched %d/%d | build %.1fs first, %.1fs next",
		s.Scenario, s.Fetched, opt(s.Unchunked), opt(s.LowerBound), s.LayersFetched, s.LayersTotal,
		s.BuildFirst.Seconds(), s.BuildNext.Seconds())
	if s.Note != "" {
		line += " | " + s.Note
	}
	t.Log(line)
}

// ---- the CLI: build and diff with their JSON reports ----

// buildOutput is the part of `rechunker build --json` the scenarios read.
type buildOutput struct {
	ManifestDigest string            `json:"manifest_digest"`
	Commit         string            `json:"commit"`
	Reused         int               `json:"reused_layers"`
	Bytes          int64             `json:"compressed_bytes"`
	Labels         map[string]string `json:"labels"`
	Layers         []buildLayer      `json:"layers"`
	BaseMarks      int               `json:"base_marks"`
	FromPrevious   string            `json:"from_previous"`
}

// buildLayer is one layer of a build report.
type buildLayer struct {
	Index      int      `json:"index"`
	Digest     string   `json:"digest"`
	Size       int64    `json:"size"`
	Components []string `json:"components"`
	Reused     string   `json:"reused"`
}

// build runs `rechunker build --json args...` and returns its report and wall time.
func (c cli) build(t testing.TB, args ...string) (buildOutput, time.Duration) {
	t.Helper()
	var out buildOutput
	start := time.Now()
	c.json(t, &out, append([]string{"build", "--json"}, args...)...)
	d := time.Since(start)
	require.NotEmpty(t, out.ManifestDigest, "build --json reports the manifest digest")
	return out, d
}

// diff runs `rechunker diff --json old new`.
func (c cli) diff(t testing.TB, old, new string) diffReport {
	t.Helper()
	var d diffReport
	c.json(t, &d, "diff", "--json", old, new)
	return d
}

// describe lists the fetched layers of d, for logs and assertion messages.
func (d diffReport) describe() string {
	var out []string
	for _, l := range d.Fetched {
		comps := strings.Join(l.Components, ",")
		if len(comps) > 80 {
			comps = comps[:77] + "..."
		}
		out = append(out, fmt.Sprintf("#%d %d B [%s]", l.Index, l.Size, comps))
	}
	return strings.Join(out, "; ")
}

// layersWith returns the layers of the new image (fetched or reused) that carry component.
func (d diffReport) layersWith(component string) (fetched, reused []diffLayer) {
	for _, l := range d.Fetched {
		if slices.Contains(l.Components, component) {
			fetched = append(fetched, l)
		}
	}
	for _, l := range d.Reused {
		if slices.Contains(l.Components, component) {
			reused = append(reused, l)
		}
	}
	return fetched, reused
}

// commitLayer is layer 0 of a chunked image (the ostree commit), fetched on every upgrade.
func (d diffReport) commitLayer() (diffLayer, bool) {
	for _, l := range append(append([]diffLayer(nil), d.Fetched...), d.Reused...) {
		if l.Index == 0 {
			return l, true
		}
	}
	return diffLayer{}, false
}

func sumSizes(ls []diffLayer) int64 {
	var n int64
	for _, l := range ls {
		n += l.Size
	}
	return n
}

// ---- plain source images cached between runs ----

// bootcConfig is the umoci configuration of the plain Debian source images.
var bootcConfig = []string{"--config.label", "containers.bootc=1", "--config.cmd", "/sbin/init"}

// plainImageVersion changes whenever cachedRootfsImage's recipe changes.
const plainImageVersion = "1"

// cachedRootfsImage returns a one-layer OCI image (made with umoci, configured with
// config) of a rootfs tarball, building it on first use and keeping it in the cache:
// umoci needs about half a minute for the Debian tree. The returned layout is shared:
// callers must only read it (copy it elsewhere to add tags).
func cachedRootfsImage(t testing.TB, tarball string, config ...string) ociImage {
	t.Helper()
	requireTools(t, "umoci", "tar", "zstd")
	key := sha256.Sum256([]byte(strings.Join(append([]string{plainImageVersion, filepath.Base(tarball)}, config...), "\n")))
	dir := cacheDir(t)
	layout := filepath.Join(dir, fmt.Sprintf("oci-%s-%s", strings.TrimSuffix(filepath.Base(tarball), ".tar.zst"), hex.EncodeToString(key[:4])))
	img := ociImage{Layout: layout, Tag: "latest"}
	unlock := lockFile(t, layout+".lock")
	defer unlock()
	if _, err := os.Stat(filepath.Join(layout, "index.json")); err == nil {
		return img
	}
	start := time.Now()
	tmp, err := os.MkdirTemp(dir, "oci-tmp-")
	require.NoError(t, err)
	defer os.RemoveAll(tmp)
	b := newImageFromRootfs(t, filepath.Join(tmp, "layout"), "latest", tarball, config...)
	require.NoError(t, os.RemoveAll(b.dir)) // hundreds of MB; the layout is what we keep
	require.NoError(t, os.Rename(filepath.Join(tmp, "layout"), layout))
	t.Logf("cached %s in %.0fs", layout, time.Since(start).Seconds())
	return img
}

// ---- the Debian security update ----

// securityRecipeVersion changes whenever securityUpdate's recipe changes.
const securityRecipeVersion = "1"

// securityUpdate is a Debian rootfs with the point-release updates and security fixes
// published since the base was bootstrapped.
type securityUpdate struct {
	Tarball  string
	Upgraded []string // "package old -> new", as apt-get reported them
}

// securityPair is the security-update scenario's two releases: the Debian bootc base
// (v2) and the same tree after apt-get upgrade from bookworm-security (v3), as
// one-layer bootc images, with their tarballs.
type securityPair struct {
	base   string // v2's root file system tarball
	update securityUpdate
	v2, v3 ociImage
}

func newSecurityPair(t testing.TB) securityPair {
	t.Helper()
	base := bookwormBootc().tarball(t)
	upd := securityUpdated(t, base)
	return securityPair{base: base, update: upd,
		v2: cachedRootfsImage(t, base, bootcConfig...), v3: cachedRootfsImage(t, upd.Tarball, bootcConfig...)}
}

// securityUpdated returns the base rootfs tarball rebuilt the way a distribution's next
// image build would be: bookworm-updates and bookworm-security enabled in sources.list
// and `apt-get upgrade` run in a chroot (no services started), then shaped for bootc
// again. It is cached beside the base (the archive moves on; a cached result stays).
func securityUpdated(t testing.TB, base string) securityUpdate {
	t.Helper()
	path, upgraded := aptRootfs(t, base, "security-"+securityRecipeVersion, func(apt func(...string) string) []string {
		apt("update")
		var upgraded []string
		for _, l := range strings.Split(apt("-s", "upgrade"), "\n") {
			// Inst libssl3 [3.0.20-1~deb12u2] (3.0.22-1~deb12u2 Debian-Security:12/... [amd64])
			f := strings.Fields(l)
			if len(f) >= 4 && f[0] == "Inst" {
				upgraded = append(upgraded, fmt.Sprintf("%s %s -> %s", f[1], strings.Trim(f[2], "[]"), strings.TrimPrefix(f[3], "(")))
			}
		}
		if len(upgraded) == 0 {
			// A state of the archive (right after a point release), not a missing tool:
			// skip even under CI, and try again next run.
			t.Skip("bookworm-updates and bookworm-security have nothing newer than the bootstrapped base")
		}
		apt("-y", "upgrade")
		return upgraded
	})
	return securityUpdate{Tarball: path, Upgraded: upgraded}
}

// aptRootfs returns the base rootfs tarball changed by apt-get in a chroot (bookworm,
// bookworm-updates and bookworm-security in sources.list; no services started), shaped
// for bootc again and cached under name (which must change with the recipe). work runs
// the apt-get commands and returns notes (e.g. what was upgraded), cached beside it.
func aptRootfs(t testing.TB, base, name string, work func(apt func(args ...string) string) []string) (string, []string) {
	t.Helper()
	requireRoot(t)
	requireTools(t, "chroot", "tar", "zstd", "mknod")
	mirror := os.Getenv("RECHUNKER_DEBIAN_MIRROR")
	if mirror == "" {
		mirror = "http://deb.debian.org/debian"
	}
	security := os.Getenv("RECHUNKER_DEBIAN_SECURITY_MIRROR")
	if security == "" {
		security = "http://deb.debian.org/debian-security"
	}
	sources := fmt.Sprintf("deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s bookworm-security main\n",
		mirror, mirror, security)
	key := sha256.Sum256([]byte(strings.Join([]string{name, filepath.Base(base), sources}, "\n")))
	dir := cacheDir(t)
	label := strings.SplitN(name, "-", 2)[0]
	path := filepath.Join(dir, fmt.Sprintf("%s-%s-%s.tar.zst", strings.TrimSuffix(filepath.Base(base), ".tar.zst"), label, hex.EncodeToString(key[:4])))
	notesPath := path + ".notes"
	unlock := lockFile(t, path+".lock")
	defer unlock()
	if _, err := os.Stat(path); err == nil {
		notes, err := os.ReadFile(notesPath)
		require.NoError(t, err)
		if len(strings.TrimSpace(string(notes))) == 0 {
			return path, nil
		}
		return path, strings.Split(strings.TrimSpace(string(notes)), "\n")
	}

	start := time.Now()
	work0, err := os.MkdirTemp(dir, label+"-")
	require.NoError(t, err)
	defer os.RemoveAll(work0)
	root := filepath.Join(work0, "rootfs")
	extractTarball(t, base, root)

	// What the image keeps: the new sources.list. What only the build needs (and is
	// undone below): device nodes, the host's resolver, a policy-rc.d refusing to start
	// services.
	writeFile(t, root, "etc/apt/sources.list", sources, 0o644)
	resolv := filepath.Join(root, "etc/resolv.conf")
	oldResolv, resolvErr := os.ReadFile(resolv)
	resolvMode := os.FileMode(0o644)
	if st, err := os.Lstat(resolv); err == nil {
		require.True(t, st.Mode().IsRegular(), "%s: expected the regular file debootstrap copies", resolv)
		resolvMode = st.Mode().Perm()
	}
	if hostResolv, err := os.ReadFile("/etc/resolv.conf"); err == nil {
		require.NoError(t, removeIfExists(resolv))
		require.NoError(t, os.WriteFile(resolv, hostResolv, 0o644))
	}
	writeFile(t, root, "usr/sbin/policy-rc.d", "#!/bin/sh\nexit 101\n", 0o755)
	for _, n := range []struct {
		name, minor string
	}{{"null", "3"}, {"zero", "5"}, {"random", "8"}, {"urandom", "9"}} {
		run(t, "mknod", "-m", "666", filepath.Join(root, "dev", n.name), "c", "1", n.minor)
	}
	apt := func(args ...string) string {
		cmd := exec.Command("chroot", append([]string{root, "apt-get", "-q", "-o", "Dpkg::Options::=--force-confold",
			"-o", "Dpkg::Options::=--force-confdef"}, args...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C")
		return runCmd(t, cmd)
	}
	notes := work(apt)
	apt("clean")
	require.NoError(t, os.Remove(filepath.Join(root, "usr/sbin/policy-rc.d")))
	require.NoError(t, os.Remove(resolv))
	if resolvErr == nil {
		require.NoError(t, os.WriteFile(resolv, oldResolv, resolvMode))
		require.NoError(t, os.Chmod(resolv, resolvMode))
	}
	shapeForBootc(t, root) // empties /dev again, the apt lists and caches

	tmp := path + ".tmp"
	run(t, "tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-I", "zstd -T0 -3 -q",
		"-C", root, "-cf", tmp, ".")
	require.NoError(t, os.WriteFile(notesPath, []byte(strings.Join(notes, "\n")+"\n"), 0o644))
	require.NoError(t, os.Rename(tmp, path))
	t.Logf("built %s in %.0fs", path, time.Since(start).Seconds())
	return path, notes
}

// ---- what really changed between two trees ----

// treeChange is the lower bound of an upgrade: the files of new whose content or
// metadata differ from old (or that old lacks), and the gzip -6 size of their contents,
// each distinct content counted once (ostree stores it once).
type treeChange struct {
	Paths      []string
	Gzipped    int64 // gzip -6 of the changed regular files' contents
	Raw        int64 // their uncompressed size
	Removed    int   // paths of old missing in new
	biggest    []changedFile
	seenSHA256 map[[32]byte]bool
}

type changedFile struct {
	path    string
	gzipped int64
}

// top returns the n changed files with the biggest compressed contents, for logs.
func (c *treeChange) top(n int) string {
	s := slices.Clone(c.biggest)
	slices.SortFunc(s, func(a, b changedFile) int { return int(b.gzipped - a.gzipped) })
	var out []string
	for _, f := range s[:min(n, len(s))] {
		out = append(out, fmt.Sprintf("%s %d B", f.path, f.gzipped))
	}
	return strings.Join(out, ", ")
}

// diffTrees compares two unpacked root file systems the way ostree sees them: file type,
// mode, owner, xattrs, symlink target and content (mtimes do not count).
func diffTrees(t testing.TB, oldRoot, newRoot string) *treeChange {
	t.Helper()
	c := &treeChange{seenSHA256: map[[32]byte]bool{}}
	err := filepath.WalkDir(newRoot, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(newRoot, p)
		if err != nil {
			return err
		}
		same, err := sameEntry(filepath.Join(oldRoot, rel), p)
		if err != nil || same {
			return err
		}
		c.Paths = append(c.Paths, "/"+rel)
		if e.Type().IsRegular() {
			return c.addContent("/"+rel, p)
		}
		return nil
	})
	require.NoError(t, err, "compare %s with %s", oldRoot, newRoot)
	err = filepath.WalkDir(oldRoot, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(oldRoot, p)
		if err != nil {
			return err
		}
		if _, err := os.Lstat(filepath.Join(newRoot, rel)); errors.Is(err, os.ErrNotExist) {
			c.Removed++
		}
		return nil
	})
	require.NoError(t, err, "list removed paths of %s", oldRoot)
	return c
}

func (c *treeChange) addContent(rel, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	var n countWriter
	zw, err := gzip.NewWriterLevel(&n, 6)
	if err != nil {
		return err
	}
	h := sha256.New()
	raw, err := io.Copy(io.MultiWriter(zw, h), f)
	if err != nil {
		return fmt.Errorf("compress %s: %w", p, err)
	}
	if err := zw.Close(); err != nil {
		return err
	}
	var sum [32]byte
	h.Sum(sum[:0])
	if c.seenSHA256[sum] {
		return nil
	}
	c.seenSHA256[sum] = true
	c.Gzipped += int64(n)
	c.Raw += raw
	c.biggest = append(c.biggest, changedFile{path: rel, gzipped: int64(n)})
	return nil
}

type countWriter int64

func (w *countWriter) Write(p []byte) (int, error) {
	*w += countWriter(len(p))
	return len(p), nil
}

// sameEntry reports whether old and new are the same to ostree.
func sameEntry(oldPath, newPath string) (bool, error) {
	var o, n unix.Stat_t
	if err := unix.Lstat(oldPath, &o); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, err
	}
	if err := unix.Lstat(newPath, &n); err != nil {
		return false, err
	}
	if o.Mode != n.Mode || o.Uid != n.Uid || o.Gid != n.Gid {
		return false, nil
	}
	ox, err := xattrsOf(oldPath)
	if err != nil {
		return false, err
	}
	nx, err := xattrsOf(newPath)
	if err != nil {
		return false, err
	}
	if ox != nx {
		return false, nil
	}
	switch n.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		ot, err := os.Readlink(oldPath)
		if err != nil {
			return false, err
		}
		nt, err := os.Readlink(newPath)
		return ot == nt, err
	case unix.S_IFREG:
		if o.Size != n.Size {
			return false, nil
		}
		return sameContent(oldPath, newPath)
	}
	return true, nil
}

// xattrsOf returns a path's extended attributes as one comparable string.
func xattrsOf(p string) (string, error) {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return "", nil
		}
		return "", fmt.Errorf("llistxattr %s: %w", p, err)
	}
	names := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
	slices.Sort(names)
	var b strings.Builder
	val := make([]byte, 65536)
	for _, name := range names {
		if name == "" {
			continue
		}
		m, err := unix.Lgetxattr(p, name, val)
		if err != nil {
			return "", fmt.Errorf("lgetxattr %s %s: %w", p, name, err)
		}
		fmt.Fprintf(&b, "%s=%x;", name, val[:m])
	}
	return b.String(), nil
}

func sameContent(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	ba, bb := make([]byte, 1<<16), make([]byte, 1<<16)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		if ea == io.EOF || ea == io.ErrUnexpectedEOF {
			return eb == ea, nil
		}
		if ea != nil {
			return false, ea
		}
		if eb != nil {
			return false, eb
		}
	}
}
