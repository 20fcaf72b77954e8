package vmtests

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseLoaderEntry(t *testing.T) {
	// As ostree 2022.7's `admin deploy` writes them.
	entry := `title Debian GNU/Linux 12 (bookworm) (ostree:debian:0)
version 2
options root=/dev/vda rw console=ttyS0,115200 ostree=/ostree/boot.1/debian/3b1c/0
linux /ostree/debian-3b1c/vmlinuz-6.1.0-50-amd64
initrd /ostree/debian-3b1c/initramfs-6.1.0-50-amd64.img
`
	tests := []struct {
		name, text string
		want       LoaderEntry
		err        string
	}{
		{name: "ostree entry", text: entry, want: LoaderEntry{File: "e.conf", Title: "Debian GNU/Linux 12 (bookworm) (ostree:debian:0)",
			Version: 2, Linux: "/ostree/debian-3b1c/vmlinuz-6.1.0-50-amd64", Initrd: "/ostree/debian-3b1c/initramfs-6.1.0-50-amd64.img",
			Options: "root=/dev/vda rw console=ttyS0,115200 ostree=/ostree/boot.1/debian/3b1c/0"}},
		{name: "no kernel", text: "title x\nversion 1\noptions a\n", err: "no linux or initrd line"},
		{name: "bad version", text: "version two\nlinux /a\ninitrd /b\n", err: `version "two"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseLoaderEntry("e.conf", tc.text)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestDefaultEntry(t *testing.T) {
	_, err := DefaultEntry(nil)
	require.ErrorContains(t, err, "no boot loader entries")
	e, err := DefaultEntry([]LoaderEntry{{File: "ostree-1-debian.conf", Version: 1}, {File: "ostree-2-debian.conf", Version: 2}})
	require.NoError(t, err)
	assert.Equal(t, "ostree-2-debian.conf", e.File, "ostree gives the default deployment the highest version")
}

func TestParseReport(t *testing.T) {
	text := "noise\r\nRECHUNKER begin\r\nRECHUNKER state degraded\nRECHUNKER failed-unit foo.service\n" +
		"RECHUNKER ostree-booted yes\nRECHUNKER deployment booted abc\nRECHUNKER deployment other def\n" +
		"RECHUNKER usr-readonly yes\nRECHUNKER task file /etc/a 0123\nRECHUNKER task absent /etc/b\n" +
		"RECHUNKER task upgraded\nRECHUNKER task-exit 0\nRECHUNKER end\n"
	r := ParseReport(text)
	assert.True(t, r.Begun && r.Ended)
	assert.Equal(t, "degraded", r.State)
	assert.Equal(t, []string{"foo.service"}, r.FailedUnits)
	assert.True(t, r.OstreeBooted)
	assert.True(t, r.UsrReadOnly)
	assert.Equal(t, "abc", r.BootedCommit)
	assert.Equal(t, []string{"def"}, r.OtherCommits)
	assert.Equal(t, map[string]string{"/etc/a": "0123"}, r.FileChecksums)
	assert.True(t, r.Absent["/etc/b"])
	assert.Equal(t, 0, r.TaskExit)
	assert.Equal(t, []string{"file /etc/a 0123", "absent /etc/b", "upgraded"}, r.Task)

	empty := ParseReport("")
	assert.False(t, empty.Ended)
	assert.Equal(t, -1, empty.TaskExit, "no task ran")
}

func TestConsoleFailure(t *testing.T) {
	tests := []struct{ name, console, want string }{
		{"clean boot", "[    1.0] Run /init as init process\n[  OK  ] Reached target Multi-User System.\n", ""},
		{"panic", "[    2.1] VFS: Unable to mount root fs\n[    2.1] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n",
			"[    2.1] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)"},
		{"prepare-root", "ostree-prepare-root: failed to MS_MOVE '/sysroot' to 'sysroot': No such file or directory\n",
			"ostree-prepare-root: failed to MS_MOVE '/sysroot' to 'sysroot': No such file or directory"},
		{"emergency", "You are in emergency mode. After logging in, type \"journalctl -xb\"\n", `You are in emergency mode. After logging in, type "journalctl -xb"`},
		{"prepare-root success is fine", "ostree-prepare-root: Resolved OSTree target to: /sysroot/ostree/deploy/x\n", ""},
		{"unit stopped normally", "[   14.2] systemd[1]: ostree-prepare-root.service: Deactivated successfully.\n", ""},
		{"coloured unit failure", "[\x1b[0;1;31mFAILED\x1b[0m] Failed to start \x1b[0;1;39mostree-prepare-root.service\x1b[0m - OSTree Prepare OS/.\n",
			"[FAILED] Failed to start ostree-prepare-root.service - OSTree Prepare OS/."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, ConsoleFailure(tc.console))
		})
	}
}

// fakeQEMU writes a script that plays a guest: it finds its -serial file:
// arguments and writes console and report text there.
func fakeQEMU(t *testing.T, console, report string, sleep int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "qemu")
	script := `#!/bin/bash
files=()
while (($#)); do
	if [[ $1 == -serial ]]; then files+=("${2#file:}"); shift; fi
	shift
done
printf '%s' "$CONSOLE" >"${files[0]}"
printf '%s' "$REPORT" >"${files[1]}"
sleep "$SLEEP"
`
	require.NoError(t, os.WriteFile(p, []byte(script), 0o755))
	t.Setenv("CONSOLE", console)
	t.Setenv("REPORT", report)
	t.Setenv("SLEEP", map[bool]string{true: "30", false: "0"}[sleep > 0])
	return p
}

func TestBootStopsEarlyAndKeepsTheConsole(t *testing.T) {
	tests := []struct {
		name, console, report string
		sleep                 int
		timeout               time.Duration
		err                   string
	}{
		{name: "report ends", console: "booting\n", report: "RECHUNKER begin\nRECHUNKER state running\nRECHUNKER end\n", timeout: 20 * time.Second},
		{name: "kernel panic stops the boot at once", console: "line a\nKernel panic - not syncing: Attempted to kill init!\n", sleep: 30,
			timeout: 20 * time.Second, err: "console shows: Kernel panic - not syncing: Attempted to kill init!"},
		{name: "emergency mode", console: "ostree-prepare-root: failed to MS_MOVE '/sysroot'\n", sleep: 30,
			timeout: 20 * time.Second, err: "failed to MS_MOVE"},
		{name: "hang", console: "[  OK  ] Started something\n", sleep: 30, timeout: 2 * time.Second, err: "no report after 2s"},
		{name: "powered off without a report", console: "[  OK  ] Reached target Power-Off.\n", timeout: 20 * time.Second,
			err: "qemu exited (<nil>) before the report ended"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			qemu := fakeQEMU(t, tc.console, tc.report, tc.sleep)
			start := time.Now()
			r, _, err := Boot(context.Background(), VM{QEMU: qemu, Accel: "tcg", Memory: "64", LogDir: dir, Timeout: tc.timeout})
			if tc.err == "" {
				require.NoError(t, err)
				assert.Equal(t, "running", r.State)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.err)
			assert.Contains(t, err.Error(), filepath.Join(dir, "console.log"), "names the full console log")
			assert.Contains(t, err.Error(), "last console lines:")
			assert.Less(t, time.Since(start), 15*time.Second, "a failure on the console ends the boot early")
		})
	}
}
