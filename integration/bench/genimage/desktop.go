package main

// The desktop profile models a Fedora Atomic desktop image as Universal Blue builds
// them (Aurora, Bluefin, Bazzite): far more and far smaller files than a server
// (icon themes, translations, Python), a kernel with thousands of compressed modules,
// compressed firmware, big incompressible data shipped in the image (local AI models,
// a preinstalled flatpak runtime) and physically bound container images in a
// directory marked with user.component. Packages are recorded in the same dpkg
// database the server profile writes, because that is what the planner reads.

import (
	"archive/tar"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
)

// Layers of a desktop build, below the top layer that -change rewrites.
const (
	layerBase   = iota // the base OS image: most packages
	layerApps          // desktop applications and the big data shipped with them
	layerKernel        // kernel, modules and firmware (replaced with each kernel update)
	layerBound         // physically bound container images
	desktopLayers
)

// The desktop mix. Categories of many small files get a share of the file budget,
// categories of big files a share of the byte budget; ordinary package content
// (binaries, documentation, data, fonts: "other") fills what is left of both.
const (
	iconFileShare     = 0.30
	localeFileShare   = 0.20
	pythonFileShare   = 0.14
	kmodFileShare     = 0.02
	boundFileShare    = 0.02
	libByteShare      = 0.20
	firmwareByteShare = 0.08
	boundByteShare    = 0.05
)

// desktopFiles is the default file count of the desktop profile: 40k per GiB, as an
// Aurora image has about 320k files in 8 GiB, and at least 3000.
func desktopFiles(size int64) int {
	return max(int(40000*float64(size)/(1<<30)), 3000)
}

// category groups files for the report.
type category uint8

const (
	catOther category = iota
	catIcon
	catLocale
	catPython
	catLib
	catFirmware
	catKernel
	catBlob
	catBound
	catCount
)

func (c category) String() string {
	return [...]string{"other", "icons", "locales", "python", "libraries", "firmware", "kernel", "blobs", "bound-images"}[c]
}

// item is one file or symlink of the desktop tree. Two items with the same seed, size,
// kind, format and aux have the same bytes: that is how duplicates are made.
type item struct {
	file
	format format
	aux    int32 // format detail (an icon's pixel size, a .pyc's source size)
	cat    category
	pkg    int32  // owning package (index into desktop.pkgs), -1 if unowned
	link   string // symlink target; a symlink has no content
	text   string // literal content, when not generated
}

// role says which kind of content a package ships.
type role uint8

const (
	roleApp role = iota
	roleLib
	rolePython
	roleFont
	roleKernel
	roleFirmware
	roleTheme
	roleCount
)

type desktopPkg struct {
	pkg
	role  role
	layer int
	stem  string // the name without role prefixes, for the package's file names
}

// mark is a directory written with extended attributes.
type mark struct {
	path  string
	layer int
	pax   map[string]string
}

// desktop builds the file list of a desktop image; content is only generated when the
// layers are written.
type desktop struct {
	size    int64 // byte budget of all files
	n       int   // file budget
	r       *rand.Rand
	items   []item
	marks   []mark
	seen    map[string]bool
	files   int   // regular files so far
	bytes   int64 // bytes of regular files so far
	pkgs    []desktopPkg
	pkgIdx  map[string]int
	byRole  [roleCount][]int
	hasDist map[int]bool // Python packages whose dist-info is written
}

// newDesktop lays out a desktop image of about size bytes in about n files. The order
// of the steps is part of the output: each draws from the same random stream.
func newDesktop(size int64, n int) *desktop {
	d := &desktop{size: size, n: n, r: rand.New(rand.NewPCG(4242, uint64(size)^uint64(n)<<40)),
		seen: map[string]bool{}, pkgIdx: map[string]int{}, hasDist: map[int]bool{}}
	d.addPackages(min(max(n/150, 30), 2150))
	d.addKernel(max(int(kmodFileShare*float64(n)), 20))
	d.addFirmware(int64(firmwareByteShare * float64(size)))
	d.addLibs(int64(libByteShare * float64(size)))
	d.addPython(max(int(pythonFileShare*float64(n)), 60))
	d.addLocales(max(int(localeFileShare*float64(n)), 100))
	d.addIcons(max(int(iconFileShare*float64(n)), 150))
	d.addBlobs()
	d.addBoundImages(max(int(boundFileShare*float64(n)), 40), int64(boundByteShare*float64(size)))
	d.addOther()
	return d
}

// newItem is a regular file with fresh content.
func (d *desktop) newItem(p string, size int64, k kind, f format, c category) item {
	return item{file: file{path: p, size: size, kind: k, mode: 0o644, seed: d.r.Uint64()}, format: f, cat: c}
}

// textItem is a small file with the given content.
func textItem(p, content string, c category) item {
	return item{file: file{path: p, size: int64(len(content)), mode: 0o644}, text: content, cat: c}
}

// own adds it as a file of package p, in p's layer; false if the path is taken.
func (d *desktop) own(p int, it item) bool {
	it.pkg, it.layer = int32(p), d.pkgs[p].layer
	return d.add(it)
}

// unowned adds it, in no package, to layer.
func (d *desktop) unowned(layer int, it item) bool {
	it.pkg, it.layer = -1, layer
	return d.add(it)
}

func (d *desktop) add(it item) bool {
	if d.seen[it.path] {
		return false
	}
	d.seen[it.path] = true
	if it.link == "" {
		d.files++
		d.bytes += it.size
	}
	d.items = append(d.items, it)
	return true
}

// symlink is a link at p to target.
func symlink(p, target string, c category) item {
	return item{file: file{path: p, mode: 0o777}, link: target, cat: c}
}

func (d *desktop) word() string { return vocabulary[d.r.IntN(len(vocabulary))] }

// hexID is a 64-digit hex identifier (a digest or a storage layer id).
func (d *desktop) hexID() string {
	return fmt.Sprintf("%016x%016x%016x%016x", d.r.Uint64(), d.r.Uint64(), d.r.Uint64(), d.r.Uint64())
}

// pick returns a random package of role ro.
func (d *desktop) pick(ro role) int {
	pool := d.byRole[ro]
	return pool[d.r.IntN(len(pool))]
}

// pickOwner returns an application package or, less often, a library.
func (d *desktop) pickOwner() int {
	if d.r.IntN(3) == 0 {
		return d.pick(roleLib)
	}
	return d.pick(roleApp)
}

// write writes the image's layers plus the top layer into the OCI layout root.
func (d *desktop) write(root, tag string, changeSize int64, changeSeed int) error {
	return writeLayout(root, tag, append(d.layers(), topLayer(changeSize, changeSeed)))
}

// layers turns the items into tar entries per layer and adds the package database.
func (d *desktop) layers() [][]entry {
	layers := make([][]entry, desktopLayers)
	for _, it := range d.items {
		layers[it.layer] = append(layers[it.layer], it.entry())
	}
	for _, m := range d.marks {
		layers[m.layer] = append(layers[m.layer], entry{path: m.path, mode: 0o755, typeflag: tar.TypeDir, pax: m.pax})
	}
	d.addPkgDB(layers)
	osRelease := "NAME=\"Bench Desktop\"\nID=benchos\nVARIANT_ID=desktop\nVERSION_ID=1\n"
	layers[layerBase] = append(layers[layerBase],
		textEntry("usr/lib/os-release", osRelease), textEntry("etc/os-release", osRelease))
	return layers
}

// addPkgDB writes the package database the way a layered build leaves it: each layer
// that installs packages adds their file lists and rewrites the status file, which then
// lists every package installed so far.
func (d *desktop) addPkgDB(layers [][]entry) {
	owned := d.ownedFiles()
	var installed []pkg
	for layer := range layers {
		n := len(installed)
		for i, p := range d.pkgs {
			if p.layer != layer || len(owned[i]) == 0 {
				continue // a package without files is left out rather than listed empty
			}
			pk := p.pkg
			pk.files = owned[i]
			installed = append(installed, pk)
			layers[layer] = append(layers[layer], dpkgList(pk))
		}
		if len(installed) > n {
			layers[layer] = append(layers[layer], dpkgStatus(installed))
		}
	}
}

// ownedFiles lists each package's files as the database spells them.
func (d *desktop) ownedFiles() [][]string {
	owned := make([][]string, len(d.pkgs))
	for _, it := range d.items {
		if it.pkg >= 0 {
			owned[it.pkg] = append(owned[it.pkg], "/"+it.path)
		}
	}
	return owned
}

// entry is the tar entry of it; content is generated as the layer is written.
func (it item) entry() entry {
	switch {
	case it.link != "":
		return entry{path: it.path, mode: it.mode, typeflag: tar.TypeSymlink, linkname: it.link}
	case it.text != "":
		return textEntry(it.path, it.text)
	}
	return entry{path: it.path, size: it.size, mode: it.mode, body: it.open}
}

// open streams its bytes: the format's head, generated content and the format's tail,
// cut to the file's size.
func (it item) open() io.Reader {
	head, tail := it.format.frame(it.aux, it.size)
	body := it.file
	body.size = max(it.size-int64(len(head)+len(tail)), 0)
	chunk := int(min(max((body.size+7)&^7, 8), 64<<10))
	content := newChunkedContent(body, chunk)
	return io.LimitReader(io.MultiReader(strings.NewReader(head), content, strings.NewReader(tail)), it.size)
}
