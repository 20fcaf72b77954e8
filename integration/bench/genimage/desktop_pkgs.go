package main

import "fmt"

// fixedPkg is a package every desktop image has, named as in Fedora.
type fixedPkg struct {
	name, source string
	role         role
	layer        int
}

func fixedPkgs() []fixedPkg {
	pkgs := []fixedPkg{
		{"kernel-core", "kernel", roleKernel, layerKernel},
		{"kernel-modules-core", "kernel", roleKernel, layerKernel},
		{"kernel-modules", "kernel", roleKernel, layerKernel},
		{"kernel-modules-extra", "kernel", roleKernel, layerKernel},
		{"python3-libs", "python3.13", rolePython, layerBase},
		{"hicolor-icon-theme", "hicolor-icon-theme", roleTheme, layerBase},
		{"adwaita-icon-theme", "adwaita-icon-theme", roleTheme, layerBase},
		{"breeze-icon-theme", "breeze-icons", roleTheme, layerApps},
		{"papirus-icon-theme", "papirus-icon-theme", roleTheme, layerApps},
	}
	for _, fw := range firmwareDirs() {
		src := "linux-firmware"
		if fw.pkg == "alsa-sof-firmware" {
			src = fw.pkg
		}
		pkgs = append(pkgs, fixedPkg{fw.pkg, src, roleFirmware, layerKernel})
	}
	return pkgs
}

// addPackages creates the fixed packages and about n more from generated source
// packages, each building one to three binary packages as Fedora's do.
func (d *desktop) addPackages(n int) {
	for _, f := range fixedPkgs() {
		d.addPkg(f.name, f.source, f.name, f.role, f.layer)
	}
	// The first sources cover every role, so small images have each kind of package.
	for i := 0; len(d.pkgs) < n+len(fixedPkgs()); i++ {
		ro := []role{roleApp, roleLib, rolePython, roleFont}[min(i, 3)]
		if i >= 4 {
			ro = d.sourceRole()
		}
		layer := layerBase
		if d.r.IntN(5) == 0 {
			layer = layerApps
		}
		d.addSource(ro, layer)
	}
}

func (d *desktop) sourceRole() role {
	switch x := d.r.IntN(100); {
	case x < 50:
		return roleApp
	case x < 78:
		return roleLib
	case x < 94:
		return rolePython
	}
	return roleFont
}

// addSource adds the binary packages of one generated source package.
func (d *desktop) addSource(ro role, layer int) {
	w := d.word()
	switch ro {
	case roleApp:
		stem := []string{"", "gnome-", "kf6-", "plasma-", "kde-", "gtk-", "xdg-", "qt6-"}[d.r.IntN(8)] + w
		d.addPkg(stem, stem, stem, roleApp, layer)
		if d.r.IntN(10) < 4 {
			d.addPkg(stem+"-libs", stem, stem, roleLib, layer)
		}
		if d.r.IntN(10) < 2 {
			d.addPkg(stem+"-data", stem, stem, roleApp, layer)
		}
	case roleLib:
		d.addPkg("lib"+w, w, w, roleLib, layer)
		if d.r.IntN(10) < 3 {
			d.addPkg("lib"+w+"-tools", w, w+"-tools", roleApp, layer)
		}
	case rolePython:
		d.addPkg("python3-"+w, "python-"+w, w, rolePython, layer)
	case roleFont:
		d.addPkg(w+"-fonts", w+"-fonts", w, roleFont, layer)
	}
}

// addPkg adds a binary package unless the name is taken.
func (d *desktop) addPkg(name, source, stem string, ro role, layer int) {
	if _, dup := d.pkgIdx[name]; dup {
		return
	}
	version := fmt.Sprintf("%d.%d.%d-%d.fc42", d.r.IntN(50), d.r.IntN(30), d.r.IntN(10), 1+d.r.IntN(5))
	d.pkgIdx[name] = len(d.pkgs)
	d.byRole[ro] = append(d.byRole[ro], len(d.pkgs))
	d.pkgs = append(d.pkgs, desktopPkg{pkg: pkg{name: name, source: source, version: version}, role: ro, layer: layer, stem: stem})
}
