package vmtests

// The QEMU flow: these machines cannot run bcvk/libvirt (their /dev/kvm is a
// paging-based variant on which ordinary guests hang), but QEMU's software
// emulation (TCG) boots a small Debian guest in about a minute. A guest is booted
// straight from its deployment's kernel and initramfs with the options of its
// Boot Loader Specification entry, as a bootloader would; a unit baked into the
// image (guest/rechunker-report) writes "RECHUNKER key value" lines to the second
// serial port and powers off, so no login or network is needed.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// LoaderEntry is a Boot Loader Specification entry as ostree writes it.
type LoaderEntry struct {
	File    string
	Title   string
	Version int
	Linux   string // path relative to /boot
	Initrd  string
	Options string
}

// ParseLoaderEntry reads one loader entry file's text.
func ParseLoaderEntry(name, text string) (LoaderEntry, error) {
	e := LoaderEntry{File: name}
	for _, line := range strings.Split(text, "\n") {
		key, val, _ := strings.Cut(strings.TrimSpace(line), " ")
		val = strings.TrimSpace(val)
		switch key {
		case "title":
			e.Title = val
		case "version":
			v, err := strconv.Atoi(val)
			if err != nil {
				return e, fmt.Errorf("loader entry %s: version %q is not a number", name, val)
			}
			e.Version = v
		case "linux":
			e.Linux = val
		case "initrd":
			e.Initrd = val
		case "options":
			e.Options = val
		}
	}
	if e.Linux == "" || e.Initrd == "" {
		return e, fmt.Errorf("loader entry %s has no linux or initrd line (is the kernel missing from the image?)", name)
	}
	return e, nil
}

// DefaultEntry returns the entry a BLS bootloader boots by default: ostree gives
// the default deployment the highest version.
func DefaultEntry(entries []LoaderEntry) (LoaderEntry, error) {
	if len(entries) == 0 {
		return LoaderEntry{}, errors.New("no boot loader entries: ostree admin deploy wrote none")
	}
	sorted := append([]LoaderEntry(nil), entries...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Version > sorted[j].Version })
	return sorted[0], nil
}

// Report is what the guest's report unit said during one boot.
type Report struct {
	Begun, Ended  bool
	State         string // systemctl is-system-running
	FailedUnits   []string
	OstreeBooted  bool
	BootedCommit  string
	OtherCommits  []string // the other deployments, in boot order
	UsrReadOnly   bool
	Cmdline       string
	Task          []string // lines the task script printed
	TaskExit      int      // -1 when no task ran
	FileChecksums map[string]string
	Absent        map[string]bool
}

// ParseReport reads the report port's text. The task script reports files as
// "file PATH SHA256" or "absent PATH".
func ParseReport(text string) Report {
	r := Report{TaskExit: -1, FileChecksums: map[string]string{}, Absent: map[string]bool{}}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, "\r")
		rest, ok := strings.CutPrefix(line, "RECHUNKER ")
		if !ok {
			continue
		}
		key, val, _ := strings.Cut(rest, " ")
		switch key {
		case "begin":
			r.Begun = true
		case "end":
			r.Ended = true
		case "state":
			r.State = val
		case "failed-unit":
			r.FailedUnits = append(r.FailedUnits, val)
		case "ostree-booted":
			r.OstreeBooted = val == "yes"
		case "deployment":
			kind, csum, _ := strings.Cut(val, " ")
			if kind == "booted" {
				r.BootedCommit = csum
			} else {
				r.OtherCommits = append(r.OtherCommits, csum)
			}
		case "usr-readonly":
			r.UsrReadOnly = val == "yes"
		case "cmdline":
			r.Cmdline = val
		case "task-exit":
			r.TaskExit, _ = strconv.Atoi(val)
		case "task":
			r.Task = append(r.Task, val)
			f := strings.Fields(val)
			switch {
			case len(f) == 3 && f[0] == "file":
				r.FileChecksums[f[1]] = f[2]
			case len(f) == 2 && f[0] == "absent":
				r.Absent[f[1]] = true
			}
		}
	}
	return r
}

// consoleFailures are console lines after which a boot cannot reach the report
// unit: waiting for the timeout would only hide the cause.
var consoleFailures = []string{
	"Kernel panic",
	"You are in emergency mode",
	"Entering emergency mode",
	"Failed to start ostree-prepare-root",
	"ostree-prepare-root.service: Failed",
	"ostree-prepare-root: ",
	"Warning: /dev/root does not exist",
	"dracut: FATAL",
	"Cannot open access to console, the root account is locked",
}

// ConsoleFailure returns the first line of console output that shows the boot
// failed, or "".
// systemd colours unit names on a console; ansiEscape (upgrade.go) strips that.
func ConsoleFailure(console string) string {
	for _, line := range strings.Split(ansiEscape.ReplaceAllString(console, ""), "\n") {
		for _, pat := range consoleFailures {
			if strings.Contains(line, pat) && !strings.Contains(line, "ostree-prepare-root: Resolved") {
				return strings.TrimSpace(line)
			}
		}
	}
	return ""
}

// VM describes one boot.
type VM struct {
	QEMU    string   // qemu-system-x86_64
	Accel   string   // "kvm" or "tcg"
	Kernel  string   // host path
	Initrd  string   // host path
	Cmdline string   // the loader entry's options
	Disks   []string // raw images: vda (the sysroot), then vdb (the task disk), ...
	Memory  string   // e.g. "1024"
	LogDir  string   // console.log and report.log are kept here
	Timeout time.Duration
}

func (v VM) args() []string {
	a := []string{"-nodefaults", "-no-reboot", "-display", "none", "-monitor", "none",
		"-machine", "q35,accel=" + v.Accel, "-cpu", "max", "-smp", "2", "-m", v.Memory,
		"-kernel", v.Kernel, "-initrd", v.Initrd, "-append", v.Cmdline,
		"-serial", "file:" + filepath.Join(v.LogDir, "console.log"),
		"-serial", "file:" + filepath.Join(v.LogDir, "report.log")}
	for _, d := range v.Disks {
		a = append(a, "-drive", "file="+d+",if=virtio,format=raw,cache=unsafe")
	}
	return a
}

// BootError is a boot that did not reach the end of its report.
type BootError struct {
	Reason  string
	Console string // path of the full console log
	Last    string // its last lines
}

func (e *BootError) Error() string {
	return fmt.Sprintf("boot failed: %s\nfull console log: %s\nlast console lines:\n%s", e.Reason, e.Console, e.Last)
}

// Boot runs the VM until the guest powers off after its report, the console
// shows a failure, or the timeout passes. It returns the parsed report.
func Boot(ctx context.Context, v VM) (Report, time.Duration, error) {
	if err := os.MkdirAll(v.LogDir, 0o755); err != nil {
		return Report{}, 0, err
	}
	consolePath := filepath.Join(v.LogDir, "console.log")
	reportPath := filepath.Join(v.LogDir, "report.log")
	ctx, cancel := context.WithTimeout(ctx, v.Timeout)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, v.QEMU, v.args()...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	// Kill the whole process group, and do not wait for pipes a leftover child
	// may hold open: a boot that is over must not block the suite.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return Report{}, 0, fmt.Errorf("start %s: %w", v.QEMU, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	failure := func(reason string) (Report, time.Duration, error) {
		console, _ := os.ReadFile(consolePath)
		return ParseReport(readString(reportPath)), time.Since(start),
			&BootError{Reason: reason, Console: consolePath, Last: lastLines(string(console), 25)}
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			r := ParseReport(readString(reportPath))
			switch {
			case err == nil && r.Ended:
				return r, time.Since(start), nil
			case ctx.Err() != nil:
				return failure(fmt.Sprintf("no report after %s", v.Timeout))
			default:
				return failure(fmt.Sprintf("qemu exited (%v) before the report ended; qemu said: %s",
					err, strings.TrimSpace(stderr.String())))
			}
		case <-tick.C:
			if line := ConsoleFailure(readString(consolePath)); line != "" {
				cancel()
				<-done
				return failure("console shows: " + line)
			}
		}
	}
}

func readString(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ProbeAccel picks KVM when it really runs guests and TCG otherwise: a kernel
// booted without a root file system must panic (with "VFS:" or "Kernel panic")
// within the probe's time. Some hosts have a /dev/kvm on which guests hang.
func ProbeAccel(ctx context.Context, qemu, kernel, dir string) (accel, why string) {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return "tcg", "no usable /dev/kvm: " + err.Error()
	}
	_ = f.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	log := filepath.Join(dir, "kvm-probe.log")
	cmd := exec.CommandContext(ctx, qemu, "-nodefaults", "-no-reboot", "-display", "none",
		"-monitor", "none", "-machine", "q35,accel=kvm", "-m", "256", "-kernel", kernel,
		"-append", "console=ttyS0 panic=-1", "-serial", "file:"+log)
	_ = cmd.Run()
	out := readString(log)
	if strings.Contains(out, "Kernel panic") || strings.Contains(out, "VFS:") {
		return "kvm", "a KVM probe boot reached the kernel's root-mount panic"
	}
	return "tcg", "a KVM probe boot did not reach the kernel's root-mount panic in 30 s"
}
