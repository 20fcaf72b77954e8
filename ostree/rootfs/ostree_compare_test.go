package rootfs

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/rechunker-dev/rechunker/ostree"
)

// These tests use the real `ostree` binary as the oracle: the same directory is committed
// by ostree and by Import + Finalize + Commit, and the commit checksums and the full
// `ostree ls -RCX` listings must be identical.

func needOstree(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("ostree"); err != nil {
		t.Skip("ostree binary not found; install the ostree package to compare against it")
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	require.NoError(t, cmd.Run(), "%s %s: %s", name, strings.Join(args, " "), errb.String())
	return out.String()
}

// ostreeCommit commits dir into a fresh bare-user repo and returns the repo and checksum.
func ostreeCommit(t *testing.T, dir, subject string, ts int64, ownerRoot bool) (string, string) {
	t.Helper()
	repo := filepath.Join(t.TempDir(), "repo")
	run(t, "ostree", "--repo="+repo, "init", "--mode=bare-user")
	args := []string{"--repo=" + repo, "commit", "--no-bindings", "--orphan", "--fsync=false",
		fmt.Sprintf("--timestamp=@%d", ts), "--subject=" + subject}
	if ownerRoot {
		args = append(args, "--owner-uid=0", "--owner-gid=0")
	}
	start := time.Now()
	sum := strings.TrimSpace(run(t, "ostree", append(args, dir)...))
	t.Logf("ostree commit: %v", time.Since(start).Round(time.Millisecond))
	return repo, sum
}

// ourCommit imports dir and returns the tree and commit checksum for the same commit.
func ourCommit(t *testing.T, dir, subject string, ts int64) (*ostree.Tree, string) {
	t.Helper()
	s := newStore(t)
	start := time.Now()
	tr, err := Import(context.Background(), dir, s, Options{})
	require.NoError(t, err)
	rt, rm, err := tr.Finalize(s)
	require.NoError(t, err)
	t.Logf("rootfs.Import + Finalize: %v", time.Since(start).Round(time.Millisecond))
	c := ostree.Commit{Subject: subject, Timestamp: uint64(ts), RootTree: rt, RootMeta: rm}
	raw, err := c.Marshal()
	require.NoError(t, err)
	sum, err := s.WriteMetadata(ostree.ObjCommit, raw)
	require.NoError(t, err)
	return tr, sum.String()
}

func compareLs(t *testing.T, repo, rev string, tr *ostree.Tree) {
	t.Helper()
	for _, o := range []struct {
		flag string
		opt  ostree.LsOptions
	}{
		{"-RC", ostree.LsOptions{Recursive: true, Checksums: true}},
		{"-RCX", ostree.LsOptions{Recursive: true, Checksums: true, Xattrs: true}},
	} {
		want := run(t, "ostree", "--repo="+repo, "ls", o.flag, rev)
		var got bytes.Buffer
		require.NoError(t, ostree.FormatLsOptions(&got, tr, "/", o.opt))
		wl, gl := strings.Split(want, "\n"), strings.Split(got.String(), "\n")
		for i := 0; i < len(wl) && i < len(gl); i++ {
			if !assert.Equal(t, wl[i], gl[i], "ls %s line %d", o.flag, i+1) {
				return
			}
		}
		require.Equal(t, len(wl), len(gl), "ls %s line count", o.flag)
	}
}

func xattrsSupported(t *testing.T) bool {
	f := filepath.Join(t.TempDir(), "probe")
	require.NoError(t, os.WriteFile(f, nil, 0o644))
	return unix.Lsetxattr(f, "user.probe", []byte("1"), 0) == nil
}

// buildCompareTree creates a tree that exercises every kind of metadata ostree hashes.
func buildCompareTree(t *testing.T, dir string, owners bool) {
	t.Helper()
	root := os.Getuid() == 0
	must := func(err error) { t.Helper(); require.NoError(t, err) }
	write(t, dir, map[string]string{
		"usr/bin/sudo": "suid", "usr/bin/wall": "sgid", "usr/bin/tool": "#!/bin/sh\n",
		"usr/lib/libx.so.1.2": "elf", "usr/lib/libx.so.1@": "libx.so.1.2", "usr/lib/libx.so@": "/usr/lib/libx.so.1",
		"usr/share/dangling@": "../nowhere", "usr/share/dirlink@": "../lib",
		"usr/share/naïve café ☕.txt": "utf-8 name", "usr/share/sp ace": "", "etc/empty.conf": "",
		"etc/secret": "0600", "var/empty/": "", "var/tmp/": "", "srv/a/b/c/d/": "", "x/xattrs": "many",
		"opt/private/": "",
	})
	big := make([]byte, 3<<20+17)
	_, err := rand.Read(big)
	must(err)
	must(os.WriteFile(filepath.Join(dir, "usr/lib/big.bin"), big, 0o644))
	must(unix.Chmod(dir, 0o755))
	must(unix.Chmod(filepath.Join(dir, "usr/bin/sudo"), 0o4755))
	must(unix.Chmod(filepath.Join(dir, "usr/bin/wall"), 0o2755))
	must(unix.Chmod(filepath.Join(dir, "usr/bin/tool"), 0o775))
	must(unix.Chmod(filepath.Join(dir, "etc/secret"), 0o600))
	must(unix.Chmod(filepath.Join(dir, "var/tmp"), 0o1777))
	must(unix.Chmod(filepath.Join(dir, "opt/private"), 0o2700))
	// Hardlinks: two extra names for a file, and a hardlink to a symlink.
	must(os.Link(filepath.Join(dir, "usr/bin/tool"), filepath.Join(dir, "usr/bin/tool-alias")))
	must(os.Link(filepath.Join(dir, "usr/bin/tool"), filepath.Join(dir, "x/tool-copy")))
	must(os.Link(filepath.Join(dir, "usr/lib/libx.so.1"), filepath.Join(dir, "x/symlink-hardlink")))
	// xattrs: several on one file (unsorted when set), one on a directory, an empty value.
	setXattr(t, filepath.Join(dir, "x/xattrs"), "user.zeta", "z")
	setXattr(t, filepath.Join(dir, "x/xattrs"), "user.alpha", "a\x00b")
	setXattr(t, filepath.Join(dir, "x/xattrs"), "user.mid", strings.Repeat("m", 300))
	setXattr(t, filepath.Join(dir, "x/xattrs"), "user.empty", "")
	setXattr(t, filepath.Join(dir, "usr/share"), "user.component", "share")
	setXattr(t, filepath.Join(dir, "usr/bin/tool"), "user.component", "tools")
	if root {
		setXattr(t, filepath.Join(dir, "usr/lib/libx.so.1"), "trusted.onsymlink", "yes")
		setXattr(t, filepath.Join(dir, "usr/bin/sudo"), "security.selinux", "system_u:object_r:sudo_exec_t:s0\x00")
	}
	// A directory of 2,000 entries: its dirtree needs 4-byte framing offsets.
	many := filepath.Join(dir, "usr/share/many")
	must(os.MkdirAll(many, 0o755))
	for i := 0; i < 2000; i++ {
		name := fmt.Sprintf("entry-%04d%s", i, strings.Repeat("_", i%17))
		if i%100 == 0 {
			must(os.Mkdir(filepath.Join(many, name), 0o755))
			continue
		}
		must(os.WriteFile(filepath.Join(many, name), []byte(fmt.Sprint(i%50)), 0o644))
	}
	if owners && root {
		must(os.Lchown(filepath.Join(dir, "etc/secret"), 1000, 1001))
		must(os.Lchown(filepath.Join(dir, "usr/share/dangling"), 5, 6))
		must(os.Lchown(filepath.Join(dir, "opt/private"), 1000, 1000))
		must(os.Lchown(filepath.Join(dir, "usr/bin/wall"), 0, 5))
		// chown clears setuid/setgid; set them again.
		must(unix.Chmod(filepath.Join(dir, "usr/bin/wall"), 0o2755))
		must(unix.Chmod(filepath.Join(dir, "opt/private"), 0o2700))
	}
}

func TestCompareWithOstree(t *testing.T) {
	needOstree(t)
	if !xattrsSupported(t) {
		t.Skip("user xattrs unsupported on the temp filesystem; cannot compare xattr handling")
	}
	tests := []struct {
		name      string
		owners    bool // chown some entries, commit without --owner-uid/gid
		ownerRoot bool // commit with --owner-uid=0 --owner-gid=0 (the TV recipe)
	}{
		{name: "root owned, TV recipe flags", ownerRoot: true},
		{name: "mixed owners"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.owners && os.Getuid() != 0 {
				t.Skip("chown needs root")
			}
			if tc.ownerRoot && os.Getuid() != 0 {
				t.Skip("--owner-uid=0 matches our import only for root-owned files")
			}
			dir := filepath.Join(t.TempDir(), "tree")
			require.NoError(t, os.Mkdir(dir, 0o755))
			buildCompareTree(t, dir, tc.owners)
			const subject, ts = "compare", 1700000000
			repo, want := ostreeCommit(t, dir, subject, ts, tc.ownerRoot)
			tr, got := ourCommit(t, dir, subject, ts)
			compareLs(t, repo, want, tr)
			assert.Equal(t, want, got, "commit checksum")

			// The oracle really saw what the tree is meant to exercise.
			lsx := run(t, "ostree", "--repo="+repo, "ls", "-RCX", want)
			for _, s := range []string{"b'user.alpha', [byte 0x61, 0x00, 0x62]", "(b'user.component', [byte 0x73, 0x68, 0x61, 0x72, 0x65])",
				"-04755 ", "d02700 ", "d01777 ", "/usr/lib/libx.so -> /usr/lib/libx.so.1", "/usr/share/naïve café ☕.txt"} {
				assert.True(t, strings.Contains(lsx, s), "ostree ls -RCX shows %q", s)
			}
			if os.Getuid() == 0 {
				for _, s := range []string{"b'trusted.onsymlink'", "b'security.selinux', b'system_u:object_r:sudo_exec_t:s0'"} {
					assert.True(t, strings.Contains(lsx, s), "ostree ls -RCX shows %q", s)
				}
			}
			if tc.owners {
				assert.True(t, strings.Contains(lsx, "-00600 1000 1001 "), "ostree ls -RCX shows the chowned file")
			}
		})
	}
}

// TestCompareDebootstrap compares a real Debian minbase root filesystem (6,700+ entries)
// with ostree. The rootfs is built once with debootstrap and cached as a tarball under
// $RECHUNKER_TEST_CACHE or ~/.cache/rechunker-test.
func TestCompareDebootstrap(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: builds or unpacks a debootstrap rootfs")
	}
	needOstree(t)
	if os.Getuid() != 0 {
		t.Skip("debootstrap and unpacking a rootfs with its owners need root")
	}
	tarball := debootstrapTarball(t)
	dir := filepath.Join(t.TempDir(), "rootfs")
	require.NoError(t, os.Mkdir(dir, 0o755))
	run(t, "tar", "-C", dir, "--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpf", tarball)
	// ostree cannot store device nodes; debootstrap leaves a few in /dev.
	run(t, "find", dir, "(", "-type", "c", "-o", "-type", "b", "-o", "-type", "p", "-o", "-type", "s", ")", "-delete")

	const subject, ts = "debootstrap", 1700000000
	repo, want := ostreeCommit(t, dir, subject, ts, false)
	tr, got := ourCommit(t, dir, subject, ts)
	compareLs(t, repo, want, tr)
	assert.Equal(t, want, got, "commit checksum")
	st := tr.Stats()
	t.Logf("debootstrap rootfs: %d dirs, %d files, %d symlinks, %d bytes; commit %s", st.Dirs, st.Files, st.Symlinks, st.Bytes, got)
}

func debootstrapTarball(t *testing.T) string {
	t.Helper()
	cache := os.Getenv("RECHUNKER_TEST_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		require.NoError(t, err)
		cache = filepath.Join(home, ".cache", "rechunker-test")
	}
	tarball := filepath.Join(cache, "debootstrap-minbase-bookworm.tar")
	if _, err := os.Stat(tarball); err == nil {
		return tarball
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		t.Skip("debootstrap not found and no cached rootfs at " + tarball)
	}
	require.NoError(t, os.MkdirAll(cache, 0o755))
	build := filepath.Join(t.TempDir(), "debootstrap")
	cmd := exec.Command("debootstrap", "--variant=minbase", "bookworm", build, "http://deb.debian.org/debian")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("debootstrap failed (no network?): %v\n%s", err, lastLines(string(out), 10))
	}
	tmp := tarball + ".tmp"
	run(t, "tar", "-C", build, "--numeric-owner", "--xattrs", "--xattrs-include=*", "-cpf", tmp, ".")
	require.NoError(t, os.Rename(tmp, tarball))
	return tarball
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
