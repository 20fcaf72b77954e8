package main

import (
	"fmt"
	"strings"
)

const kernelVersion = "6.14.9-300.fc42.x86_64"

// addKernel adds the kernel, about kmods compressed modules and the files depmod and
// dracut generate at build time (in no package).
func (d *desktop) addKernel(kmods int) {
	dir := "usr/lib/modules/" + kernelVersion
	core := d.pkgIdx["kernel-core"]
	d.own(core, d.newItem(dir+"/vmlinuz", clampSize(d.size/512, 64<<10, 16<<20), kindRandom, fmtBzImage, catKernel))
	d.own(core, d.newItem(dir+"/System.map", clampSize(d.size/900, 16<<10, 10<<20), kindText, fmtNone, catKernel))
	d.own(core, d.newItem(dir+"/config", clampSize(d.size/30000, 4<<10, 300<<10), kindText, fmtNone, catKernel))
	d.own(core, d.newItem(dir+"/symvers.xz", clampSize(d.size/25000, 4<<10, 400<<10), kindRandom, fmtXZ, catKernel))
	d.unowned(layerKernel, d.newItem(dir+"/initramfs.img", clampSize(d.size/80, 256<<10, 120<<20), kindRandom, fmtNone, catKernel))
	owners := []int{d.pkgIdx["kernel-modules-core"], d.pkgIdx["kernel-modules"], d.pkgIdx["kernel-modules-extra"]}
	subsystems := strings.Fields(kmodDirs)
	for start := d.files; d.files-start < kmods; {
		sub := subsystems[d.r.IntN(len(subsystems))]
		name := d.word()
		if d.r.IntN(3) == 0 {
			name += "_" + d.word()
		}
		// Half the modules are in kernel-modules, a third in -extra, the rest in -core.
		owner := owners[[]int{0, 1, 1, 1, 2, 2}[d.r.IntN(6)]]
		size := logUniform(d.r, 5<<10, 500<<10, 4)
		d.own(owner, d.newItem(dir+"/kernel/"+sub+"/"+name+".ko.xz", size, kindRandom, fmtXZ, catKernel))
	}
	for _, g := range []struct {
		name string
		per  int64
		k    kind
	}{{"modules.dep", 70, kindText}, {"modules.dep.bin", 90, kindBinary}, {"modules.alias", 250, kindText},
		{"modules.alias.bin", 300, kindBinary}, {"modules.symbols", 100, kindText}, {"modules.builtin", 10, kindText}} {
		d.unowned(layerKernel, d.newItem(dir+"/"+g.name, g.per*int64(kmods), g.k, fmtNone, catKernel))
	}
}

// addFirmware adds about budget bytes of firmware: mostly small xz-compressed files and
// a few big ones (GPU and Wi-Fi firmware), all incompressible, some uncompressed.
func (d *desktop) addFirmware(budget int64) {
	dirs := firmwareDirs()
	weights := make([]int, len(dirs))
	for i, fw := range dirs {
		weights[i] = fw.weight
	}
	bigMax := clampSize(budget/20, 64<<10, 30<<20)
	smallMean := clampSize(budget/40, 4<<10, 80<<10)
	for start := d.bytes; d.bytes-start < budget; {
		fw := dirs[pickWeighted(d.r, weights)]
		name := d.word() + "_" + d.word()
		var it item
		switch x := d.r.IntN(100); {
		case x < 3:
			it = d.newItem(name+".bin.xz", logUniform(d.r, bigMax/30, bigMax, 1), kindRandom, fmtXZ, catFirmware)
		case x < 78:
			it = d.newItem(name+".bin.xz", longTail(d.r, 1<<10, smallMean, 2<<20), kindRandom, fmtXZ, catFirmware)
		default:
			it = d.newItem(name+".fw", longTail(d.r, 1<<10, smallMean, 2<<20), kindBinary, fmtNone, catFirmware)
		}
		it.path = "usr/lib/firmware/" + fw.dir + "/" + it.path
		d.own(d.pkgIdx[fw.pkg], it)
	}
}

// addLibs adds about budget bytes of shared libraries: versioned sonames with their
// unversioned symlinks in usr/lib64, and plugins in subdirectories.
func (d *desktop) addLibs(budget int64) {
	mean := clampSize(budget/10, 64<<10, 480<<10)
	hi := clampSize(budget/40, 128<<10, 20<<20)
	for start, n := d.bytes, 0; d.bytes-start < budget || n < 8; n++ {
		p := d.pick(roleLib)
		if d.r.IntN(4) == 0 {
			p = d.pick(roleApp)
		}
		stem := strings.TrimPrefix(d.pkgs[p].stem, "lib")
		if d.r.IntN(2) == 0 {
			stem += "-" + d.word()
		}
		it := d.newItem("", longTail(d.r, 50<<10, mean, hi), kindBinary, fmtELF, catLib)
		it.mode = 0o755
		if d.r.IntN(10) < 3 {
			it.path = "usr/lib64/" + d.pluginDir(stem) + "/lib" + stem + ".so"
			d.own(p, it)
			continue
		}
		soname := fmt.Sprintf("lib%s.so.%d", stem, d.r.IntN(7))
		it.path = "usr/lib64/" + soname
		if d.own(p, it) {
			d.own(p, symlink("usr/lib64/lib"+stem+".so", soname, catLib))
		}
	}
}

// pluginDir is a directory of loadable modules below usr/lib64.
func (d *desktop) pluginDir(stem string) string {
	switch d.r.IntN(8) {
	case 0:
		return "qt6/plugins/" + d.word()
	case 1:
		return "gstreamer-1.0"
	case 2:
		return "kf6/" + d.word()
	case 3:
		return "gio/modules"
	case 4:
		return "spa-0.2/" + d.word()
	case 5:
		return "gtk-4.0/4.0.0/" + d.word()
	case 6:
		return "dri"
	}
	return stem
}

// addPython adds about files Python files: modules with their bytecode (.pyc and
// .opt-1.pyc, the latter often identical) in site-packages and the standard library.
func (d *desktop) addPython(files int) {
	for start := d.files; d.files-start < files; {
		d.addPythonPackage(d.pick(rolePython))
	}
}

// addPythonPackage adds one Python (sub)package of package p.
func (d *desktop) addPythonPackage(p int) {
	root := "usr/lib/python3.13/site-packages/" + d.pkgs[p].stem
	if d.pkgs[p].name == "python3-libs" {
		root = "usr/lib64/python3.13"
	} else if !d.hasDist[p] {
		d.hasDist[p] = true
		info := fmt.Sprintf("usr/lib/python3.13/site-packages/%s-%s.dist-info/", d.pkgs[p].stem, strings.Split(d.pkgs[p].version, "-")[0])
		d.own(p, d.newItem(info+"METADATA", logUniform(d.r, 1<<10, 20<<10, 1), kindText, fmtNone, catPython))
		d.own(p, d.newItem(info+"RECORD", logUniform(d.r, 512, 30<<10, 1), kindText, fmtNone, catPython))
		d.own(p, d.newItem(info+"top_level.txt", int64(len(d.pkgs[p].stem)+1), kindText, fmtNone, catPython))
		d.own(p, textItem(info+"INSTALLER", "rpm\n", catPython))
	}
	dir := root
	if d.r.IntN(3) > 0 {
		dir += "/" + d.word()
	}
	d.addModule(p, dir, "__init__")
	for k := 2 + d.r.IntN(24); k > 0; k-- {
		d.addModule(p, dir, d.word())
	}
}

// addModule adds name.py in dir and its bytecode in dir/__pycache__.
func (d *desktop) addModule(p int, dir, name string) {
	src := d.newItem(dir+"/"+name+".py", longTail(d.r, 64, 6<<10, 256<<10), kindText, fmtPython, catPython)
	if !d.own(p, src) {
		return
	}
	pyc := d.newItem(dir+"/__pycache__/"+name+".cpython-313.pyc", 16+src.size*int64(5+d.r.IntN(6))/10, kindBinary, fmtPyc, catPython)
	pyc.aux = int32(src.size)
	d.own(p, pyc)
	opt := pyc
	opt.path = dir + "/__pycache__/" + name + ".cpython-313.opt-1.pyc"
	if d.r.IntN(10) < 3 {
		opt.seed = d.r.Uint64() // the module has asserts or docstrings -O drops
	}
	d.own(p, opt)
}

// addLocales adds about files message catalogs: each application or library domain is
// translated into a share of the languages, popular ones more often.
func (d *desktop) addLocales(files int) {
	popular := strings.Fields(popularLangs)
	langs := append(popular, strings.Fields(otherLangs)...)
	pool := append(append([]int(nil), d.byRole[roleApp]...), d.byRole[roleLib]...)
	order := d.r.Perm(len(pool))
	for start, i := d.files, 0; d.files-start < files; i++ {
		p := pool[order[i%len(order)]]
		domain := d.pkgs[p].stem
		if i >= len(order) {
			domain += "_" + d.word() // KDE-style: many catalogs per package
		}
		base := logUniform(d.r, 1<<10, 60<<10, 1)
		cover := 0.15 + 0.85*d.r.Float64()
		for j, lang := range langs {
			if d.files-start >= files {
				break
			}
			if j >= len(popular) && d.r.Float64() >= 0.4 || d.r.Float64() >= cover {
				continue
			}
			size := clampSize(base/2+int64(float64(base/2)*d.r.Float64()), 1<<10, 60<<10)
			d.own(p, d.newItem("usr/share/locale/"+lang+"/LC_MESSAGES/"+domain+".mo", size, kindText, fmtMO, catLocale))
		}
	}
}

// addIcons adds about files icons in the themes of iconThemes, then each theme's
// index and cache.
func (d *desktop) addIcons(files int) {
	themes := iconThemes()
	weights := make([]int, len(themes))
	for i, th := range themes {
		weights[i] = th.weight
	}
	counts := map[string]int64{}
	for start := d.files; d.files-start < files; {
		th := themes[pickWeighted(d.r, weights)]
		d.addIconSet(th, counts)
	}
	for _, th := range themes {
		owner := d.pkgIdx[th.pkg]
		for _, name := range append([]string{th.name}, th.twins...) {
			dir := "usr/share/icons/" + name
			d.own(owner, d.newItem(dir+"/index.theme", logUniform(d.r, 2<<10, 40<<10, 1), kindText, fmtNone, catIcon))
			// gtk-update-icon-cache writes the cache when the image is built.
			d.unowned(d.pkgs[owner].layer, d.newItem(dir+"/icon-theme.cache", 1024+48*counts[name], kindBinary, fmtNone, catIcon))
		}
	}
}

// addIconSet adds one icon in all sizes of theme th and its variants. Variants (dark,
// light) and legacy aliases often have the very same bytes, as real themes do.
func (d *desktop) addIconSet(th iconTheme, counts map[string]int64) {
	owner := d.pkgIdx[th.pkg]
	cat := []string{"actions", "apps", "categories", "devices", "emblems", "mimetypes", "places", "status"}[d.r.IntN(8)]
	name := d.word() + "-" + d.word()
	if th.appIcons {
		owner, cat, name = d.pickOwner(), "apps", "org."+d.word()+"."+d.word()
	}
	alias := ""
	if d.r.IntN(8) == 0 {
		alias = "gtk-" + d.word()
	}
	for _, px := range th.sizes {
		if th.appIcons && d.r.IntN(10) < 4 {
			continue // applications ship a few of the sizes
		}
		it := d.icon(th, px)
		it.path = iconPath(th.name, px, cat, name, it.format)
		if !d.own(owner, it) {
			return
		}
		counts[th.name]++
		for _, twin := range th.twins {
			tw := it
			tw.path = iconPath(twin, px, cat, name, it.format)
			if d.r.IntN(10) < 4 {
				tw.seed = d.r.Uint64() // recoloured for this variant
			}
			if d.own(owner, tw) {
				counts[twin]++
			}
		}
		if alias != "" {
			al := it
			al.path = iconPath(th.name, px, cat, alias, it.format)
			if d.own(owner, al) {
				counts[th.name]++
			}
		}
	}
}

// icon is the content of an icon of px pixels (0: scalable, -1: symbolic): a PNG of
// 200 B to 8 KiB, or SVG text.
func (d *desktop) icon(th iconTheme, px int) item {
	switch {
	case px == -1:
		return d.newItem("", logUniform(d.r, 200, 2<<10, 1), kindText, fmtSVG, catIcon)
	case px == 0 || th.svg:
		it := d.newItem("", logUniform(d.r, 300, 8<<10, 1.5), kindText, fmtSVG, catIcon)
		it.aux = int32(max(px, 16))
		return it
	}
	p := int64(px)
	it := d.newItem("", logUniform(d.r, 200+12*p, min(600+40*p, 8<<10), 1), kindRandom, fmtPNG, catIcon)
	it.aux = int32(px)
	return it
}

func iconPath(theme string, px int, cat, name string, f format) string {
	size := fmt.Sprintf("%dx%d", px, px)
	switch px {
	case 0:
		size = "scalable"
	case -1:
		size, name = "symbolic", name+"-symbolic"
	}
	ext := ".png"
	if f == fmtSVG {
		ext = ".svg"
	}
	return "usr/share/icons/" + theme + "/" + size + "/" + cat + "/" + name + ext
}

// addBlobs adds the big data some desktop images ship instead of downloading it at first
// boot: local AI models and a preinstalled flatpak runtime. No package owns them.
func (d *desktop) addBlobs() {
	for _, b := range []struct {
		model string
		share float64
	}{{"llama3.2", 0.05}, {"qwen2.5-coder", 0.04}, {"", 0.045}} {
		size := int64(b.share * float64(d.size))
		if b.model == "" {
			d.unowned(layerApps, d.newItem("usr/share/flatpak/preinstall/org.freedesktop.Platform-x86_64-24.08.erofs", size, kindRandom, fmtNone, catBlob))
			continue
		}
		blob := "usr/share/ollama/models/blobs/sha256-" + d.hexID()
		d.unowned(layerApps, d.newItem(blob, size, kindRandom, fmtGGUF, catBlob))
		manifest := fmt.Sprintf(`{"schemaVersion":2,"layers":[{"mediaType":"application/vnd.ollama.image.model","digest":"%s","size":%d}]}`+"\n",
			strings.Replace(blob[strings.LastIndexByte(blob, '/')+1:], "-", ":", 1), size)
		d.unowned(layerApps, textItem("usr/share/ollama/models/manifests/registry.ollama.ai/library/"+b.model+"/latest", manifest, catBlob))
	}
}
