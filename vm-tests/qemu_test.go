//go:build qemuvm

package vmtests

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Paths the QEMU scenario changes between releases and checks in the guest.
const (
	v2EtcFile   = "/etc/rechunker-test.d/10-v2.conf" // new in v2
	usrFile     = "/usr/lib/os-release"              // a packaged file; changed in v2
	localEtc    = "/etc/rechunker-local.conf"        // written in the v1 boot; must survive the upgrade
	seedDir     = "/usr/lib/containers-image-cache/app"
	seedCompont = "containers"
)

// TestQEMUBootUpgradeRollback is the end-to-end proof on machines without
// working KVM: a real Debian bootc-style image is chunked twice by rechunker
// (v2 built with v1 as the previous build), imported by libostree (through
// client/ostree_client.py: v1 in full, v2 only the layers `rechunker diff`
// says an upgrade fetches), deployed with `ostree admin deploy` and booted
// under QEMU three times: v1 (which makes a local /etc change and deploys v2
// beside itself, with ostree's 3-way /etc merge), v2 (which makes v1 the
// default again, as a rollback), and v1. A fourth boot checks the upgrade by
// delta: `rechunker delta v1 v2` applied with `delta apply --repo` against the
// v1 sysroot's repository, the rebuilt image imported there (only the layers
// whose diff_id v1 lacks) and deployed beside v1 on a second disk.
func TestQEMUBootUpgradeRollback(t *testing.T) {
	s := newQEMUSuite(t)
	v1, v2 := s.buildReleases()
	repo := filepath.Join(s.work, "task", "repo")
	require.NoError(t, os.MkdirAll(filepath.Dir(repo), 0o755))
	_, err := Run(s.ctx, Cmd{Name: "ostree", Args: []string{"init", "--repo=" + repo, "--mode=bare"}}, nil)
	require.NoError(t, err)

	s.step("import v1 with libostree (every layer)")
	imp1 := s.importImage(repo, v1, nil)
	s.step("import v2: only the layers `rechunker diff --json` says an upgrade fetches")
	plain := s.layerDiff("oci:"+v1, "oci:"+v2)
	fetched := Digests(plain.Fetched)
	imp2 := s.importImage(repo, v2, fetched)
	t.Logf("upgrade imported %d of %d layers: %s", len(imp2.LayersImported), imp2.LayersTotal, strings.Join(imp2.LayersImported, " "))
	s.requireSeedNotFetched(v2, fetched)

	s.step("deploy v1 into a new sysroot, make its disk")
	sysroot := filepath.Join(s.work, "sysroot")
	require.NoError(t, NewSysroot(s.ctx, sysroot, repo, imp1.Commit))
	disk := filepath.Join(s.work, "disk.img")
	require.NoError(t, MakeDisk(s.ctx, sysroot, disk, 4<<30))

	// The upgrade by delta works on the same sysroot, after its v1 disk is made:
	// v1's objects in its ostree/repo are the delta's sources and the import's target.
	s.step("upgrade by delta: rechunker delta v1 v2 (sources: v1's ostree objects only)")
	impD := s.deltaUpgrade(v1, v2, sysroot, imp1.Commit, imp2.Commit, plain)
	deltaDisk := filepath.Join(s.work, "disk-delta.img")
	require.NoError(t, MakeDisk(s.ctx, sysroot, deltaDisk, 4<<30))
	require.NoError(t, RemoveSysroot(s.ctx, sysroot)) // the disks hold it now

	seedSums := s.seedChecksums()
	s.step("boot 1: v1; change /etc locally; pull v2 from the task disk and deploy it")
	r1 := s.boot("1-v1", disk, s.taskDisk("1", true, s.upgradeTask(imp2.Commit)))
	s.requireBooted(r1, imp1.Commit, 1)
	assert.True(t, r1.Absent[v2EtcFile], "v1 must not have %s", v2EtcFile)
	s.requireSeedIntact(r1, seedSums)

	s.step("boot 2: v2 (the default after the upgrade); roll back to v1")
	r2 := s.boot("2-v2", disk, s.taskDisk("2", false, s.checkTask()+"/usr/bin/python3 /run/rechunker-task/ostree_client.py rollback\n"))
	s.requireBooted(r2, imp2.Commit, 2)
	assert.Equal(t, []string{imp1.Commit}, r2.OtherCommits, "v1 stays deployed as the rollback")
	assert.Contains(t, r2.FileChecksums, v2EtcFile, "v2's new /etc file is there")
	assert.Contains(t, r2.FileChecksums, localEtc, "the /etc change made while v1 ran survived the upgrade (3-way merge)")
	assert.NotEqual(t, r1.FileChecksums[usrFile], r2.FileChecksums[usrFile], "%s changed in v2", usrFile)
	assert.Equal(t, s.hostSum(usrFile), r2.FileChecksums[usrFile], "%s in the booted v2 is the one built", usrFile)
	s.requireSeedIntact(r2, seedSums)

	s.step("boot 3: v1 again, the default after the rollback")
	r3 := s.boot("3-rollback", disk, s.taskDisk("3", false, s.checkTask()))
	s.requireBooted(r3, imp1.Commit, 2)
	assert.True(t, r3.Absent[v2EtcFile], "after the rollback v1's /etc has no %s", v2EtcFile)
	assert.Equal(t, r1.FileChecksums[usrFile], r3.FileChecksums[usrFile], "%s is v1's again", usrFile)

	s.step("boot 4: the image rebuilt from the delta, deployed beside v1 on its own disk")
	r4 := s.boot("4-delta", deltaDisk, s.taskDisk("4", false, s.checkTask()))
	s.requireBooted(r4, impD.Commit, 2)
	assert.Equal(t, []string{imp1.Commit}, r4.OtherCommits, "v1 stays deployed as the rollback")
	assert.Contains(t, r4.FileChecksums, v2EtcFile, "v2's new /etc file is there")
	assert.Contains(t, r4.FileChecksums, localEtc, "the /etc change made in v1's deployment survived the upgrade (3-way merge)")
	assert.Equal(t, r2.FileChecksums, r4.FileChecksums, "the same files as after the plain upgrade")
	assert.Equal(t, s.hostSum(usrFile), r4.FileChecksums[usrFile], "%s in the booted image is the one built", usrFile)
	s.requireSeedIntact(r4, seedSums)
}

type qemuSuite struct {
	t      *testing.T
	ctx    context.Context
	work   string
	bin    string
	client Client
	qemu   string
	accel  string
	root   string // the image's root file system, as v2 was built
	start  time.Time
}

func newQEMUSuite(t *testing.T) *qemuSuite {
	var missing []string
	for _, tool := range []string{"qemu-system-x86_64", "ostree", "debootstrap", "mkfs.ext4", "debugfs", "zstd", "umoci", "skopeo", "setfattr"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	client := Client{Python: "/usr/bin/python3", Script: mustAbsPath(t, "client/ostree_client.py")}
	if err := exec.Command(client.Python, "-c", "import gi; gi.require_version('OSTree', '1.0')").Run(); err != nil {
		missing = append(missing, "python3-gi with gir1.2-ostree-1.0 (/usr/bin/python3)")
	}
	if os.Getuid() != 0 {
		missing = append(missing, "root (debootstrap, chroot, ostree admin deploy keeping ownership)")
	}
	if len(missing) > 0 {
		msg := "QEMU suite needs: " + strings.Join(missing, ", ") + " (sudo ./hack/setup.sh installs them)"
		if os.Getenv("CI") == "true" || os.Getenv(EnvRequire) == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	t.Cleanup(cancel)
	s := &qemuSuite{t: t, ctx: ctx, client: client, qemu: "qemu-system-x86_64", start: time.Now()}
	// Not t.TempDir: a failed run keeps its console logs, disks and images for a person
	// to read (the failure names them); a passing one is removed unless RECHUNKER_VM_KEEP=1.
	s.work = mustMkdirTemp(t, "rechunker-qemu-")
	t.Cleanup(func() {
		if t.Failed() || os.Getenv(EnvKeep) == "1" {
			t.Logf("kept the work directory %s (console logs in boot-*/)", s.work)
			return
		}
		if err := RemoveSysroot(context.Background(), filepath.Join(s.work, "sysroot")); err != nil {
			t.Logf("remove %s: %v", s.work, err)
		}
		_ = os.RemoveAll(s.work)
	})
	s.bin = s.rechunkerBin()
	return s
}

func (s *qemuSuite) step(format string, args ...any) {
	s.t.Helper()
	s.t.Logf("[%5.0fs] %s", time.Since(s.start).Seconds(), fmt.Sprintf(format, args...))
}

func (s *qemuSuite) run(name string, args ...string) []byte {
	s.t.Helper()
	res, err := Run(s.ctx, Cmd{Name: name, Args: args}, nil)
	require.NoError(s.t, err)
	return res.Stdout
}

func (s *qemuSuite) rechunkerBin() string {
	if bin := os.Getenv(EnvBin); bin != "" {
		return bin
	}
	bin := filepath.Join(s.work, "rechunker")
	require.NoError(s.t, BuildRechunker(s.ctx, mustAbsPath(s.t, ".."), bin))
	return bin
}

// buildReleases builds v1 and v2 of the test OS and chunks both, with extra
// flags for both builds; it returns their OCI layout references (DIR:TAG).
func (s *qemuSuite) buildReleases(extra ...string) (v1, v2 string) {
	s.step("boot image (cached in %s)", testCacheDir(s.t))
	img := BootImage{Suite: "bookworm", Mirror: debianMirror(), GuestDir: mustAbsPath(s.t, "guest")}
	tarball, err := img.Tarball(s.ctx, testCacheDir(s.t), testLog{s.t})
	require.NoError(s.t, err)
	s.root = filepath.Join(s.work, "rootfs")
	require.NoError(s.t, os.MkdirAll(s.root, 0o755))
	s.run("tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-I", "zstd -T0 -q", "-C", s.root, "-xpf", tarball)
	s.embedSeedImage()

	out := filepath.Join(s.work, "out")
	s.step("rechunker build v1")
	s.run(s.bin, append([]string{"build", "--bootc", "--quiet", "--rootfs", s.root, "--output", "oci:" + out + ":v1",
		"-l", "org.opencontainers.image.version=v1"}, extra...)...)
	s.run(s.bin, "verify", "oci:"+out+":v1")

	s.step("rechunker build v2 (v1 + an /etc drop-in + a changed %s) with v1 as the previous build", usrFile)
	require.NoError(s.t, os.MkdirAll(filepath.Join(s.root, filepath.Dir(v2EtcFile)), 0o755))
	require.NoError(s.t, os.WriteFile(filepath.Join(s.root, v2EtcFile), []byte("# added in v2\n"), 0o644))
	f, err := os.OpenFile(filepath.Join(s.root, usrFile), os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(s.t, err)
	_, err = f.WriteString("IMAGE_VERSION=v2\n")
	require.NoError(s.t, err)
	require.NoError(s.t, f.Close())
	s.run(s.bin, append([]string{"build", "--bootc", "--quiet", "--rootfs", s.root, "--output", "oci:" + out + ":v2",
		"--previous-build", "oci:" + out + ":v1", "-l", "org.opencontainers.image.version=v2"}, extra...)...)
	s.run(s.bin, "verify", "oci:"+out+":v2")
	return out + ":v1", out + ":v2"
}

// embedSeedImage copies a small OCI image into the OS as a `dir:` image (as
// physically bound images are shipped) and gives it its own component.
func (s *qemuSuite) embedSeedImage() {
	layout := filepath.Join(s.work, "seed-layout")
	bundle := filepath.Join(s.work, "seed-bundle")
	s.run("umoci", "init", "--layout", layout)
	s.run("umoci", "new", "--image", layout+":app")
	s.run("umoci", "unpack", "--image", layout+":app", bundle)
	data := make([]byte, 256<<10)
	for i := range data {
		data[i] = byte(i*7 + i/251)
	}
	require.NoError(s.t, os.MkdirAll(filepath.Join(bundle, "rootfs/app"), 0o755))
	require.NoError(s.t, os.WriteFile(filepath.Join(bundle, "rootfs/app/data.bin"), data, 0o644))
	s.run("umoci", "repack", "--image", layout+":app", bundle)
	dst := filepath.Join(s.root, seedDir)
	require.NoError(s.t, os.MkdirAll(filepath.Dir(dst), 0o755))
	s.run("skopeo", "copy", "--quiet", "oci:"+layout+":app", "dir:"+dst)
	s.run("setfattr", "-n", "user.component", "-v", seedCompont, dst)
}

// seedChecksums returns the embedded image's files and their sha256 on the host.
func (s *qemuSuite) seedChecksums() map[string]string {
	sums := map[string]string{}
	entries, err := os.ReadDir(filepath.Join(s.root, seedDir))
	require.NoError(s.t, err)
	for _, e := range entries {
		p := filepath.Join(seedDir, e.Name())
		sums[p] = s.hostSum(p)
	}
	return sums
}

func (s *qemuSuite) hostSum(path string) string {
	b, err := os.ReadFile(filepath.Join(s.root, path))
	require.NoError(s.t, err)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func (s *qemuSuite) importImage(repo, image string, layers []string) Imported {
	s.t.Helper()
	imp, err := s.client.Import(s.ctx, repo, image, layers, "")
	require.NoError(s.t, err)
	require.NoError(s.t, s.client.CheckComplete(s.ctx, repo, imp.Commit))
	require.Equal(s.t, imp.LabelCommit, imp.Commit, "%s: the ostree.commit label names the commit in the commit layer", image)
	return imp
}

// layerDiff is `rechunker diff --json OLD NEW` (full image references): the
// layers an upgrade from OLD to NEW fetches, a layer OLD has by digest or by
// diff_id counting as present.
func (s *qemuSuite) layerDiff(old, new string) LayerDiff {
	s.t.Helper()
	out := s.run(s.bin, "diff", "--json", old, new)
	d, err := ParseLayerDiff(out)
	require.NoError(s.t, err)
	require.NotEmpty(s.t, d.Fetched, "the commit layer changes in every build")
	return d
}

// requireSeedNotFetched checks that the layer holding the embedded image is not
// among the fetched ones: it did not change, so the upgrade must reuse it.
func (s *qemuSuite) requireSeedNotFetched(v2 string, fetched []string) {
	s.requireSeedNotFetchedRef("oci:"+v2, fetched)
}

func (s *qemuSuite) requireSeedNotFetchedRef(v2 string, fetched []string) {
	var inspect struct {
		Layers []struct {
			Digest     string   `json:"digest"`
			Components []string `json:"components"`
		} `json:"layers"`
	}
	require.NoError(s.t, json.Unmarshal(s.run(s.bin, "inspect", "--json", v2), &inspect))
	found := false
	for _, l := range inspect.Layers {
		for _, c := range l.Components {
			if c == seedCompont {
				found = true
				assert.NotContains(s.t, fetched, l.Digest, "the embedded image's layer is unchanged and must not be fetched")
			}
		}
	}
	require.True(s.t, found, "no layer of %s holds the %q component", v2, seedCompont)
}

// taskDisk makes the second disk of a boot: task.sh (run by the guest's report
// unit), the client and, when withRepo, the repository the upgrade pulls from.
func (s *qemuSuite) taskDisk(name string, withRepo bool, script string) string {
	dir := filepath.Join(s.work, "task")
	if !withRepo {
		dir = filepath.Join(s.work, "task-"+name)
		require.NoError(s.t, os.MkdirAll(dir, 0o755))
	}
	require.NoError(s.t, os.WriteFile(filepath.Join(dir, "task.sh"), []byte("#!/bin/bash\nset -e\n"+script), 0o755))
	client, err := os.ReadFile(s.client.Script)
	require.NoError(s.t, err)
	require.NoError(s.t, os.WriteFile(filepath.Join(dir, "ostree_client.py"), client, 0o755))
	img := filepath.Join(s.work, "task-"+name+".img")
	require.NoError(s.t, MakeDisk(s.ctx, dir, img, 3<<30))
	return img
}

// checkTask reports the files the assertions need.
func (s *qemuSuite) checkTask() string {
	var b strings.Builder
	paths := []string{v2EtcFile, usrFile, localEtc}
	for p := range s.seedChecksums() {
		paths = append(paths, p)
	}
	for _, p := range paths {
		fmt.Fprintf(&b, "if [[ -e %[1]s ]]; then echo \"file %[1]s $(sha256sum <%[1]s | cut -d' ' -f1)\"; else echo \"absent %[1]s\"; fi\n", p)
	}
	return b.String()
}

// upgradeTask checks files, changes /etc locally, then pulls v2 from the task
// disk's repository into the booted sysroot (re-verifying every object) and
// deploys it beside v1.
func (s *qemuSuite) upgradeTask(commit string) string {
	return s.checkTask() + fmt.Sprintf(`echo local-change >%s
ostree pull-local --untrusted /run/rechunker-task/repo %s
ostree admin deploy --os=%s %s
echo upgraded
`, localEtc, commit, OSName, commit)
}

// boot boots disk's default loader entry, verbatim, with task as the second disk.
func (s *qemuSuite) boot(name, disk, task string) Report {
	s.t.Helper()
	fs := DiskFS{Image: disk}
	entries, err := LoaderEntries(s.ctx, fs)
	require.NoError(s.t, err)
	e, err := DefaultEntry(entries)
	require.NoError(s.t, err)
	dir := filepath.Join(s.work, "boot-"+name)
	require.NoError(s.t, os.MkdirAll(dir, 0o755))
	kernel, initrd := filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initramfs.img")
	require.NoError(s.t, fs.CopyOut(s.ctx, "/boot"+e.Linux, kernel))
	require.NoError(s.t, fs.CopyOut(s.ctx, "/boot"+e.Initrd, initrd))
	if s.accel == "" {
		var why string
		s.accel, why = ProbeAccel(s.ctx, s.qemu, kernel, s.work)
		s.t.Logf("accelerator %s: %s", s.accel, why)
	}
	r, took, err := Boot(s.ctx, VM{QEMU: s.qemu, Accel: s.accel, Kernel: kernel, Initrd: initrd,
		Cmdline: e.Options, Disks: []string{disk, task}, Memory: "1024", LogDir: dir, Timeout: 8 * time.Minute})
	require.NoError(s.t, err, "boot %s (entry %s, %q)", name, e.File, e.Title)
	s.t.Logf("boot %s: %s entry %s, report after %.0f s; task said:\n  %s", name, s.accel, e.File, took.Seconds(), strings.Join(r.Task, "\n  "))
	return r
}

func (s *qemuSuite) requireBooted(r Report, commit string, deployments int) {
	s.t.Helper()
	require.Equal(s.t, 0, r.TaskExit, "the task script failed; it said:\n%s", strings.Join(r.Task, "\n"))
	assert.Equal(s.t, "running", r.State, "systemctl is-system-running; failed units: %v", r.FailedUnits)
	assert.True(s.t, r.OstreeBooted, "/run/ostree-booted exists")
	assert.True(s.t, r.UsrReadOnly, "/usr is read-only")
	assert.Equal(s.t, commit, r.BootedCommit, "booted deployment's commit")
	assert.Len(s.t, r.OtherCommits, deployments-1, "deployments besides the booted one")
}

func (s *qemuSuite) requireSeedIntact(r Report, want map[string]string) {
	s.t.Helper()
	for p, sum := range want {
		assert.Equal(s.t, sum, r.FileChecksums[p], "embedded image file %s", p)
		if name := filepath.Base(p); len(name) == 64 {
			assert.Equal(s.t, name, r.FileChecksums[p], "blob %s matches its digest in the booted system", p)
		}
	}
}

func testCacheDir(t *testing.T) string {
	dir := os.Getenv("RECHUNKER_TEST_CACHE")
	if dir == "" {
		base, err := os.UserCacheDir()
		require.NoError(t, err)
		dir = filepath.Join(base, "rechunker-test")
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

func debianMirror() string {
	if m := os.Getenv("RECHUNKER_DEBIAN_MIRROR"); m != "" {
		return m
	}
	return "http://deb.debian.org/debian"
}

func mustMkdirTemp(t *testing.T, pattern string) string {
	d, err := os.MkdirTemp("", pattern)
	require.NoError(t, err)
	return d
}

// testLog writes a long build's output into the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		if strings.TrimSpace(line) != "" {
			l.t.Log("  " + line)
		}
	}
	return len(p), nil
}
