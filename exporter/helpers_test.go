package exporter

import (
	"context"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"
	"testing"
	"time"

	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/require"
	"go.podman.io/storage/pkg/reexec"

	"github.com/rechunker-dev/rechunker/ostree"
	"github.com/rechunker-dev/rechunker/rechunk"
)

func TestMain(m *testing.M) {
	if reexec.Init() {
		return
	}
	os.Exit(m.Run())
}

// node describes one entry of a test tree. Paths are commit paths (etc under usr/etc).
type node struct {
	path   string
	kind   byte // 'd' dir, 'f' file, 'l' symlink
	mode   uint32
	uid    uint32
	gid    uint32
	data   string
	target string
	xattrs map[string]string
}

func xattrsOf(m map[string]string) ostree.Xattrs {
	var x ostree.Xattrs
	for k, v := range m {
		x = append(x, ostree.Xattr{Name: k, Value: []byte(v)})
	}
	return x.Normalize()
}

// buildInput writes the nodes' content into the store and returns a finalized tree with
// its commit. Parent directories must come before their children.
func buildInput(t testing.TB, store *ostree.Store, nodes []node) *Input {
	t.Helper()
	tree := ostree.NewTree()
	for _, n := range nodes {
		dir, base := path.Split(n.path)
		parent := tree.LookupDir(dir)
		require.NotNil(t, parent, "parent of %s", n.path)
		switch n.kind {
		case 'd':
			parent.Dirs[base] = ostree.NewDir(ostree.DirMeta{UID: n.uid, GID: n.gid, Mode: ostree.ModeDir | n.mode, Xattrs: xattrsOf(n.xattrs)})
		case 'f', 'l':
			h := ostree.FileHeader{UID: n.uid, GID: n.gid, Mode: ostree.ModeRegular | n.mode, Xattrs: xattrsOf(n.xattrs)}
			if n.kind == 'l' {
				h.Mode = ostree.ModeSymlink | 0o777
				h.Target = n.target
			}
			var r *strings.Reader
			if n.kind == 'f' {
				r = strings.NewReader(n.data)
			}
			var sum ostree.Checksum
			var size int64
			var err error
			if r != nil {
				sum, size, err = store.WriteContent(context.Background(), h, r)
			} else {
				sum, size, err = store.WriteContent(context.Background(), h, nil)
			}
			require.NoError(t, err)
			parent.Files[base] = &ostree.File{Header: &h, Size: size, Checksum: sum}
		default:
			t.Fatalf("bad kind %c", n.kind)
		}
	}
	rt, rm, err := tree.Finalize(store)
	require.NoError(t, err)
	created := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	c := ostree.Commit{Timestamp: uint64(created.Unix()), RootTree: rt, RootMeta: rm}
	b, err := c.Marshal()
	require.NoError(t, err)
	sum, err := store.WriteMetadata(ostree.ObjCommit, b)
	require.NoError(t, err)
	return &Input{
		Tree: tree, Commit: c, CommitSum: sum, Created: created,
		Config: imgspecv1.Image{
			Platform: imgspecv1.Platform{Architecture: "amd64", OS: "linux"},
			Config: imgspecv1.ImageConfig{
				Env: []string{"PATH=/usr/bin"}, Cmd: []string{"/usr/bin/sh"}, WorkingDir: "/",
				StopSignal: "SIGRTMIN+3",
				Labels:     map[string]string{"inherited": "yes", LabelCommit: "stale"},
			},
		},
	}
}

// topLevelPlan is test scaffolding: one layer per top-level directory (files directly
// under / go with "root"), components named after the directory.
func topLevelPlan(in *Input) *rechunk.Plan {
	byTop := map[string]*rechunk.Layer{}
	_ = in.Tree.Walk(func(p string, d *ostree.Dir, f *ostree.File) error {
		if f == nil {
			return nil
		}
		parts := strings.SplitN(strings.TrimPrefix(p, "/"), "/", 2)
		top := "root"
		if len(parts) == 2 {
			top = parts[0]
		}
		l := byTop[top]
		if l == nil {
			l = &rechunk.Layer{Name: "files of " + top, Components: []string{top}}
			byTop[top] = l
		}
		i := strings.LastIndexByte(p, '/')
		l.Files = append(l.Files, rechunk.FileRef{Dir: p[:i+1], Name: p[i+1:], File: f})
		l.Size += f.Size
		return nil
	})
	var names []string
	for n := range byTop {
		names = append(names, n)
	}
	sort.Strings(names)
	plan := &rechunk.Plan{Labels: map[string]string{"rechunker.test": "1"}}
	for _, n := range names {
		plan.Layers = append(plan.Layers, *byTop[n])
	}
	// The reserved empty bin, as rpm-ostree always has one.
	plan.Layers = append(plan.Layers, rechunk.Layer{Name: "Reserved for new packages"})
	return plan
}

func needTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not installed", name)
	}
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s %s:\n%s", name, strings.Join(args, " "), out)
	return string(out)
}

// sampleNodes is a tree exercising every case the format has.
func sampleNodes() []node {
	long := "usr/share/" + strings.Repeat("d", 60) + "/" + strings.Repeat("n", 50) // > 100 bytes
	return []node{
		{path: "/usr", kind: 'd', mode: 0o755},
		{path: "/usr/bin", kind: 'd', mode: 0o755},
		{path: "/usr/bin/sh", kind: 'f', mode: 0o755, data: "#!/bin/true\n"},
		{path: "/usr/bin/sh-hardlink", kind: 'f', mode: 0o755, data: "#!/bin/true\n"},
		{path: "/usr/bin/su", kind: 'f', mode: 0o4755, data: "setuid", xattrs: map[string]string{"user.component": "shadow"}},
		{path: "/usr/bin/bash", kind: 'l', target: "sh"},
		{path: "/usr/bin/abs", kind: 'l', target: "/usr/bin/sh"},
		{path: "/usr/bin/denormal", kind: 'l', target: "../..//usr/bin/sh"},
		{path: "/usr/bin/longlink", kind: 'l', target: strings.Repeat("x/", 70) + "end"},
		{path: "/usr/etc", kind: 'd', mode: 0o755},
		{path: "/usr/etc/os-release", kind: 'f', mode: 0o644, data: "ID=test\n"},
		{path: "/usr/etc/shadow", kind: 'f', mode: 0o640, gid: 42, data: "root:*:1::::::\n"},
		{path: "/usr/etc/empty", kind: 'f', mode: 0o600, uid: 1000, gid: 1000},
		{path: "/usr/etc/private", kind: 'd', mode: 0o700, uid: 1000, gid: 100},
		{path: "/usr/etc/private/key", kind: 'f', mode: 0o600, uid: 1000, gid: 100, data: "secret",
			xattrs: map[string]string{"user.a": "1", "user.b": "two"}},
		{path: "/usr/share", kind: 'd', mode: 0o755},
		{path: "/" + path.Dir(long), kind: 'd', mode: 0o2755, gid: 5},
		{path: "/" + long, kind: 'f', mode: 0o644, data: strings.Repeat("long file\n", 100)},
		{path: "/usr/share/empty2", kind: 'f', mode: 0o644},
		{path: "/usr/lib", kind: 'd', mode: 0o755},
		{path: "/usr/lib/big", kind: 'f', mode: 0o644, data: strings.Repeat("0123456789abcdef", 70000)},
		{path: "/var", kind: 'd', mode: 0o755},
		{path: "/var/lib", kind: 'd', mode: 0o755},
		{path: "/var/lib/state", kind: 'f', mode: 0o644, data: "state"},
		{path: "/tmp", kind: 'd', mode: 0o1777},
		{path: "/sysroot", kind: 'd', mode: 0o755},
		{path: "/bin", kind: 'l', target: "usr/bin"},
		{path: "/toplevel-file", kind: 'f', mode: 0o644, data: "at the top"},
	}
}
