package rechunk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"path"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/ostree"
)

// testTree builds trees programmatically with real content in a real store.
type testTree struct {
	t     testing.TB
	store *ostree.Store
	tree  *ostree.Tree
}

func newTestTree(t testing.TB, store *ostree.Store) *testTree {
	if store == nil {
		s, err := ostree.OpenStore(t.TempDir())
		require.NoError(t, err)
		store = s
	}
	return &testTree{t: t, store: store, tree: ostree.NewTree()}
}

func (b *testTree) dir(p string) *ostree.Dir {
	parts, err := ostree.SplitPath(p)
	require.NoError(b.t, err)
	d := b.tree.Root
	for _, c := range parts {
		sub := d.Dirs[c]
		if sub == nil {
			sub = ostree.NewDir(ostree.DirMeta{Mode: ostree.ModeDir | 0o755})
			d.Dirs[c] = sub
		}
		d = sub
	}
	return d
}

// file adds a regular file with the given content.
func (b *testTree) file(p string, content []byte, x ...ostree.Xattr) *ostree.File {
	h := ostree.FileHeader{Mode: ostree.ModeRegular | 0o644, Xattrs: ostree.Xattrs(x).Normalize()}
	sum, n, err := b.store.WriteContent(context.Background(), h, bytes.NewReader(content))
	require.NoError(b.t, err)
	f := &ostree.File{Header: &h, Size: n, Checksum: sum}
	b.dir(path.Dir(p)).Files[path.Base(p)] = f
	return f
}

// sized adds a file of n pseudo-random bytes derived from seed (distinct per seed).
func (b *testTree) sized(p string, n int, seed string) *ostree.File {
	return b.file(p, pseudoRandom(n, seed))
}

func (b *testTree) symlink(p, target string) {
	h := ostree.FileHeader{Mode: ostree.ModeSymlink | 0o777, Target: target}
	sum, _, err := b.store.WriteContent(context.Background(), h, nil)
	require.NoError(b.t, err)
	b.dir(path.Dir(p)).Files[path.Base(p)] = &ostree.File{Header: &h, Checksum: sum}
}

func pseudoRandom(n int, seed string) []byte {
	out := make([]byte, 0, n+32)
	s := sha256.Sum256([]byte(seed))
	for len(out) < n {
		out = append(out, s[:]...)
		s = sha256.Sum256(s[:])
	}
	return out[:n]
}

// dpkgPkg describes a fabricated dpkg package.
type dpkgPkg struct {
	name, source string
	files        map[string]int // path -> size
	version      string
}

// addDpkg writes a dpkg database for pkgs and their files (content seeded by
// version, so a version bump changes the bytes).
func (b *testTree) addDpkg(pkgs []dpkgPkg) {
	var status strings.Builder
	for _, p := range pkgs {
		fmt.Fprintf(&status, "Package: %s\nStatus: install ok installed\nArchitecture: amd64\nVersion: %s\n", p.name, p.version)
		if p.source != "" {
			fmt.Fprintf(&status, "Source: %s\n", p.source)
		}
		status.WriteString("Description: test\n continuation line\n\n")
		var list strings.Builder
		paths := make([]string, 0, len(p.files))
		for f := range p.files {
			paths = append(paths, f)
		}
		sort.Strings(paths)
		dirs := map[string]bool{}
		for _, f := range paths {
			for d := path.Dir(f); d != "/" && !dirs[d]; d = path.Dir(d) {
				dirs[d] = true
				fmt.Fprintln(&list, d)
			}
			fmt.Fprintln(&list, f)
			target := f
			if strings.HasPrefix(f, "/etc/") {
				target = "/usr" + f
			}
			b.sized(target, p.files[f], p.name+p.version+f)
		}
		b.file("/var/lib/dpkg/info/"+p.name+".list", []byte(list.String()))
		// Like real md5sums, this one changes with the package's contents.
		b.file("/var/lib/dpkg/info/"+p.name+".md5sums", []byte(p.version+"\n"+strings.Join(paths, "\n")))
	}
	b.file("/var/lib/dpkg/status", []byte(status.String()))
}

// finalize computes the tree checksums like a loaded input.
func (b *testTree) finalize() *ostree.Tree {
	_, _, err := b.tree.Finalize(b.store)
	require.NoError(b.t, err)
	return b.tree
}

// layerKey identifies a layer's content: its sorted (path, checksum) list.
func layerKey(l Layer) string {
	h := sha256.New()
	for _, f := range l.Files {
		fmt.Fprintf(h, "%s\x00%x\n", f.Path(), f.File.Checksum)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// changedLayers returns the layers of b whose content a does not have.
func changedLayers(a, b *Plan) []Layer {
	old := map[string]bool{}
	for _, l := range a.Layers {
		old[layerKey(l)] = true
	}
	var out []Layer
	for _, l := range b.Layers {
		if !old[layerKey(l)] {
			out = append(out, l)
		}
	}
	return out
}

// asPrevious describes a plan as the exporter would have written it.
func asPrevious(ref string, p *Plan, withLabel, withAnnotations bool) Previous {
	prev := Previous{Ref: ref, Labels: map[string]string{}}
	prev.Layers = append(prev.Layers, PreviousLayer{Digest: "sha256:commit"})
	for i, l := range p.Layers {
		pl := PreviousLayer{Digest: fmt.Sprintf("sha256:%d", i)}
		if withAnnotations {
			pl.Annotations = map[string]string{ComponentsAnnotation: strings.Join(l.Components, ",")}
		}
		prev.Layers = append(prev.Layers, pl)
	}
	if withLabel {
		for k, v := range p.Labels {
			prev.Labels[k] = v
		}
	}
	return prev
}

// checkPlan asserts the plan invariants: every path of the tree in exactly one layer,
// sorted components, at most maxLayers layers.
func checkPlan(t testing.TB, tree *ostree.Tree, p *Plan, maxLayers int) {
	t.Helper()
	require.LessOrEqual(t, len(p.Layers), maxLayers)
	want := map[string]ostree.Checksum{}
	for _, fe := range treeFiles(tree, nil) {
		want[fe.Path()] = fe.File.Checksum
	}
	got := map[string]int{}
	for i, l := range p.Layers {
		require.True(t, sort.StringsAreSorted(l.Components), "layer %d components sorted", i)
		for _, f := range l.Files {
			got[f.Path()]++
			require.Equal(t, want[f.Path()], f.File.Checksum, "checksum of %s", f.Path())
		}
		if len(l.Files) > 0 {
			require.NotEmpty(t, l.Components, "layer %d (%s) with files names its components", i, l.Name)
		}
	}
	for p := range want {
		require.Equal(t, 1, got[p], "path %s in exactly one layer", p)
	}
	require.Len(t, got, len(want))
}

// ownerOf returns the components of the layer holding path p.
func ownerOf(p *Plan, path string) (Layer, bool) {
	for _, l := range p.Layers {
		for _, f := range l.Files {
			if f.Path() == path {
				return l, true
			}
		}
	}
	return Layer{}, false
}

func componentOf(p *Plan, name string) *ComponentInfo {
	for i := range p.Components {
		if p.Components[i].Name == name {
			return &p.Components[i]
		}
	}
	return nil
}
