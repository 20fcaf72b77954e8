package bootc

import (
	"archive/tar"
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/rechunker-dev/rechunker/bootc/bootctest"
	"github.com/rechunker-dev/rechunker/ostree"
)

// lsEntry is one line of `ostree ls -R -C`.
type lsEntry struct {
	typ       byte // 'd', '-', 'l'
	mode      int64
	uid, gid  int
	sum, meta string
	path      string
}

func ostreeLs(t *testing.T, repo, ref string) []lsEntry {
	out, err := exec.Command("ostree", "ls", "--repo="+repo, "-R", "-C", ref).Output()
	require.NoError(t, err)
	var es []lsEntry
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		require.GreaterOrEqual(t, len(f), 6, sc.Text())
		mode, err := strconv.ParseInt(f[0][1:], 8, 64)
		require.NoError(t, err)
		uid, _ := strconv.Atoi(f[1])
		gid, _ := strconv.Atoi(f[2])
		e := lsEntry{typ: f[0][0], mode: mode, uid: uid, gid: gid, sum: f[4]}
		if e.typ == 'd' {
			e.meta, e.path = f[5], f[6]
		} else {
			e.path = f[5]
		}
		es = append(es, e)
	}
	return es
}

// TestVerifyRealOstreeCommit uses real ostree as the oracle: a tree committed by
// `ostree commit` into a bare repo is laid out as an ostree-ext image from the repo's own
// object bytes and names (commit, dirtree, dirmeta verbatim; content objects with the
// ownership, mode and xattrs ostree stored), and Verify must accept it, i.e. recompute
// exactly ostree's checksums. Dropping an xattr must then be caught.
func TestVerifyRealOstreeCommit(t *testing.T) {
	if _, err := exec.LookPath("ostree"); err != nil {
		t.Skip("ostree not installed")
	}
	if os.Geteuid() != 0 {
		t.Skip("a bare ostree repo needs root to keep ownership")
	}
	tmp := t.TempDir()
	root := filepath.Join(tmp, "root")
	for _, d := range []string{"usr/bin", "usr/etc", "usr/lib/modules/6.1.0", "sysroot", "var/lib/app", "dev", "proc", "sys", "run", "tmp"} {
		require.NoError(t, os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	require.NoError(t, os.Symlink("sysroot/ostree", filepath.Join(root, "ostree")))
	write := func(p, data string, mode os.FileMode) {
		require.NoError(t, os.WriteFile(filepath.Join(root, p), []byte(data), mode))
		require.NoError(t, os.Chmod(filepath.Join(root, p), mode))
	}
	write("usr/bin/tool", "#!/bin/sh\necho tool\n", 0o4755)
	write("usr/etc/empty", "", 0o600)
	write("usr/etc/os-release", "ID=oracle\n", 0o644)
	write("usr/lib/modules/6.1.0/vmlinuz", strings.Repeat("kernel", 40000), 0o644)
	write("var/lib/app/state", "x", 0o640)
	require.NoError(t, os.Chown(filepath.Join(root, "var/lib/app/state"), 12, 34))
	require.NoError(t, os.Symlink("tool", filepath.Join(root, "usr/bin/t")))
	require.NoError(t, os.Link(filepath.Join(root, "usr/bin/tool"), filepath.Join(root, "usr/bin/tool2")))
	if err := unix.Setxattr(filepath.Join(root, "usr/bin/tool"), "user.component", []byte("tools"), 0); err != nil {
		t.Skipf("filesystem without user xattrs: %v", err)
	}
	repo := filepath.Join(tmp, "repo")
	run := func(args ...string) string {
		out, err := exec.Command("ostree", args...).CombinedOutput()
		require.NoError(t, err, "ostree %v: %s", args, out)
		return strings.TrimSpace(string(out))
	}
	run("init", "--repo="+repo, "--mode=bare")
	run("commit", "--repo="+repo, "--branch=oracle", "--tree=dir="+root, "--timestamp=2024-01-01T00:00:00Z")
	commitHex := run("rev-parse", "--repo="+repo, "oracle")
	commit, err := ostree.ParseChecksum(commitHex)
	require.NoError(t, err)
	ls := ostreeLs(t, repo, "oracle")

	objFile := func(sum, suffix string) string {
		return filepath.Join(repo, "objects", sum[:2], sum[2:]+"."+suffix)
	}
	readObj := func(sum, suffix string) []byte {
		b, err := os.ReadFile(objFile(sum, suffix))
		require.NoError(t, err)
		return b
	}
	reg := func(name string, data []byte) bootctest.Entry {
		return bootctest.Entry{Hdr: bootctest.Hdr(name, tar.TypeReg, 0o644, int64(len(data))), Data: data}
	}
	objName := func(sum, suffix string) string {
		return "sysroot/ostree/repo/objects/" + sum[:2] + "/" + sum[2:] + "." + suffix
	}
	tarPath := func(p string) string {
		p = strings.TrimPrefix(p, "/")
		if p == "usr/etc" || strings.HasPrefix(p, "usr/etc/") {
			p = p[len("usr/"):]
		}
		return p
	}

	// Commit layer: ostree's own bytes for commit, dirtree and dirmeta objects.
	l0 := append([]bootctest.Entry{{Hdr: bootctest.Hdr("./", tar.TypeDir, 0o755, 0)}}, bootctest.Skeleton()...)
	l0 = append(l0, reg(objName(commitHex, "commit"), readObj(commitHex, "commit")))
	seen := map[string]bool{}
	for _, e := range ls {
		if e.typ != 'd' {
			continue
		}
		for _, o := range [][2]string{{e.meta, "dirmeta"}, {e.sum, "dirtree"}} {
			if !seen[o[0]+o[1]] {
				seen[o[0]+o[1]] = true
				l0 = append(l0, reg(objName(o[0], o[1]), readObj(o[0], o[1])))
			}
		}
		if e.path != "/" && e.path != "/sysroot" {
			h := bootctest.Hdr(tarPath(e.path), tar.TypeDir, e.mode&0o7777, 0)
			h.Uid, h.Gid = e.uid, e.gid
			l0 = append(l0, bootctest.Entry{Hdr: h})
		}
	}

	// Chunk layer: every content object with what the bare repo stored for it.
	paths := map[string][]lsEntry{}
	var sums []string
	for _, e := range ls {
		if e.typ == 'd' {
			continue
		}
		if paths[e.sum] == nil {
			sums = append(sums, e.sum)
		}
		paths[e.sum] = append(paths[e.sum], e)
	}
	sort.Strings(sums)
	chunk := func(dropXattr bool) []bootctest.Entry {
		es := bootctest.Skeleton()
		for _, s := range sums {
			f := objFile(s, "file")
			var st unix.Stat_t
			require.NoError(t, unix.Lstat(f, &st))
			var x ostree.Xattrs
			buf := make([]byte, 4096)
			n, err := unix.Llistxattr(f, buf)
			require.NoError(t, err)
			for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
				if name == "" || (dropXattr && name == "user.component") {
					continue
				}
				v := make([]byte, 4096)
				m, err := unix.Lgetxattr(f, name, v)
				require.NoError(t, err)
				x = append(x, ostree.Xattr{Name: name, Value: v[:m]})
			}
			es = append(es, reg(objName(s, "file-xattrs-link"), x.Normalize().Marshal()))
			h := bootctest.Hdr(objName(s, "file"), tar.TypeReg, int64(st.Mode&0o7777), st.Size)
			h.Uid, h.Gid = int(st.Uid), int(st.Gid)
			var data []byte
			if st.Mode&unix.S_IFMT == unix.S_IFLNK {
				target, err := os.Readlink(f)
				require.NoError(t, err)
				h.Typeflag, h.Size, h.Linkname = tar.TypeSymlink, 0, target
			} else {
				data, err = os.ReadFile(f)
				require.NoError(t, err)
			}
			es = append(es, bootctest.Entry{Hdr: h, Data: data})
			for _, p := range paths[s] {
				c := bootctest.Hdr(tarPath(p.path), tar.TypeLink, h.Mode, 0)
				c.Uid, c.Gid, c.Linkname = h.Uid, h.Gid, objName(s, "file")
				if h.Typeflag == tar.TypeReg && len(data) == 0 {
					c.Typeflag, c.Linkname = tar.TypeReg, ""
				}
				es = append(es, bootctest.Entry{Hdr: c})
			}
		}
		return es
	}

	b := bootctest.Image{Components: []string{"everything"}}.WriteLayers(t, commit, [][]bootctest.Entry{l0, chunk(false)}, 1)
	r := verifyRef(t, b.Ref, Options{})
	require.Nil(t, r.Failure, "%v", r.Failure)
	assert.Equal(t, commitHex, r.Commit)
	assert.Equal(t, len(sums), r.Layers[1].Objects)
	var varWarn bool
	for _, w := range r.Warnings {
		varWarn = varWarn || w.Check == CheckVar && strings.Contains(w.Message, "/var/lib/app/state")
	}
	assert.True(t, varWarn, "lint reports /var content: %v", r.Warnings)

	b = bootctest.Image{Components: []string{"everything"}}.WriteLayers(t, commit, [][]bootctest.Entry{l0, chunk(true)}, 1)
	r = verifyRef(t, b.Ref, Options{})
	require.NotNil(t, r.Failure)
	assert.Equal(t, CheckObject, r.Failure.Check)
	assert.Contains(t, r.Failure.Message, "content checksum is")
}
