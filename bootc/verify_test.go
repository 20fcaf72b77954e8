package bootc

import (
	"archive/tar"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.podman.io/storage/pkg/reexec"

	"github.com/rechunker-dev/rechunker/bootc/bootctest"
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
				assert.Equal(t, 9-1-2+1+1-1, r.Tree.Files+r.Tree.Symlinks)
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
			name: "layer dropped from manifest only",
			img: func() bootctest.Image {
				i := bootctest.Base()
				i.EditImage = func(m *imgspecv1.Manifest, c *imgspecv1.Image) { m.Layers = m.Layers[:3] }
				return i
			},
			check: CheckManifest, layer: -1, msg: "config lists 4 diff_ids for 3 manifest layers",
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
