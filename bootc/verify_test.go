package bootc

import (
	"archive/tar"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.podman.io/storage/pkg/reexec"

	"github.com/rechunker-dev/rechunker/bootc/bootctest"
	"github.com/rechunker-dev/rechunker/internal/imageio"
	"github.com/rechunker-dev/rechunker/ostree"
)

func TestMain(m *testing.M) {
	if reexec.Init() {
		return
	}
	os.Exit(m.Run())
}

func verifyRef(t *testing.T, ref string, o Options) *Report {
	t.Helper()
	o.TempDir = t.TempDir()
	r, err := Verify(context.Background(), bootctest.Open(t, ref), o)
	require.NoError(t, err)
	return r
}

func findEntry(es []bootctest.Entry, suffix string) int {
	for i, e := range es {
		if strings.HasSuffix(e.Hdr.Name, suffix) {
			return i
		}
	}
	return -1
}

func TestVerifyAccepts(t *testing.T) {
	derived := [][]bootctest.Entry{{
		{Hdr: bootctest.Hdr("etc", tar.TypeDir, 0o755, 0)},
		{Hdr: bootctest.Hdr("etc/motd", tar.TypeReg, 0o644, 0), Data: []byte("hello\n")},
		{Hdr: bootctest.Hdr("usr/bin/.wh.ping", tar.TypeReg, 0o644, 0)},
		{Hdr: bootctest.Hdr("usr/share/doc/.wh..wh..opq", tar.TypeReg, 0o644, 0)},
		{Hdr: bootctest.Hdr("usr/share/doc/c", tar.TypeReg, 0o644, 0), Data: []byte("new")},
		{Hdr: bootctest.Hdr("opt/thing", tar.TypeReg, 0o644, 0), Data: []byte("x")},
		{Hdr: bootctest.Hdr("tmp/junk", tar.TypeReg, 0o644, 0), Data: []byte("x")},
	}}
	tests := []struct {
		name  string
		img   bootctest.Image
		check func(t *testing.T, r *Report)
	}{
		{name: "regular-file xattrs links", img: bootctest.Base()},
		{name: "hardlinked xattrs objects (older ostree-ext)", img: func() bootctest.Image { i := bootctest.Base(); i.HardlinkXattrs = true; return i }()},
		{name: "with commitmeta", img: func() bootctest.Image { i := bootctest.Base(); i.CommitMeta = true; return i }()},
		{name: "only ostree.bootable", img: func() bootctest.Image {
			i := bootctest.Base()
			i.Labels = map[string]string{LabelBootc: "", LabelBootable: "true"}
			return i
		}(), check: func(t *testing.T, r *Report) {
			assert.Equal(t, CheckLabels, r.Warnings[0].Check)
		}},
		{name: "derived layer on top", img: func() bootctest.Image { i := bootctest.Base(); i.Derived = derived; return i }(),
			check: func(t *testing.T, r *Report) {
				require.NotNil(t, r.Derived)
				assert.Equal(t, 1, r.Derived.Layers)
				assert.Equal(t, []string{"opt", "tmp"}, r.Derived.Filtered)
				assert.Equal(t, 3, r.Derived.Removed, "ping whited out, doc/a and doc/b hidden by the opaque dir")
				assert.Equal(t, RoleDerived, r.Layers[4].Role)
				// /usr/etc/hostname is empty and removed, motd added.
				assert.Equal(t, 10-1-2+1+1-1, r.Tree.Files+r.Tree.Symlinks)
			}},
		{name: "what bootc's fatal lints accept", img: func() bootctest.Image {
			i := bootctest.Base()
			i.Files = append(i.Files,
				bootctest.File{Path: "/var/run", Target: "../run", Chunk: 3},
				bootctest.File{Path: "/usr/lib/bootc/kargs.d/10-console.toml", Data: "kargs = [\"console=ttyS0\"]\nmatch-architectures = [\"x86_64\"]\n", Chunk: 3},
				bootctest.File{Path: "/usr/lib/bootc/kargs.d/README", Data: "not TOML, not read", Chunk: 3},
				bootctest.File{Path: baseimageRef + "/ostree", Target: "sysroot/ostree", Chunk: 3})
			i.EditTree = func(t *ostree.Tree) { mkdirs(t, baseimageRef+"/sysroot") }
			return i
		}(), check: func(t *testing.T, r *Report) {
			assert.Empty(t, r.Warnings)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.img.Build(t)
			r := verifyRef(t, b.Ref, Options{})
			require.Nil(t, r.Failure, "%v", r.Failure)
			assert.True(t, r.OK)
			assert.Equal(t, b.CommitSum.String(), r.Commit)
			for _, l := range r.Layers {
				assert.True(t, l.Checked, "layer %d", l.Index)
			}
			assert.Equal(t, RoleCommit, r.Layers[0].Role)
			assert.Equal(t, RoleChunk, r.Layers[3].Role)
			assert.Equal(t, []string{"kernel"}, r.Layers[2].Components)
			for _, w := range r.Warnings {
				assert.NotEqual(t, CheckKernel, w.Check, w.Message)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

func TestVerifyRejects(t *testing.T) {
	sums := bootctest.Base().Build(t).Sums
	bash := sums["/usr/bin/bash"]
	tests := []struct {
		name    string
		img     func() bootctest.Image
		corrupt func(t *testing.T, b *bootctest.Built) // change the layout on disk after building
		check   string
		layer   int
		msg     string
	}{
		{
			name: "corrupted blob",
			img:  bootctest.Base,
			corrupt: func(t *testing.T, b *bootctest.Built) {
				p := filepath.Join(b.Dir, "blobs", "sha256", b.Manifest.Layers[2].Digest.Encoded())
				data, err := os.ReadFile(p)
				require.NoError(t, err)
				data[len(data)/2] ^= 0xff
				require.NoError(t, os.WriteFile(p, data, 0o644))
			},
			check: CheckBlob, layer: 2, msg: "blob digest is",
		},
		{
			name: "file content changed",
			img: func() bootctest.Image {
				i := bootctest.Base()
				i.EditLayer = func(n int, es []bootctest.Entry) []bootctest.Entry {
					if n == 1 {
						k := findEntry(es, bash.String()[2:]+".file")
						es[k].Data = []byte("#!bash binarY")
					}
					return es
				}
				return i
			},
			check: CheckObject, layer: 1, msg: bash.String() + ".file: content checksum is",
		},
		{
			name: "file mode changed",
			img: func() bootctest.Image {
				i := bootctest.Base()
				i.EditLayer = func(n int, es []bootctest.Entry) []bootctest.Entry {
					if n == 1 {
						es[findEntry(es, bash.String()[2:]+".file")].Hdr.Mode = 0o700
					}
					return es
				}
				return i
			},
			check: CheckObject, layer: 1, msg: "content checksum is",
		},
		{
			name: "xattrs link missing",
			img: func() bootctest.Image {
				i := bootctest.Base()
				i.EditLayer = func(n int, es []bootctest.Entry) []bootctest.Entry {
					if n == 1 {
						k := findEntry(es, bash.String()[2:]+".file-xattrs-link")
						es = append(es[:k], es[k+1:]...)
					}
					return es
				}
				return i
			},
			check: CheckXattrs, layer: 1, msg: "missing xattrs reference for " + bash.String() + " in layer 1",
		},
		{
			name: "xattrs link with wrong xattrs",
			img: func() bootctest.Image {
				i := bootctest.Base()
				i.EditLayer = func(n int, es []bootctest.Entry) []bootctest.Entry {
					if n == 1 {
						es[findEntry(es, bash.String()[2:]+".file-xattrs-link")].Data = ostree.Xattrs(nil).Marshal()
					}
					return es
				}
				return i
			},
			check: CheckObject, layer: 1, msg: "0 xattrs",
		},
		{
			name: "layer dropped from manifest, config and history",
			img: func() bootctest.Image {
				i := bootctest.Base()
				i.EditImage = func(m *imgspecv1.Manifest, c *imgspecv1.Image) {
					m.Layers = append(m.Layers[:2], m.Layers[3:]...)
					c.RootFS.DiffIDs = append(c.RootFS.DiffIDs[:2], c.RootFS.DiffIDs[3:]...)
					c.History = append(c.History[:2], c.History[3:]...)
				}
				return i
			},
			check: CheckTree, layer: -1, msg: "commit tree incomplete: content object",
		},
		{
			name: "final-diffid points nowhere",
			img: func() bootctest.Image {
				i := bootctest.Base()
				i.Labels = map[string]string{LabelFinalDiffID: digest.FromString("nothing").String()}
				return i
			},
			check: CheckLayout, layer: -1, msg: "is not in rootfs.diff_ids",
		},
		{
			name: "short history",
			img: func() bootctest.Image {
				i := bootctest.Base()
				i.EditImage = func(m *imgspecv1.Manifest, c *imgspecv1.Image) { c.History = c.History[:3] }
				return i
			},
			check: CheckHistory, layer: -1, msg: "truncated history: 3 history entries for 4 layers",
		},
		{
			name: "no bootable label",
			img: func() bootctest.Image {
				i := bootctest.Base()
				i.Labels = map[string]string{LabelBootc: ""}
				return i
			},
			check: CheckBootable, layer: -1, msg: "neither",
		},
		{
			name:  "wrong architecture",
			img:   func() bootctest.Image { i := bootctest.Base(); i.Arch = "riscv64-not"; return i },
			check: CheckArch, layer: -1, msg: `"riscv64-not"`,
		},
		{
			name: "commit label mismatch",
			img: func() bootctest.Image {
				i := bootctest.Base()
				i.Labels = map[string]string{LabelCommit: strings.Repeat("ab", 32)}
				return i
			},
			check: CheckCommit, layer: 0, msg: "label says abab",
		},
		{
			name: "commit not first",
			img: func() bootctest.Image {
				i := bootctest.Base()
				i.EditLayer = func(n int, es []bootctest.Entry) []bootctest.Entry {
					if n == 0 {
						k := findEntry(es, ".commit")
						c := es[k]
						es = append(es[:k], es[k+1:]...)
						es = append(es, c)
					}
					return es
				}
				return i
			},
			check: CheckCommit, layer: 0, msg: "want the <commit>.commit object",
		},
		{
			name: "metadata object in a chunk layer",
			img: func() bootctest.Image {
				i := bootctest.Base()
				i.EditLayer = func(n int, es []bootctest.Entry) []bootctest.Entry {
					if n == 2 {
						es = append(es, bootctest.Entry{Hdr: bootctest.Hdr(bootctest.ObjPath(ostree.Checksum{1}, "dirmeta"), tar.TypeReg, 0o644, 0)})
					}
					return es
				}
				return i
			},
			check: CheckObject, layer: 2, msg: "metadata object",
		},
		{
			name: "duplicate object in a layer",
			img: func() bootctest.Image {
				i := bootctest.Base()
				i.EditLayer = func(n int, es []bootctest.Entry) []bootctest.Entry {
					if n == 1 {
						k := findEntry(es, bash.String()[2:]+".file-xattrs-link")
						es = append(es, es[k], es[k+1])
					}
					return es
				}
				return i
			},
			check: CheckObject, layer: 1, msg: "duplicate object " + bash.String() + ".file",
		},
		{
			name: "dangling xattrs link",
			img: func() bootctest.Image {
				i := bootctest.Base()
				i.EditLayer = func(n int, es []bootctest.Entry) []bootctest.Entry {
					if n == 1 {
						k := findEntry(es, bash.String()[2:]+".file")
						es = append(es[:k], es[k+1:]...)
					}
					return es
				}
				return i
			},
			check: CheckXattrs, layer: 1, msg: "dangling xattrs reference for " + bash.String(),
		},
		{
			name: "checkout hardlink to the wrong object",
			img: func() bootctest.Image {
				i := bootctest.Base()
				i.EditLayer = func(n int, es []bootctest.Entry) []bootctest.Entry {
					if n == 1 {
						es[findEntry(es, "usr/bin/bash")].Hdr.Linkname = bootctest.ObjPath(sums["/usr/bin/ping"], "file")
					}
					return es
				}
				return i
			},
			check: CheckContainer, layer: 1, msg: "/usr/bin/bash links to object",
		},
		{
			name: "checkout path not in the commit",
			img: func() bootctest.Image {
				i := bootctest.Base()
				i.EditLayer = func(n int, es []bootctest.Entry) []bootctest.Entry {
					if n == 1 {
						e := es[findEntry(es, "usr/bin/bash")]
						e.Hdr.Name = "usr/bin/bash-extra"
						es = append(es, e)
					}
					return es
				}
				return i
			},
			check: CheckContainer, layer: 1, msg: "1 checkout paths are not in the commit (the first in layer 1)",
		},
		{
			name: "checkout entry under etc maps to usr/etc",
			img: func() bootctest.Image {
				i := bootctest.Base()
				i.EditLayer = func(n int, es []bootctest.Entry) []bootctest.Entry {
					if n == 3 {
						es[findEntry(es, "etc/os-release")].Hdr.Linkname = bootctest.ObjPath(sums["/usr/bin/ping"], "file")
					}
					return es
				}
				return i
			},
			check: CheckContainer, layer: 3, msg: "/usr/etc/os-release links to object",
		},
		{
			name: "diff_id mismatch",
			img: func() bootctest.Image {
				i := bootctest.Base()
				i.EditImage = func(m *imgspecv1.Manifest, c *imgspecv1.Image) {
					c.RootFS.DiffIDs[3] = digest.FromString("other")
					c.Config.Labels[LabelFinalDiffID] = c.RootFS.DiffIDs[3].String()
				}
				return i
			},
			check: CheckBlob, layer: 3, msg: "config diff_id says",
		},
		{
			name: "derived file name not UTF-8",
			img: func() bootctest.Image {
				i := bootctest.Base()
				i.Derived = [][]bootctest.Entry{{{Hdr: bootctest.Hdr("usr/share/caf\xe9", tar.TypeReg, 0o644, 0), Data: []byte("x")}}}
				return i
			},
			check: CheckDerived, layer: 4, msg: "not valid UTF-8; ostree cannot store it",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.img().Build(t)
			if tc.corrupt != nil {
				tc.corrupt(t, b)
			}
			r := verifyRef(t, b.Ref, Options{})
			require.NotNil(t, r.Failure, "verify passed")
			assert.False(t, r.OK)
			assert.Equal(t, tc.check, r.Failure.Check, r.Failure.Error())
			assert.Equal(t, tc.layer, r.Failure.Layer, r.Failure.Error())
			assert.Contains(t, r.Failure.Message, tc.msg)
		})
	}
}

// A manifest and config that disagree on the layer count never reach Verify: imageio
// refuses to open the image.
func TestVerifyLayerDroppedFromManifestOnly(t *testing.T) {
	i := bootctest.Base()
	i.EditImage = func(m *imgspecv1.Manifest, c *imgspecv1.Image) { m.Layers = m.Layers[:3] }
	b := i.Build(t)
	_, err := imageio.Open(context.Background(), b.Ref, imageio.Options{CacheDir: t.TempDir()})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "lists 4 diff_ids for 3 manifest layers")
}

func TestVerifyLint(t *testing.T) {
	img := bootctest.Base()
	img.Files = append(img.Files[:3:3], img.Files[5:]...) // no kernel
	img.Files = append(img.Files, bootctest.File{Path: "/var/lib/app/state", Data: "x", Chunk: 3})
	b := img.Build(t)
	r := verifyRef(t, b.Ref, Options{})
	require.Nil(t, r.Failure, "%v", r.Failure)
	checks := map[string]string{}
	for _, w := range r.Warnings {
		checks[w.Check] = w.Message
	}
	assert.Contains(t, checks[CheckKernel], "no kernel")
	assert.Contains(t, checks[CheckVar], "/var/lib/app/state")
	assert.NotContains(t, checks, CheckSELinux, "no policy, no SELinux warning")

	img = bootctest.Base()
	img.Files = append(img.Files, bootctest.File{Path: "/usr/etc/selinux/config", Data: "SELINUXTYPE=targeted\n", Chunk: 3})
	r = verifyRef(t, img.Build(t).Ref, Options{})
	require.Nil(t, r.Failure, "%v", r.Failure)
	var msg string
	for _, w := range r.Warnings {
		if w.Check == CheckSELinux {
			msg = w.Message
		}
	}
	assert.Contains(t, msg, "have no security.selinux label although the image ships an SELinux policy (/usr/etc/selinux/config)")
}

// mkdirs creates the directories p and its parents in t.
func mkdirs(t *ostree.Tree, p string) {
	d := t.Root
	parts, _ := ostree.SplitPath(p)
	for _, c := range parts {
		if d.Dirs[c] == nil {
			d.Dirs[c] = ostree.NewDir(ostree.DirMeta{Mode: ostree.ModeDir | 0o755})
		}
		d = d.Dirs[c]
	}
}

// withFiles is the base image with its files changed: those at the paths in drop
// removed, add appended.
func withFiles(drop []string, add ...bootctest.File) bootctest.Image {
	i := bootctest.Base()
	var fs []bootctest.File
	for _, f := range i.Files {
		if !slices.Contains(drop, f.Path) {
			fs = append(fs, f)
		}
	}
	i.Files = append(fs, add...)
	return i
}

// TestVerifyFatalLints has one case per fatal lint of `bootc container lint` (fatal.go):
// each fails the image with the lint's name as the check and a message that says
// what is wrong, where, and what to add to the Containerfile.
func TestVerifyFatalLints(t *testing.T) {
	rmdir := func(names ...string) func(*ostree.Tree) {
		return func(t *ostree.Tree) {
			for _, n := range names {
				delete(t.Root.Dirs, n)
			}
		}
	}
	kargs := func(data string) bootctest.Image {
		return withFiles(nil, bootctest.File{Path: "/usr/lib/bootc/kargs.d/10-console.toml", Data: data, Chunk: 3})
	}
	tests := []struct {
		name  string
		img   func() bootctest.Image
		check string
		layer int
		msg   []string
	}{
		{
			name: "no /sysroot, no /ostree",
			img: func() bootctest.Image {
				i := withFiles([]string{"/ostree"})
				i.EditTree = rmdir("sysroot")
				return i
			},
			check: CheckBaseimageRoot, layer: -1,
			msg: []string{"/sysroot is missing and /ostree is missing: bootc container lint refuses the image (baseimage-root) " +
				"and a deployment stops in emergency mode (ostree-prepare-root cannot move its root to /sysroot); " +
				"add `mkdir /sysroot && ln -s sysroot/ostree /ostree` to the Containerfile"},
		},
		{
			name: "/ostree a directory",
			img: func() bootctest.Image {
				i := withFiles([]string{"/ostree"})
				i.EditTree = func(t *ostree.Tree) { mkdirs(t, "/ostree") }
				return i
			},
			check: CheckBaseimageRoot, layer: -1,
			msg: []string{"/ostree is a directory, not a symlink to sysroot/ostree: bootc container lint refuses the image (baseimage-root); " +
				"add `rm -rf /ostree && ln -s sysroot/ostree /ostree` to the Containerfile"},
		},
		{
			name: "/ostree an absolute symlink",
			img: func() bootctest.Image {
				return withFiles([]string{"/ostree"}, bootctest.File{Path: "/ostree", Target: "/sysroot/ostree", Chunk: 3})
			},
			check: CheckBaseimageRoot, layer: -1,
			msg: []string{`/ostree is a symlink to "/sysroot/ostree", not a symlink to sysroot/ostree`},
		},
		{
			name: "reference root without sysroot",
			img: func() bootctest.Image {
				return withFiles(nil, bootctest.File{Path: baseimageRef + "/ostree", Target: "sysroot/ostree", Chunk: 3})
			},
			check: CheckBaseimageRoot, layer: -1,
			msg: []string{"/usr/share/doc/bootc/baseimage/base/sysroot is missing: bootc container lint refuses the image (baseimage-root); " +
				"add `mkdir /usr/share/doc/bootc/baseimage/base/sysroot` to the Containerfile"},
		},
		{
			name: "/proc missing, /tmp a symlink",
			img: func() bootctest.Image {
				i := withFiles(nil, bootctest.File{Path: "/tmp", Target: "var/tmp", Chunk: 3})
				i.EditTree = rmdir("proc", "tmp")
				return i
			},
			check: CheckAPIDirs, layer: -1,
			msg: []string{`/proc is missing, /tmp is a symlink to "var/tmp": bootc container lint refuses the image (api-base-directories:`,
				"add `rm -f /tmp && mkdir /proc /tmp` to the Containerfile"},
		},
		{
			name: "/var/run a directory",
			img: func() bootctest.Image {
				i := bootctest.Base()
				i.EditTree = func(t *ostree.Tree) { mkdirs(t, "/var/run") }
				return i
			},
			check: CheckVarRun, layer: -1,
			msg: []string{"/var/run is a directory, not a symlink: bootc container lint refuses the image (var-run); " +
				"add `rm -rf /var/run && ln -s ../run /var/run` to the Containerfile"},
		},
		{
			name: "/etc beside /usr/etc in the commit",
			img: func() bootctest.Image {
				i := bootctest.Base()
				i.EditTree = func(t *ostree.Tree) { mkdirs(t, "/etc") }
				return i
			},
			check: CheckEtcUsrEtc, layer: -1,
			msg: []string{"the commit has both /etc (a directory) and /usr/etc: bootc container lint refuses the image (etc-usretc) " +
				"and ostree refuses to deploy it; ship configuration in /etc only"},
		},
		{
			name: "derived layer writes usr/etc",
			img: func() bootctest.Image {
				i := bootctest.Base()
				i.Derived = [][]bootctest.Entry{{{Hdr: bootctest.Hdr("usr/etc/motd", tar.TypeReg, 0o644, 0), Data: []byte("hi\n")}}}
				return i
			},
			check: CheckEtcUsrEtc, layer: 4,
			msg: []string{"the layer writes usr/etc/motd, but a bootc container has /etc: bootc container lint refuses the image (etc-usretc)",
				"write to /etc instead"},
		},
		{
			name: "two kernels",
			img: func() bootctest.Image {
				return withFiles(nil, bootctest.File{Path: "/usr/lib/modules/6.2.0/vmlinuz", Data: "K2", Chunk: 2})
			},
			check: CheckKernel, layer: -1,
			msg: []string{"2 kernels in /usr/lib/modules (6.1.0, 6.2.0): bootc container lint refuses the image (kernel), bootc boots exactly one",
				"remove all but one /usr/lib/modules/<version> directory"},
		},
		{
			name:  "kargs.d file not TOML",
			img:   func() bootctest.Image { return kargs("kargs = console=ttyS0\n") },
			check: CheckKargs, layer: -1,
			msg: []string{"/usr/lib/bootc/kargs.d/10-console.toml: toml: ",
				"bootc container lint refuses the image (bootc-kargs), and bootc install and upgrade fail on it too; fix or remove the file"},
		},
		{
			name:  "kargs.d file with an unknown key",
			img:   func() bootctest.Image { return kargs("kargs = [\"quiet\"]\narch = [\"x86_64\"]\n") },
			check: CheckKargs, layer: -1,
			msg: []string{`/usr/lib/bootc/kargs.d/10-console.toml: unknown key "arch": bootc container lint refuses the image (bootc-kargs)`},
		},
		{
			name:  "kargs.d file without kargs",
			img:   func() bootctest.Image { return kargs("") },
			check: CheckKargs, layer: -1,
			msg: []string{"/usr/lib/bootc/kargs.d/10-console.toml: no kargs list: "},
		},
		{
			name: "kargs.d file from a derived layer",
			img: func() bootctest.Image {
				i := bootctest.Base()
				i.Derived = [][]bootctest.Entry{{{Hdr: bootctest.Hdr("usr/lib/bootc/kargs.d/20-x.toml", tar.TypeReg, 0o644, 0), Data: []byte("kargs = [1]\n")}}}
				return i
			},
			check: CheckKargs, layer: -1,
			msg: []string{"/usr/lib/bootc/kargs.d/20-x.toml: toml: "},
		},
		{
			// utf8 is refused before any lint: ostree cannot store such a target.
			name: "symlink target not UTF-8",
			img: func() bootctest.Image {
				i := bootctest.Base()
				h := bootctest.Hdr("usr/bin/cafe", tar.TypeSymlink, 0o777, 0)
				h.Linkname = "caf\xe9"
				i.Derived = [][]bootctest.Entry{{{Hdr: h}}}
				return i
			},
			check: CheckDerived, layer: 4,
			msg: []string{"usr/bin/cafe: symlink target \"caf\\xe9\" is not valid UTF-8"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := verifyRef(t, tc.img().Build(t).Ref, Options{})
			require.NotNil(t, r.Failure, "verify passed")
			assert.False(t, r.OK)
			assert.Equal(t, tc.check, r.Failure.Check, r.Failure.Error())
			assert.Equal(t, tc.layer, r.Failure.Layer, r.Failure.Error())
			for _, m := range tc.msg {
				assert.Contains(t, r.Failure.Message, m)
			}
		})
	}
}

// TestRootLints checks the lints on a tree alone, as build uses them: a tree with no
// /sysroot and no /ostree gets one problem, naming both.
func TestRootLints(t *testing.T) {
	tree := ostree.NewTree()
	for _, d := range []string{"/dev", "/proc", "/sys", "/run", "/tmp", "/var", "/usr/etc"} {
		mkdirs(tree, d)
	}
	ps := RootLints(tree)
	require.Len(t, ps, 1)
	assert.Equal(t, CheckBaseimageRoot, ps[0].Check)
	assert.Contains(t, ps[0].Message, "add `mkdir /sysroot && ln -s sysroot/ostree /ostree` to the Containerfile")

	mkdirs(tree, "/sysroot")
	tree.Root.Files["ostree"] = &ostree.File{Header: &ostree.FileHeader{Mode: ostree.ModeSymlink | 0o777, Target: "sysroot/ostree"}}
	assert.Empty(t, RootLints(tree))

	mkdirs(tree, "/etc")
	ps = RootLints(tree)
	require.Len(t, ps, 1)
	assert.Equal(t, CheckEtcUsrEtc, ps[0].Check)
	assert.Contains(t, ps[0].Message, "the commit has both /etc (a directory) and /usr/etc")
}

// TestVerifyMetadataSpill runs with no memory budget for metadata objects, so every
// dirtree and dirmeta goes through the temporary on-disk store.
func TestVerifyMetadataSpill(t *testing.T) {
	b := bootctest.Base().Build(t)
	im, err := newImporter(bootctest.Open(t, b.Ref), Options{TempDir: t.TempDir()})
	require.NoError(t, err)
	defer im.close()
	im.meta = newMetaStore(im.tmp, 0)
	require.NoError(t, im.run(context.Background()))
	require.Nil(t, im.r.Failure, "%v", im.r.Failure)
	require.NotNil(t, im.meta.store, "objects spilled to disk")
	assert.Empty(t, im.meta.mem)
	assert.Equal(t, b.CommitSum.String(), im.r.Commit)
}
