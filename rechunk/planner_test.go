package rechunk

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/ostree"
)

// releasePackages is a small distribution: three big packages, many small ones.
func releasePackages(bumped string) []dpkgPkg {
	var pkgs []dpkgPkg
	add := func(name, source string, sizes ...int) {
		files := map[string]int{}
		for i, s := range sizes {
			files[fmt.Sprintf("/usr/lib/%s/f%d", name, i)] = s
		}
		files["/usr/share/doc/"+name+"/copyright"] = 300
		v := "1.0"
		if name == bumped {
			v = "1.1"
		}
		pkgs = append(pkgs, dpkgPkg{name: name, source: source, files: files, version: v})
	}
	add("firmware", "", 30<<20, 5<<20)
	add("kernel-modules", "linux", 20<<20)
	add("llvm", "", 12<<20, 3<<20)
	for i := 0; i < 60; i++ {
		add(fmt.Sprintf("pkg%02d", i), "", 20<<10+i*3000, 2<<10)
	}
	// Two binary packages of one source package: one component.
	add("libfoo1", "foo", 100<<10)
	add("foo-bin", "foo", 50<<10)
	pkgs[len(pkgs)-1].files["/etc/foo.conf"] = 100
	return pkgs
}

func releaseTree(t *testing.T, store *ostree.Store, bumped string) *ostree.Tree {
	return releaseTreeOf(t, store, releasePackages(bumped))
}

// releaseTreeOf is releaseTree's image with other packages.
func releaseTreeOf(t *testing.T, store *ostree.Store, pkgs []dpkgPkg) *ostree.Tree {
	b := newTestTree(t, store)
	b.addDpkg(pkgs)
	b.sized("/usr/lib/modules/6.1.0/vmlinuz", 8<<20, "kernel")
	b.sized("/usr/lib/modules/6.1.0/initramfs.img", 20<<20, "initramfs")
	b.sized("/usr/share/big-unowned.dat", 3<<20, "big")
	b.file("/usr/etc/hostname", []byte("box\n"))
	b.file("/usr/etc/machine-info", []byte("x\n"))
	b.symlink("/bin", "usr/bin")
	return b.finalize()
}

func TestPlanOwnership(t *testing.T) {
	store, err := ostree.OpenStore(t.TempDir())
	require.NoError(t, err)
	tree := releaseTree(t, store, "")
	var warnings []string
	p, err := NewPlan(context.Background(), tree, store, Options{MaxLayers: 16, Warn: func(s string) { warnings = append(warnings, s) }})
	require.NoError(t, err)
	checkPlan(t, tree, p, 16)
	tests := []struct{ path, component string }{
		{"/usr/lib/firmware/f0", "firmware"},
		{"/usr/lib/kernel-modules/f0", "linux"}, // grouped by source package
		{"/usr/lib/libfoo1/f0", "foo"},          // two binaries, one source
		{"/usr/lib/foo-bin/f0", "foo"},          //
		{"/usr/etc/foo.conf", "foo"},            // /etc paths live in /usr/etc
		{"/usr/lib/modules/6.1.0/initramfs.img", KernelComponent},
		{"/usr/lib/modules/6.1.0/vmlinuz", KernelComponent},
		{"/var/lib/dpkg/status", PackageDBComponent},
		{"/var/lib/dpkg/info/foo-bin.md5sums", "foo"}, // a package's dpkg metadata is its own
		{"/var/lib/dpkg/info/pkg07.list", "pkg07"},
		{"/usr/share/big-unowned.dat", bigFilePrefix + "/usr/share/big-unowned.dat"},
		{"/usr/etc/hostname", UnclaimedComponent},
	}
	for _, tc := range tests {
		l, ok := ownerOf(p, tc.path)
		require.True(t, ok, tc.path)
		assert.Contains(t, l.Components, tc.component, "owner of %s (layer %q)", tc.path, l.Name)
	}
	// The kernel, the package database and big components each have a layer alone.
	for _, c := range []string{KernelComponent, PackageDBComponent, "firmware", "linux"} {
		ci := componentOf(p, c)
		require.NotNil(t, ci, c)
		require.Len(t, ci.Layers, 1, c)
		assert.Equal(t, []string{c}, p.Layers[ci.Layers[0]].Components, "%s alone", c)
	}
	// No layer is wasted: a fresh plan keeps no empty bin for new components (the next
	// build repacks layers that change anyway).
	for _, l := range p.Layers {
		assert.NotEmpty(t, l.Components, "layer %q", l.Name)
	}
	assert.Empty(t, warnings)
	label := p.Labels[PlanLabel]
	require.NotEmpty(t, label)
	rec, err := decodePlanRecord(label)
	require.NoError(t, err)
	assert.Equal(t, len(p.Layers), rec.Layers)
	assert.Len(t, rec.Components, len(p.Components))
}

// TestTwoReleases: one package changes between two builds.
func TestTwoReleases(t *testing.T) {
	store, err := ostree.OpenStore(t.TempDir())
	require.NoError(t, err)
	ctx := context.Background()
	const maxLayers = 16
	v1 := releaseTree(t, store, "")
	p1, err := NewPlan(ctx, v1, store, Options{MaxLayers: maxLayers})
	require.NoError(t, err)
	v2 := releaseTree(t, store, "pkg07")

	pkgLayer := func(p *Plan) string {
		l, ok := ownerOf(p, "/usr/lib/pkg07/f0")
		require.True(t, ok)
		return layerKey(l)
	}
	names := func(ls []Layer) []string {
		var out []string
		for _, l := range ls {
			out = append(out, strings.Join(l.Components, ","))
		}
		return out
	}
	for _, tc := range []struct {
		name         string
		label, annot bool
		plain        bool // a plain image: no commit layer before the chunks
	}{
		{"label and annotations", true, true, false},
		{"label only (annotations lost on push)", true, false, false},
		{"annotations only (rpm-ostree style)", false, true, false},
		{"plain, label and annotations", true, true, true},
		{"plain, label only", true, false, true},
		{"plain, annotations only", false, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prev := asPrevious("v1", p1, tc.label, tc.annot)
			if tc.plain {
				prev.Layers = prev.Layers[1:]
			} else if tc.label {
				prev.Labels["ostree.commit"] = "0123"
			}
			p2, err := NewPlan(ctx, v2, store, Options{MaxLayers: maxLayers, Previous: []Previous{prev}})
			require.NoError(t, err)
			checkPlan(t, v2, p2, maxLayers)
			assert.Equal(t, "v1", p2.FromPrevious)
			changed := changedLayers(p1, p2)
			require.Len(t, names(changed), 2, "changed layers")
			keys := []string{layerKey(changed[0]), layerKey(changed[1])}
			assert.Contains(t, keys, pkgLayer(p2), "the bumped package's layer changed")
			l, _ := ownerOf(p2, "/var/lib/dpkg/status")
			assert.Contains(t, keys, layerKey(l), "the package database changed")
			l, _ = ownerOf(p2, "/var/lib/dpkg/info/pkg07.md5sums")
			assert.Equal(t, pkgLayer(p2), layerKey(l), "the bumped package's md5sums are in its layer")
			// Same layer order: position of every unchanged layer is kept.
			for i := range p1.Layers {
				if i < len(p2.Layers) && layerKey(p1.Layers[i]) != layerKey(p2.Layers[i]) {
					k := layerKey(p2.Layers[i])
					assert.Contains(t, keys, k, "layer %d moved", i)
				}
			}
			if tc.label {
				ci := componentOf(p2, "pkg07")
				require.NotNil(t, ci)
				assert.True(t, ci.Changed, "history sees pkg07 changed")
				assert.False(t, componentOf(p2, "firmware").Changed)
			}
		})
	}
	t.Run("no previous build", func(t *testing.T) {
		p2, err := NewPlan(ctx, v2, store, Options{MaxLayers: maxLayers})
		require.NoError(t, err)
		changed := changedLayers(p1, p2)
		for _, l := range changed {
			for _, c := range []string{"firmware", "linux", "llvm", KernelComponent} {
				assert.NotContains(t, l.Components, c, "untouched large component %s keeps its layer", c)
			}
		}
		assert.LessOrEqual(t, len(changed), 3, "changed layers: %v", names(changed))
	})
}

// TestNewComponentAtFullBudget: the previous build used every layer and a new big
// file arrives; the layers changed to make room hold little besides the new file.
// (This small tree did not trigger the merge bug the 2 GB bench found, which
// TestMergeCheapestKeepsStableLayers reproduces; this covers the end-to-end path.)
func TestNewComponentAtFullBudget(t *testing.T) {
	store, err := ostree.OpenStore(t.TempDir())
	require.NoError(t, err)
	ctx := context.Background()
	v1 := releaseTree(t, store, "")
	const maxLayers = 6 // every layer used, several shared by many packages
	p1, err := NewPlan(ctx, v1, store, Options{MaxLayers: maxLayers})
	require.NoError(t, err)
	require.Len(t, p1.Layers, maxLayers)

	b := newTestTree(t, store)
	b.addDpkg(releasePackages(""))
	b.sized("/usr/lib/modules/6.1.0/vmlinuz", 8<<20, "kernel")
	b.sized("/usr/lib/modules/6.1.0/initramfs.img", 20<<20, "initramfs")
	b.sized("/usr/share/big-unowned.dat", 3<<20, "big")
	b.file("/usr/etc/hostname", []byte("box\n"))
	b.file("/usr/etc/machine-info", []byte("x\n"))
	b.symlink("/bin", "usr/bin")
	b.sized("/usr/share/new-model.bin", 2<<20, "new") // a new big-file component
	v2 := b.finalize()
	for _, label := range []bool{true, false} {
		p2, err := NewPlan(ctx, v2, store, Options{MaxLayers: maxLayers, Previous: []Previous{asPrevious("v1", p1, label, true)}})
		require.NoError(t, err)
		checkPlan(t, v2, p2, maxLayers)
		var changedOld int64
		for _, l := range changedLayers(p1, p2) {
			if !slices.Contains(l.Components, "file:/usr/share/new-model.bin") {
				changedOld += l.Size
			}
		}
		assert.Less(t, changedOld, int64(4<<20), "label=%v: bytes of previous layers changed to make room", label)
	}
}

// TestMergeCheapestKeepsStableLayers reproduces the 2 GB benchmark's rebuild: 292
// small packages share one 600 MB layer (together they change in nearly every upgrade,
// by the model), the package database has a tiny layer of its own, and a new 5 MB file
// needs a place. Merging the tiny layer into the big one adds almost no expected bytes
// but would make this upgrade download the 600 MB.
func TestMergeCheapestKeepsStableLayers(t *testing.T) {
	var items []packItem
	var shared []unitRef
	for i := range 292 {
		items = append(items, packItem{name: fmt.Sprintf("src%04d", i), size: 2 << 20, p: 0.09})
		shared = append(shared, unitRef{item: i})
	}
	items = append(items,
		packItem{name: PackageDBComponent, size: 100 << 10, p: 0.8},
		packItem{name: "src-large", size: 50 << 20, p: 0.09},
		packItem{name: "file:/new", size: 5 << 20, p: 0.5})
	n := len(items)
	bins := []*pbin{
		{kind: binTier, units: shared, prev: 1},
		{kind: binSingle, units: []unitRef{{item: n - 3}}, prev: 2},
		{kind: binSingle, units: []unitRef{{item: n - 2}}, prev: 3},
		{kind: binNew, units: []unitRef{{item: n - 1}}},
	}
	pp := &priorPacker{items: items, bins: bins}
	require.True(t, pp.mergeCheapest())
	require.Len(t, pp.bins, 3)
	assert.Len(t, pp.bins[0].units, 292, "the big stable layer is untouched")
	assert.Len(t, pp.bins[2].units, 1, "the large stable layer is untouched")
}

// TestIssue9 embeds container images (one file per blob) in an exclusive component;
// replacing one blob changes only its layer and the component's small-files layer.
func TestIssue9(t *testing.T) {
	store, err := ostree.OpenStore(t.TempDir())
	require.NoError(t, err)
	ctx := context.Background()
	build := func(replaced bool) *ostree.Tree {
		b := newTestTree(t, store)
		b.addDpkg(releasePackages("")[:10])
		root := "/usr/lib/containers/images"
		b.dir(root).Meta.Xattrs = ostree.Xattrs{{Name: XattrComponent, Value: []byte("containers")}}
		for img := 0; img < 2; img++ {
			var manifest strings.Builder
			for blob := 0; blob < 3; blob++ {
				seed := fmt.Sprintf("img%d-blob%d", img, blob)
				if replaced && img == 0 && blob == 1 {
					seed += "-v2"
				}
				data := pseudoRandom(20<<20+blob<<20, seed)
				name := fmt.Sprintf("%x", sha256.Sum256(data))
				b.file(fmt.Sprintf("%s/img%d/%s", root, img, name), data)
				fmt.Fprintln(&manifest, name)
			}
			b.file(fmt.Sprintf("%s/img%d/manifest.json", root, img), []byte(manifest.String()))
			b.file(fmt.Sprintf("%s/img%d/version", root, img), []byte("Directory Transport Version: 1.1\n"))
		}
		return b.finalize()
	}
	v1, v2 := build(false), build(true)
	p1, err := NewPlan(ctx, v1, store, Options{})
	require.NoError(t, err)
	checkPlan(t, v1, p1, DefaultMaxLayers)
	ci := componentOf(p1, "containers")
	require.NotNil(t, ci)
	require.True(t, ci.Exclusive)
	require.Len(t, ci.Layers, 7, "six blob layers and one small-files layer")
	for _, li := range ci.Layers {
		assert.Equal(t, []string{"containers"}, p1.Layers[li].Components)
	}
	for _, tc := range []struct {
		name string
		prev []Previous
	}{
		{"with previous build", []Previous{asPrevious("v1", p1, true, true)}},
		{"without previous build", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p2, err := NewPlan(ctx, v2, store, Options{Previous: tc.prev})
			require.NoError(t, err)
			checkPlan(t, v2, p2, DefaultMaxLayers)
			changed := changedLayers(p1, p2)
			var cn []string
			for _, l := range changed {
				cn = append(cn, l.Name)
			}
			require.Len(t, cn, 2, "new blob layer and small-files layer")
			var sawBlob, sawSmall bool
			for _, l := range changed {
				assert.Equal(t, []string{"containers"}, l.Components)
				for _, f := range l.Files {
					if strings.HasSuffix(f.Path(), "manifest.json") {
						sawSmall = true
					}
				}
				if len(l.Files) == 1 && l.Size >= 20<<20 {
					sawBlob = true
				}
			}
			assert.True(t, sawBlob && sawSmall, "changed: %v", cn)
		})
	}
}

func TestPlanErrors(t *testing.T) {
	ctx := context.Background()
	store, err := ostree.OpenStore(t.TempDir())
	require.NoError(t, err)
	b := newTestTree(t, store)
	for i := 0; i < 6; i++ {
		b.file(fmt.Sprintf("/opt/c%d/file", i), []byte{byte(i)}, ostree.Xattr{Name: XattrComponent, Value: []byte(fmt.Sprintf("c%d", i))})
	}
	b.file("/usr/bin/tool", []byte("x"))
	tree := b.finalize()

	_, err = NewPlan(ctx, tree, store, Options{MaxLayers: 3})
	require.ErrorContains(t, err, "at least 4 layers")
	_, err = NewPlan(ctx, tree, store, Options{MaxLayers: 5})
	require.ErrorContains(t, err, "6 exclusive components")
	p, err := NewPlan(ctx, tree, store, Options{MaxLayers: 7})
	require.NoError(t, err, "6 exclusive + 1 shared layer fit without a reserved bin")
	checkPlan(t, tree, p, 7)

	empty := newTestTree(t, store).finalize()
	p, err = NewPlan(ctx, empty, store, Options{})
	require.NoError(t, err, "an empty tree plans")
	checkPlan(t, empty, p, DefaultMaxLayers)
}

func TestXattrComponents(t *testing.T) {
	store, err := ostree.OpenStore(t.TempDir())
	require.NoError(t, err)
	b := newTestTree(t, store)
	b.dir("/opt/app").Meta.Xattrs = ostree.Xattrs{{Name: XattrComponent, Value: []byte("app")}, {Name: XattrUpdateInterval, Value: []byte("daily")}}
	b.file("/opt/app/bin/app", []byte("app"))
	b.file("/opt/app/data/big.db", []byte("db"), ostree.Xattr{Name: XattrComponent, Value: []byte("app-data")})
	b.dir("/opt/app/plugins").Meta.Xattrs = ostree.Xattrs{{Name: XattrComponent, Value: []byte("plugins,extra")}}
	b.file("/opt/app/plugins/p.so", []byte("p"))
	// Same content in two exclusive components is kept in each.
	b.file("/opt/app/LICENSE", []byte("same"))
	b.file("/usr/share/LICENSE", []byte("same"))
	tree := b.finalize()
	p, err := NewPlan(context.Background(), tree, store, Options{})
	require.NoError(t, err)
	checkPlan(t, tree, p, DefaultMaxLayers)
	for path, want := range map[string]string{
		"/opt/app/bin/app": "app", "/opt/app/data/big.db": "app-data", "/opt/app/plugins/p.so": "plugins_extra",
		"/opt/app/LICENSE": "app", "/usr/share/LICENSE": UnclaimedComponent,
	} {
		l, ok := ownerOf(p, path)
		require.True(t, ok)
		assert.Equal(t, []string{want}, l.Components, path)
	}
	app := componentOf(p, "app")
	assert.InDelta(t, 1-0.00091188, app.ChangeProbability, 0.01, "daily updates: changes in nearly every weekly upgrade")

	for v, want := range map[string]float64{"weekly": 52, "monthly": 12, "14": 365.0 / 14, "30d": 365.0 / 30} {
		got, err := parseUpdateInterval(v)
		require.NoError(t, err, v)
		assert.InDelta(t, want, got, 1e-9, v)
	}
	for _, v := range []string{"", "sometimes", "-3", "NaN", "0"} {
		_, err := parseUpdateInterval(v)
		assert.Error(t, err, v)
	}
}

func TestFillLayers(t *testing.T) {
	file := &ostree.File{Header: &ostree.FileHeader{}}
	list := func(names ...string) []FileRef {
		out := make([]FileRef, len(names))
		for i, n := range names {
			out[i] = FileRef{Dir: "/usr/", Name: n, File: file}
		}
		return out
	}
	for _, c := range []struct {
		name string
		// runs are each component's [at, end) in the list of files a..e; main its bin.
		runs    [][2]int
		main    []int
		foreign bool // the first component's files are a copy, not a run
		want    [][]string
		err     string
	}{
		{name: "runs", runs: [][2]int{{0, 2}, {2, 3}, {3, 5}}, main: []int{1, 0, 1},
			want: [][]string{{"c"}, {"a", "b", "d", "e"}}},
		{name: "empty component", runs: [][2]int{{0, 0}, {0, 5}}, main: []int{0, 1},
			want: [][]string{nil, {"a", "b", "c", "d", "e"}}},
		{name: "overlap", runs: [][2]int{{0, 3}, {2, 4}}, main: []int{0, 1}, err: "shares files"},
		{name: "gap", runs: [][2]int{{0, 2}, {3, 5}}, main: []int{0, 1}, err: "hold 4 files of 5"},
		{name: "not a run", runs: [][2]int{{0, 2}, {2, 5}}, main: []int{0, 1}, foreign: true, err: "not a run"},
		{name: "past the end", runs: [][2]int{{0, 2}, {4, 7}}, main: []int{0, 1}, err: "not a run"},
	} {
		t.Run(c.name, func(t *testing.T) {
			files := list("a", "b", "c", "d", "e")
			lb := &layerBuilder{files: files, bins: []*pbin{{}, {}}, mainBin: c.main,
				partBin: make([]map[ostree.Checksum]int, len(c.runs))}
			for i, r := range c.runs {
				comp := &component{name: fmt.Sprint("c", i), at: r[0]}
				if r[1] <= len(files) {
					comp.files = files[r[0]:r[1]]
				} else {
					comp.files = list("x", "y", "z")
				}
				if c.foreign && i == 0 {
					comp.files = slices.Clone(comp.files)
				}
				lb.comps = append(lb.comps, comp)
			}
			layers, err := lb.fillLayers()
			if c.err != "" {
				require.ErrorContains(t, err, c.err)
				return
			}
			require.NoError(t, err)
			var got [][]string
			for _, l := range layers {
				var names []string
				for _, fe := range l.Files {
					names = append(names, fe.Name)
				}
				slices.Sort(names)
				got = append(got, names)
				assert.Equal(t, len(l.Files), cap(l.Files), "a layer's list must not grow into the next")
			}
			assert.Equal(t, c.want, got)
			for i, r := range c.runs {
				assert.Equal(t, r[1]-r[0], lb.nfiles[i])
				assert.Nil(t, lb.comps[i].files)
			}
		})
	}
}

// TestChunkahPreviousBuild: a previous build chunkah wrote (plain, no plan label, each
// layer's components in org.chunkah.component as "dpkg/NAME", its catch-all as
// chunkah/unclaimed) gives the layout: the packages keep their layers and the bumped
// package's layer is one of the few that change.
func TestChunkahPreviousBuild(t *testing.T) {
	store, err := ostree.OpenStore(t.TempDir())
	require.NoError(t, err)
	ctx := context.Background()
	const maxLayers = 16
	p1, err := NewPlan(ctx, releaseTree(t, store, ""), store, Options{MaxLayers: maxLayers})
	require.NoError(t, err)
	prev := Previous{Ref: "chunkah", Labels: map[string]string{}}
	for _, l := range p1.Layers {
		var fields []string
		for _, c := range l.Components {
			switch {
			case c == UnclaimedComponent:
				fields = append(fields, "chunkah/unclaimed")
			case strings.ContainsAny(c, "/:"):
				fields = append(fields, "bigfiles/"+strings.ReplaceAll(c, "/", "_"))
			default:
				fields = append(fields, "dpkg/"+c)
			}
		}
		prev.Layers = append(prev.Layers, PreviousLayer{Annotations: map[string]string{ChunkahComponentAnnotation: strings.Join(fields, " ")}})
	}
	v2 := releaseTree(t, store, "pkg07")
	p2, err := NewPlan(ctx, v2, store, Options{MaxLayers: maxLayers, Previous: []Previous{prev}})
	require.NoError(t, err)
	checkPlan(t, v2, p2, maxLayers)
	assert.Equal(t, "chunkah", p2.FromPrevious)
	changed := changedLayers(p1, p2)
	assert.LessOrEqual(t, len(changed), 4, "layers changed: %v", changed)
	l, ok := ownerOf(p2, "/usr/lib/pkg07/f0")
	require.True(t, ok)
	var keys []string
	for _, c := range changed {
		keys = append(keys, layerKey(c))
	}
	assert.Contains(t, keys, layerKey(l), "the bumped package's layer changed")
}

func TestLayerComponents(t *testing.T) {
	for _, c := range []struct {
		name string
		ann  map[string]string
		want []string
		ok   bool
	}{
		{"none", nil, nil, false},
		{"ours", map[string]string{ComponentsAnnotation: "bash,glibc"}, []string{"bash", "glibc"}, true},
		{"ours, reserved", map[string]string{ComponentsAnnotation: ""}, nil, true},
		{"chunkah", map[string]string{ChunkahComponentAnnotation: "rpm/kernel rpm/curl chunkah/unclaimed"},
			[]string{"kernel", "curl", UnclaimedComponent}, true},
		{"chunkah big file", map[string]string{ChunkahComponentAnnotation: "bigfiles/rpmdb.sqlite"}, []string{"chunkah:bigfiles/rpmdb.sqlite"}, true},
		{"ours first", map[string]string{ComponentsAnnotation: "a", ChunkahComponentAnnotation: "rpm/b"}, []string{"a"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := layerComponents(PreviousLayer{Annotations: c.ann})
			assert.Equal(t, c.ok, ok)
			assert.Equal(t, c.want, got)
		})
	}
}
