package vmtests

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCommandLines(t *testing.T) {
	tests := []struct {
		name string
		cmd  Cmd
		want []string
	}{
		{
			name: "podman build",
			cmd:  PodmanBuild("localhost/rechunker-vmtest-src:v1", "/w/Containerfile.v1", "/w", map[string]string{"SMALL_IMAGE": "quay.io/libpod/busybox:latest", "BASE": "quay.io/fedora/fedora-bootc:42"}),
			want: []string{"podman", "build", "--pull=missing", "-t", "localhost/rechunker-vmtest-src:v1", "-f", "/w/Containerfile.v1",
				"--build-arg", "BASE=quay.io/fedora/fedora-bootc:42", "--build-arg", "SMALL_IMAGE=quay.io/libpod/busybox:latest", "/w"},
		},
		{
			name: "rechunker build first",
			cmd:  RechunkerBuild("/bin/rechunker", BuildSpec{From: "containers-storage:localhost/src:v1", Output: "containers-storage:localhost/out:v1"}),
			want: []string{"/bin/rechunker", "build", "--bootc", "--format-version=2", "--from", "containers-storage:localhost/src:v1", "--output", "containers-storage:localhost/out:v1"},
		},
		{
			name: "rechunker build with previous",
			cmd:  RechunkerBuild("rechunker", BuildSpec{From: "containers-storage:localhost/src:v2", Output: "containers-storage:localhost/out:v2", PreviousBuild: "containers-storage:localhost/out:v1", FormatVersion: 1}),
			want: []string{"rechunker", "build", "--bootc", "--format-version=1", "--from", "containers-storage:localhost/src:v2", "--output", "containers-storage:localhost/out:v2", "--previous-build", "containers-storage:localhost/out:v1"},
		},
		{
			name: "rechunker diff",
			cmd:  RechunkerDiff("rechunker", "containers-storage:a:v1", "containers-storage:a:v2", false),
			want: []string{"rechunker", "diff", "--json", "containers-storage:a:v1", "containers-storage:a:v2"},
		},
		{
			name: "rechunker diff for bootc before 1.15",
			cmd:  RechunkerDiff("rechunker", "oci:/x:v1", "oci:/x:v2", true),
			want: []string{"rechunker", "diff", "--json", "--no-diffid", "oci:/x:v1", "oci:/x:v2"},
		},
		{
			name: "skopeo inspect",
			cmd:  SkopeoInspectRaw("containers-storage:localhost/a:v1"),
			want: []string{"skopeo", "inspect", "--raw", "containers-storage:localhost/a:v1"},
		},
		{
			name: "bcvk libvirt run",
			cmd: BcvkLibvirtRun(VMSpec{Name: "rechunker-vmtest", Image: "localhost/rechunker-vmtest:latest", Filesystem: "ext4",
				Memory: "4G", CPUs: 2, DiskSize: "20G", Kargs: []string{"console=hvc0"}}),
			want: []string{"bcvk", "libvirt", "run", "--name", "rechunker-vmtest", "--replace", "--filesystem", "ext4", "--memory", "4G",
				"--cpus", "2", "--disk-size", "20G", "--karg", "console=hvc0", "--update-from-host", "--ssh-wait", "localhost/rechunker-vmtest:latest"},
		},
		{
			name: "bcvk libvirt run minimal with URI",
			cmd:  BcvkLibvirtRun(VMSpec{Name: "vm", Image: "localhost/i:latest", LibvirtURI: "qemu:///system"}),
			want: []string{"bcvk", "libvirt", "--connect", "qemu:///system", "run", "--name", "vm", "--replace", "--update-from-host", "--ssh-wait", "localhost/i:latest"},
		},
		{
			name: "bcvk ssh",
			cmd:  BcvkSSH("", "vm", 30, GuestBootcStatus...),
			want: []string{"bcvk", "libvirt", "ssh", "--timeout", "30", "vm", "--", "bootc", "status", "--json"},
		},
		{
			name: "bcvk rm",
			cmd:  BcvkRm("qemu:///session", "vm"),
			want: []string{"bcvk", "libvirt", "--connect", "qemu:///session", "rm", "--force", "vm"},
		},
		{
			name: "podman rmi",
			cmd:  PodmanRmi("a:v1", "a:v2"),
			want: []string{"podman", "rmi", "--ignore", "a:v1", "a:v2"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, append([]string{tc.cmd.Name}, tc.cmd.Args...))
		})
	}
}

func TestCmdString(t *testing.T) {
	c := BcvkSSH("", "vm", 0, GuestUpgrade("/run/p.jsonl")...)
	s := c.String()
	assert.True(t, strings.HasPrefix(s, "bcvk libvirt ssh vm -- bash -c 'set -o pipefail;"), s)

	// The rendering is valid shell: sh re-splits it into the same argv.
	rendered := Cmd{Name: "x", Args: []string{"it's", "a b", "", "plain", "--k=v"}}.String()
	assert.Equal(t, `x 'it'\''s' 'a b' '' plain --k=v`, rendered)
	out, err := exec.Command("sh", "-c", "set -- "+rendered+`; shift; for a in "$@"; do printf '%s|' "$a"; done`).Output()
	require.NoError(t, err)
	assert.Equal(t, "it's|a b||plain|--k=v|", string(out))
}

// TestGuestUpgradePlumbing runs the guest upgrade script with real bash
// against a stand-in bootc that checks what the real one requires: the
// --progress-fd descriptor must be a pipe. It then checks that human output
// and JSON lines end up apart and that bootc's exit status survives the pipe.
func TestGuestUpgradePlumbing(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not installed")
	}
	dir := t.TempDir()
	fake := `#!/bin/sh
[ "$1" = upgrade ] && [ "$2" = --progress-fd ] && [ "$3" = 3 ] || { echo "bad args: $*" >&2; exit 64; }
[ -p /dev/fd/3 ] || { echo "fd 3 is not a pipe" >&2; exit 65; }
echo '{"type":"Start","version":"0.1.0"}' >&3
echo 'layers already present: 3; layers needed: 1 (1.0 kB)'
echo 'Queued for next boot: localhost/x:latest'
exit "${FAKE_EXIT:-0}"
`
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bootc"), []byte(fake), 0o755))
	progress := filepath.Join(dir, "progress dir", "p.jsonl")
	require.NoError(t, os.MkdirAll(filepath.Dir(progress), 0o755))

	argv := GuestUpgrade(progress)
	for _, exit := range []string{"0", "3"} {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"), "FAKE_EXIT="+exit)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if exit == "0" {
			require.NoError(t, err, stderr.String())
		} else {
			var ee *exec.ExitError
			require.ErrorAs(t, err, &ee, stderr.String())
			assert.Equal(t, 3, ee.ExitCode(), "bootc's exit status must survive the pipeline")
		}
		u, perr := ParseUpgradeOutput(string(out))
		require.NoError(t, perr)
		assert.Equal(t, 1, u.LayersNeeded)
		assert.NotContains(t, string(out), `"type"`, "JSON must not reach stdout")
		p, err := os.ReadFile(progress)
		require.NoError(t, err)
		assert.Equal(t, "{\"type\":\"Start\",\"version\":\"0.1.0\"}\n", string(p))
	}
}

func TestRunReportsStderr(t *testing.T) {
	res, err := Run(context.Background(), Cmd{Name: "sh", Args: []string{"-c", "echo out; echo first >&2; echo last >&2; exit 3"}}, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "exit status 3")
	assert.Contains(t, err.Error(), "first | last")
	assert.Equal(t, "out\n", string(res.Stdout))

	var log strings.Builder
	res, err = Run(context.Background(), Cmd{Name: "sh", Args: []string{"-c", "echo ok; echo note >&2"}}, &log)
	require.NoError(t, err)
	assert.Equal(t, "ok\n", string(res.Stdout))
	assert.Equal(t, "note\n", log.String())
}
