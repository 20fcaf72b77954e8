package vmtests

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Cmd is one host command line: a program and its arguments, never a shell
// string, so image names and paths need no quoting.
type Cmd struct {
	Name string
	Args []string
}

// String renders the command for logs, shell-quoting arguments that need it.
func (c Cmd) String() string {
	parts := make([]string, 0, 1+len(c.Args))
	parts = append(parts, shellQuote(c.Name))
	for _, a := range c.Args {
		parts = append(parts, shellQuote(a))
	}
	return strings.Join(parts, " ")
}

// shellQuote quotes s for a POSIX shell when it holds anything but plain
// word characters.
func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	plain := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@,+%", r)) {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// PodmanBuild builds a Containerfile into a local image tag. Build arguments
// are passed in sorted order so the command line is deterministic.
func PodmanBuild(tag, containerfile, contextDir string, buildArgs map[string]string) Cmd {
	args := []string{"build", "--pull=missing", "-t", tag, "-f", containerfile}
	keys := make([]string, 0, len(buildArgs))
	for k := range buildArgs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "--build-arg", k+"="+buildArgs[k])
	}
	return Cmd{Name: "podman", Args: append(args, contextDir)}
}

// PodmanTag points dst at the image src.
func PodmanTag(src, dst string) Cmd {
	return Cmd{Name: "podman", Args: []string{"tag", src, dst}}
}

// PodmanRmi removes local image tags; missing ones are not an error.
func PodmanRmi(images ...string) Cmd {
	return Cmd{Name: "podman", Args: append([]string{"rmi", "--ignore"}, images...)}
}

// BuildSpec is one `rechunker build` of a bootc image.
type BuildSpec struct {
	From          string // transport:ref of the unchunked input, e.g. containers-storage:localhost/x:v1
	Output        string // transport:ref to write
	PreviousBuild string // transport:ref of the previous chunked build, empty for the first
	FormatVersion int    // ostree-ext layer format; 0 means 2
}

// RechunkerBuild chunks an image for bootc.
func RechunkerBuild(bin string, s BuildSpec) Cmd {
	fv := s.FormatVersion
	if fv == 0 {
		fv = 2
	}
	args := []string{"build", "--bootc", "--format-version=" + strconv.Itoa(fv), "--from", s.From, "--output", s.Output}
	if s.PreviousBuild != "" {
		args = append(args, "--previous-build", s.PreviousBuild)
	}
	return Cmd{Name: bin, Args: args}
}

// RechunkerDiff reports as JSON what `bootc upgrade` from one image to the
// other downloads. noDiffID models bootc before 1.15.0, which reuses a stored
// layer only when its compressed blob digest matches.
func RechunkerDiff(bin, from, to string, noDiffID bool) Cmd {
	args := []string{"diff", "--json"}
	if noDiffID {
		args = append(args, "--no-diffid")
	}
	return Cmd{Name: bin, Args: append(args, from, to)}
}

// SkopeoInspectRaw prints an image's manifest exactly as stored; its sha256
// is the manifest digest bootc reports.
func SkopeoInspectRaw(ref string) Cmd {
	return Cmd{Name: "skopeo", Args: []string{"inspect", "--raw", ref}}
}

// VMSpec describes the persistent libvirt VM bcvk creates.
type VMSpec struct {
	Name       string   // libvirt domain name
	Image      string   // image in the host's containers-storage, e.g. localhost/rechunker-vmtest:latest
	Filesystem string   // root filesystem; the generic Fedora bootc images need one chosen
	Memory     string   // e.g. 4G
	CPUs       int      // virtual CPUs
	DiskSize   string   // e.g. 20G
	LibvirtURI string   // optional, e.g. qemu:///system
	Kargs      []string // extra kernel arguments
}

// libvirt returns the `bcvk libvirt [-c URI]` prefix every libvirt verb shares.
func bcvkLibvirt(uri string, verb string) []string {
	args := []string{"libvirt"}
	if uri != "" {
		args = append(args, "--connect", uri)
	}
	return append(args, verb)
}

// BcvkLibvirtRun installs the image to a disk and boots it as a libvirt VM.
// --update-from-host mounts the host's container storage read-only in the
// guest and points bootc at it (transport containers-storage), so a later
// `bootc upgrade` in the guest pulls the new tag straight from the host.
// --ssh-wait returns once SSH answers instead of opening an interactive shell.
func BcvkLibvirtRun(s VMSpec) Cmd {
	args := bcvkLibvirt(s.LibvirtURI, "run")
	args = append(args, "--name", s.Name, "--replace")
	if s.Filesystem != "" {
		args = append(args, "--filesystem", s.Filesystem)
	}
	if s.Memory != "" {
		args = append(args, "--memory", s.Memory)
	}
	if s.CPUs > 0 {
		args = append(args, "--cpus", strconv.Itoa(s.CPUs))
	}
	if s.DiskSize != "" {
		args = append(args, "--disk-size", s.DiskSize)
	}
	for _, k := range s.Kargs {
		args = append(args, "--karg", k)
	}
	args = append(args, "--update-from-host", "--ssh-wait", s.Image)
	return Cmd{Name: "bcvk", Args: args}
}

// BcvkSSH runs argv as root in the guest. bcvk shell-escapes and joins
// several arguments itself; the "--" keeps guest flags such as --json from
// being read as bcvk's own.
func BcvkSSH(uri, name string, timeoutSec int, argv ...string) Cmd {
	args := bcvkLibvirt(uri, "ssh")
	if timeoutSec > 0 {
		args = append(args, "--timeout", strconv.Itoa(timeoutSec))
	}
	args = append(args, name, "--")
	return Cmd{Name: "bcvk", Args: append(args, argv...)}
}

// BcvkRm stops and removes the VM and its disk.
func BcvkRm(uri, name string) Cmd {
	return Cmd{Name: "bcvk", Args: append(bcvkLibvirt(uri, "rm"), "--force", name)}
}

// Guest command lines (argv run through BcvkSSH).
var (
	GuestBootcStatus  = []string{"bootc", "status", "--json"}
	GuestBootcVersion = []string{"bootc", "--version"}
	// systemctl exits non-zero for "degraded"; the state word on stdout is
	// what the test judges, so the exit code is dropped.
	GuestSystemState = []string{"sh", "-c", "systemctl is-system-running --wait; exit 0"}
	GuestBootID      = []string{"cat", "/proc/sys/kernel/random/boot_id"}
	GuestBlobRefs    = []string{"ostree", "refs", "--repo=/sysroot/ostree/repo"}
	GuestRollback    = []string{"bootc", "rollback"}
	// The reboot is detached so the SSH session can end cleanly first.
	GuestReboot = []string{"systemd-run", "--on-active=2", "systemctl", "reboot"}
)

// GuestFileExists reports through its exit status whether path is a regular file.
func GuestFileExists(path string) []string {
	return []string{"test", "-f", path}
}

// GuestUpgrade runs `bootc upgrade` with its human output on stdout and its
// --progress-fd JSON lines saved to progressPath. bootc requires the progress
// descriptor to be a pipe, so fd 3 is the write end of a pipeline into cat;
// pipefail keeps bootc's exit status.
func GuestUpgrade(progressPath string) []string {
	script := fmt.Sprintf("set -o pipefail; exec 4>&1; bootc upgrade --progress-fd 3 3>&1 1>&4 4>&- | cat > %s", shellQuote(progressPath))
	return []string{"bash", "-c", script}
}

// GuestCat prints a guest file.
func GuestCat(path string) []string {
	return []string{"cat", path}
}
