package vmtests

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Host is what prerequisite detection asks of the machine. OSHost is the real
// one; tests describe other machines with their own.
type Host interface {
	LookPath(name string) (string, error)
	// Output runs a program and returns its stdout; the error includes stderr.
	Output(ctx context.Context, name string, args ...string) ([]byte, error)
	// OpenRW opens path read-write and closes it again (device access check).
	OpenRW(path string) error
	Exists(path string) bool
	FreeBytes(path string) (uint64, error)
}

// Missing is one unmet prerequisite: what, and why in a few words.
type Missing struct {
	What   string
	Reason string
}

// checkTimeout bounds each probe command so a hung libvirt cannot hang the
// test binary before it even decides to skip.
const checkTimeout = 20 * time.Second

// CheckHost returns every unmet prerequisite of the VM suite, in a fixed
// order; nil means the suite can run.
func CheckHost(ctx context.Context, h Host, c Config) []Missing {
	var miss []Missing
	add := func(what, reason string) { miss = append(miss, Missing{What: what, Reason: oneLine(reason)}) }
	probe := func(name string, args ...string) ([]byte, error) {
		ctx, cancel := context.WithTimeout(ctx, checkTimeout)
		defer cancel()
		return h.Output(ctx, name, args...)
	}

	for _, tool := range []string{"podman", "skopeo"} {
		if _, err := h.LookPath(tool); err != nil {
			add(tool, "not in PATH")
		}
	}

	if _, err := h.LookPath("bcvk"); err != nil {
		add("bcvk", "not in PATH; need >= "+MinBcvk)
	} else if out, err := probe("bcvk", "--version"); err != nil {
		add("bcvk", "bcvk --version failed: "+err.Error())
	} else if v, ok := ParseVersion(out); !ok {
		add("bcvk", fmt.Sprintf("cannot read version from %q", strings.TrimSpace(string(out))))
	} else if !VersionAtLeast(v, MinBcvk) {
		add("bcvk", fmt.Sprintf("version %s, need >= %s", v, MinBcvk))
	}

	if _, err := h.LookPath("virsh"); err != nil {
		add("libvirt", "virsh not in PATH")
	} else {
		args := []string{"uri"}
		if c.LibvirtURI != "" {
			args = []string{"--connect", c.LibvirtURI, "uri"}
		}
		if _, err := probe("virsh", args...); err != nil {
			add("libvirt", "virsh "+strings.Join(args, " ")+": "+err.Error())
		}
	}

	if !h.Exists("/dev/kvm") {
		add("KVM", "/dev/kvm does not exist")
	} else if err := h.OpenRW("/dev/kvm"); err != nil {
		add("KVM", "/dev/kvm not usable: "+err.Error())
	}

	if !anyFound(h, qemuCandidates()) {
		add("qemu", "no "+strings.Join(qemuCandidates(), ", "))
	}
	if !anyFound(h, virtiofsdCandidates) {
		add("virtiofsd", "no "+strings.Join(virtiofsdCandidates, ", "))
	}

	if c.MinFreeGiB > 0 {
		for _, p := range spacePaths(h) {
			free, err := h.FreeBytes(p)
			if err != nil {
				add("disk space", p+": "+err.Error())
				continue
			}
			if free < c.MinFreeGiB<<30 {
				add("disk space", fmt.Sprintf("%s has %d GiB free, need %d", p, free>>30, c.MinFreeGiB))
			}
		}
	}
	return miss
}

// SkipMessage is the one line the suite prints when it cannot run.
func SkipMessage(miss []Missing) string {
	parts := make([]string, 0, len(miss))
	for _, m := range miss {
		parts = append(parts, m.What+" ("+m.Reason+")")
	}
	return "vm-tests need a host with podman, bcvk, libvirt and KVM; missing: " + strings.Join(parts, "; ")
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}

var reVersion = regexp.MustCompile(`\b(\d+)\.(\d+)\.(\d+)\b`)

// ParseVersion reads the first x.y.z in a --version line such as
// "bcvk 0.18.0" or "bootc 1.4.0" (clap's format).
func ParseVersion(out []byte) (string, bool) {
	m := reVersion.FindString(string(out))
	return m, m != ""
}

// VersionAtLeast compares dotted numeric versions ("0.18.0" >= "0.7.0").
func VersionAtLeast(v, min string) bool {
	a, b := strings.Split(v, "."), strings.Split(min, ".")
	for i := 0; i < len(a) || i < len(b); i++ {
		x, y := 0, 0
		if i < len(a) {
			x, _ = strconv.Atoi(a[i])
		}
		if i < len(b) {
			y, _ = strconv.Atoi(b[i])
		}
		if x != y {
			return x > y
		}
	}
	return true
}

// qemuCandidates are the QEMU system emulators bcvk may run (Fedora ships
// qemu-kvm in /usr/libexec; Debian/Ubuntu ship qemu-system-<arch>).
func qemuCandidates() []string {
	arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64", "s390x": "s390x", "ppc64le": "ppc64"}[runtime.GOARCH]
	c := []string{"qemu-kvm", "/usr/libexec/qemu-kvm"}
	if arch != "" {
		c = append(c, "qemu-system-"+arch)
	}
	return c
}

var virtiofsdCandidates = []string{"virtiofsd", "/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd"}

func anyFound(h Host, names []string) bool {
	for _, n := range names {
		if strings.HasPrefix(n, "/") {
			if h.Exists(n) {
				return true
			}
		} else if _, err := h.LookPath(n); err == nil {
			return true
		}
	}
	return false
}

// spacePaths are where the suite writes big files: images in podman's
// storage (under /var for root, home for rootless), the VM disks in libvirt's
// pool, and the temporary directory.
func spacePaths(h Host) []string {
	paths := []string{os.TempDir()}
	for _, p := range []string{"/var/lib/containers", "/var/lib/libvirt/images"} {
		if h.Exists(p) {
			paths = append(paths, p)
		}
	}
	return paths
}

// OSHost is the machine the test runs on.
type OSHost struct{}

func (OSHost) LookPath(name string) (string, error) { return lookPath(name) }

func (OSHost) Output(ctx context.Context, name string, args ...string) ([]byte, error) {
	res, err := Run(ctx, Cmd{Name: name, Args: args}, nil)
	return res.Stdout, err
}

func (OSHost) OpenRW(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

func (OSHost) Exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func (OSHost) FreeBytes(path string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}
