//go:build vmtest

package vmtests

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Names the suite creates on the host (and removes unless RECHUNKER_VM_KEEP=1).
const (
	srcRepo      = "localhost/rechunker-vmtest-src" // podman builds, unchunked
	outRepo      = "localhost/rechunker-vmtest"     // rechunker output; :latest is what the VM tracks
	vmName       = "rechunker-vmtest"
	progressPath = "/run/rechunker-vmtest-progress.jsonl"
)

// TestBootAndUpgradeChunkedImage builds two versions of a bootc OS image,
// chunks both with rechunker (the second against the first), boots the first
// in a libvirt VM with bcvk, upgrades to the second with `bootc upgrade`,
// reboots, and rolls back. It checks that bootc downloads exactly the layers
// `rechunker diff` predicts.
func TestBootAndUpgradeChunkedImage(t *testing.T) {
	cfg, err := ConfigFromEnv(os.Getenv)
	require.NoError(t, err)
	ctx := context.Background()
	if dl, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-30*time.Second))
		defer cancel()
	}
	if miss := CheckHost(ctx, OSHost{}, cfg); len(miss) > 0 {
		if cfg.Require {
			t.Fatal(SkipMessage(miss))
		}
		t.Skip(SkipMessage(miss))
	}

	h := &harness{t: t, ctx: ctx, cfg: cfg}
	work := t.TempDir()
	bin := h.rechunkerBin(work)
	if !cfg.Keep {
		t.Cleanup(func() {
			h.runQuiet(BcvkRm(cfg.LibvirtURI, vmName), time.Minute)
			h.runQuiet(PodmanRmi(outRepo+":latest", outRepo+":v1", outRepo+":v2", srcRepo+":v1", srcRepo+":v2"), time.Minute)
		})
	}
	buildArgs := map[string]string{"BASE": cfg.Base, "SMALL_IMAGE": cfg.SmallImage}
	cs := func(ref string) string { return "containers-storage:" + ref }

	// Version 1: build, chunk, boot.
	h.step("build and chunk v1 from %s", cfg.Base)
	cf1 := filepath.Join(work, "Containerfile.v1")
	require.NoError(t, os.WriteFile(cf1, []byte(Containerfile(1)), 0o644))
	h.run(PodmanBuild(srcRepo+":v1", cf1, work, buildArgs), 40*time.Minute)
	h.run(RechunkerBuild(bin, BuildSpec{From: cs(srcRepo + ":v1"), Output: cs(outRepo + ":v1")}), 20*time.Minute)
	h.run(PodmanTag(outRepo+":v1", outRepo+":latest"), time.Minute)
	m1 := h.manifest(cs(outRepo + ":v1"))
	t.Logf("v1 manifest %s, %d layers", m1.Digest, len(m1.Layers))

	h.step("boot v1 in a libvirt VM")
	h.run(BcvkLibvirtRun(VMSpec{Name: vmName, Image: outRepo + ":latest", Filesystem: cfg.Filesystem,
		Memory: cfg.Memory, CPUs: 2, DiskSize: "20G", LibvirtURI: cfg.LibvirtURI}), 30*time.Minute)
	st := h.checkBooted(m1.Digest, "v1")
	require.NotNil(t, st.Spec.Image, "bootc status spec.image")
	assert.Equal(t, "containers-storage", st.Spec.Image.Transport, "bcvk --update-from-host makes bootc track the host's storage")
	h.guest(time.Minute, "test", "-s", ImageCacheDir+"/mapping.txt")
	assert.False(t, h.guestTrue(GuestFileExists(SSHDropIn)), "v1 must not have %s", SSHDropIn)

	// Version 2: one added file, chunked against v1.
	h.step("build and chunk v2 with --previous-build")
	cf2 := filepath.Join(work, "Containerfile.v2")
	require.NoError(t, os.WriteFile(cf2, []byte(Containerfile(2)), 0o644))
	h.run(PodmanBuild(srcRepo+":v2", cf2, work, buildArgs), 40*time.Minute)
	h.run(RechunkerBuild(bin, BuildSpec{From: cs(srcRepo + ":v2"), Output: cs(outRepo + ":v2"), PreviousBuild: cs(outRepo + ":v1")}), 20*time.Minute)
	h.run(PodmanTag(outRepo+":v2", outRepo+":latest"), time.Minute)
	m2 := h.manifest(cs(outRepo + ":v2"))
	t.Logf("v2 manifest %s, %d layers", m2.Digest, len(m2.Layers))

	// What the upgrade should download, as rechunker predicts it for the
	// guest's bootc (diff_id reuse only from bootc 1.15.0), checked against
	// the plain manifest comparison by blob digest.
	bootcVer, ok := ParseVersion(h.guest(time.Minute, GuestBootcVersion...))
	require.True(t, ok, "guest bootc --version")
	diffIDReuse := VersionAtLeast(bootcVer, BootcDiffIDReuse)
	t.Logf("guest bootc %s, reuses layers by diff_id: %v", bootcVer, diffIDReuse)
	byDigest := Digests(NewLayers(m1, m2))
	diffFetched := func(noDiffID bool) []string {
		d, err := ParseLayerDiff(h.run(RechunkerDiff(bin, cs(outRepo+":v1"), cs(outRepo+":v2"), noDiffID), 5*time.Minute))
		require.NoError(t, err)
		return Digests(d.Fetched)
	}
	fetchedOld, fetchedNew := diffFetched(true), diffFetched(false) // bootc < 1.15.0, >= 1.15.0
	assert.Equal(t, byDigest, fetchedOld, "rechunker diff --json --no-diffid and the manifests disagree on the layers to fetch")
	// Unchanged chunks must be bit-identical, or bootc before 1.15.0
	// downloads them again: no layer may be new by digest but not by diff_id.
	assert.Empty(t, Subtract(fetchedOld, fetchedNew), "layers with unchanged content (same diff_id) but a new blob digest")
	want := fetchedOld
	if diffIDReuse {
		want = fetchedNew
	}
	require.NotEmpty(t, want, "v2 differs from v1, so at least its commit layer is new")
	assert.Less(t, len(want), len(m2.Layers), "chunking must let the upgrade reuse layers")
	t.Logf("upgrade should fetch %d of %d layers: %v", len(want), len(m2.Layers), want)

	h.step("bootc upgrade in the VM")
	before := h.blobRefs()
	assert.Subset(t, before, Digests(m1.Layers), "the install stored v1's layers under their blob digests")
	upOut := h.guest(15*time.Minute, GuestUpgrade(progressPath)...)
	t.Logf("bootc upgrade output:\n%s", upOut)
	up, err := ParseUpgradeOutput(string(upOut))
	require.NoError(t, err)
	progressRaw := h.guest(time.Minute, GuestCat(progressPath)...)
	t.Logf("bootc --progress-fd output:\n%s", progressRaw)
	prog, err := ParseProgress(bytes.NewReader(progressRaw))
	require.NoError(t, err)
	after := h.blobRefs()

	assert.Equal(t, m2.Digest, up.QueuedDigest, "queued image")
	assert.True(t, up.HaveLayerCounts, "bootc printed its layer counts")
	assert.Equal(t, len(want), up.LayersNeeded, "bootc's 'layers needed'")
	assert.Equal(t, len(m2.Layers)-len(want), up.LayersPresent, "bootc's 'layers already present'")
	// Every layer new by digest gets a blob ref: downloaded, or (bootc >=
	// 1.15.0) aliased to the stored layer with the same diff_id.
	assert.Equal(t, byDigest, Subtract(after, before), "blob refs bootc added during the upgrade")
	var gotShort, wantShort []string
	for _, l := range prog.Fetched {
		gotShort = append(gotShort, l.ShortID)
	}
	for _, d := range want {
		wantShort = append(wantShort, ShortID(d))
	}
	assert.ElementsMatch(t, wantShort, gotShort, "layers bootc reported fetching (--progress-fd)")
	st = h.status()
	require.NotNil(t, st.Status.Staged, "an upgrade is staged")
	assert.Equal(t, m2.Digest, st.Status.Staged.Image.ImageDigest, "staged digest")

	h.step("reboot into v2")
	h.reboot()
	st = h.checkBooted(m2.Digest, "v2")
	assert.True(t, h.guestTrue(GuestFileExists(SSHDropIn)), "v2 adds %s", SSHDropIn)
	require.NotNil(t, st.Status.Rollback, "v1 remains as the rollback deployment")
	assert.Equal(t, m1.Digest, st.Status.Rollback.Image.ImageDigest, "rollback digest")

	h.step("bootc rollback and reboot into v1")
	h.guest(5*time.Minute, GuestRollback...)
	h.reboot()
	h.checkBooted(m1.Digest, "v1")
	assert.False(t, h.guestTrue(GuestFileExists(SSHDropIn)), "rollback removes %s", SSHDropIn)
}

// harness runs host and guest commands for one test, logging each.
type harness struct {
	t   *testing.T
	ctx context.Context
	cfg Config
}

func (h *harness) step(format string, args ...any) {
	h.t.Helper()
	h.t.Logf("==> "+format, args...)
}

// run runs a host command, streaming its stderr into the test log, and
// fails the test if it fails.
func (h *harness) run(c Cmd, timeout time.Duration) []byte {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.ctx, timeout)
	defer cancel()
	h.t.Logf("$ %s", c)
	lw := &lineLog{t: h.t}
	res, err := Run(ctx, c, lw)
	lw.Flush()
	require.NoError(h.t, err)
	return res.Stdout
}

// runQuiet is for cleanup: failures are logged, not fatal.
func (h *harness) runQuiet(c Cmd, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if _, err := Run(ctx, c, nil); err != nil {
		h.t.Logf("cleanup: %v", err)
	}
}

func (h *harness) guest(timeout time.Duration, argv ...string) []byte {
	h.t.Helper()
	return h.run(BcvkSSH(h.cfg.LibvirtURI, vmName, 30, argv...), timeout)
}

// guestTrue runs a guest test command and reports whether it exited 0.
func (h *harness) guestTrue(argv []string) bool {
	ctx, cancel := context.WithTimeout(h.ctx, time.Minute)
	defer cancel()
	_, err := Run(ctx, BcvkSSH(h.cfg.LibvirtURI, vmName, 30, argv...), nil)
	return err == nil
}

func (h *harness) manifest(ref string) Manifest {
	h.t.Helper()
	m, err := ParseManifest(h.run(SkopeoInspectRaw(ref), time.Minute))
	require.NoError(h.t, err, ref)
	return m
}

func (h *harness) status() *HostStatus {
	h.t.Helper()
	st, err := ParseHostStatus(h.guest(time.Minute, GuestBootcStatus...))
	require.NoError(h.t, err)
	return st
}

func (h *harness) blobRefs() []string {
	h.t.Helper()
	refs, err := ParseBlobRefs(h.guest(time.Minute, GuestBlobRefs...))
	require.NoError(h.t, err)
	return refs
}

// checkBooted asserts the VM came up and booted the image with this digest.
func (h *harness) checkBooted(digest, version string) *HostStatus {
	h.t.Helper()
	state, ok := ParseSystemState(h.guest(10*time.Minute, GuestSystemState...))
	assert.True(h.t, ok, "systemctl is-system-running: %q", state)
	st := h.status()
	booted, err := st.Booted()
	require.NoError(h.t, err)
	require.Equal(h.t, digest, booted.ImageDigest, "booted image digest")
	assert.Equal(h.t, version, booted.VersionString(), "booted image version")
	return st
}

// reboot restarts the guest and waits until it answers with a new boot id.
func (h *harness) reboot() {
	h.t.Helper()
	old := strings.TrimSpace(string(h.guest(time.Minute, GuestBootID...)))
	ctx, cancel := context.WithTimeout(h.ctx, time.Minute)
	_, _ = Run(ctx, BcvkSSH(h.cfg.LibvirtURI, vmName, 30, GuestReboot...), nil)
	cancel()
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		time.Sleep(5 * time.Second)
		ctx, cancel := context.WithTimeout(h.ctx, 45*time.Second)
		res, err := Run(ctx, BcvkSSH(h.cfg.LibvirtURI, vmName, 10, GuestBootID...), nil)
		cancel()
		if err == nil {
			if id := strings.TrimSpace(string(res.Stdout)); id != "" && id != old {
				h.t.Logf("guest rebooted (boot id %s)", id)
				return
			}
		}
	}
	h.t.Fatalf("guest did not come back from reboot within 10 minutes (old boot id %s)", old)
}

// rechunkerBin returns RECHUNKER_BIN or builds ./cmd/rechunker into dir.
func (h *harness) rechunkerBin(dir string) string {
	h.t.Helper()
	if h.cfg.Bin != "" {
		return h.cfg.Bin
	}
	root, err := filepath.Abs("..")
	require.NoError(h.t, err)
	bin := filepath.Join(dir, "rechunker")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	require.NoError(h.t, BuildRechunker(ctx, root, bin))
	return bin
}

// lineLog copies a command's stderr into the test log line by line.
type lineLog struct {
	t   *testing.T
	mu  sync.Mutex
	buf []byte
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexAny(l.buf, "\r\n")
		if i < 0 {
			break
		}
		if line := strings.TrimSpace(string(l.buf[:i])); line != "" {
			l.t.Log("  " + line)
		}
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}

func (l *lineLog) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if line := strings.TrimSpace(string(l.buf)); line != "" {
		l.t.Log("  " + line)
	}
	l.buf = nil
}
