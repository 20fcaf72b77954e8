package main

import (
	"fmt"
	"strings"
)

// otherShape is one kind of ordinary package content.
type otherShape struct {
	weight int     // per mille of the files
	scale  float64 // size relative to the mean
	k      kind
	f      format
	exec   bool
	path   func(d *desktop, stem string) string // stem: the owning package's
	owner  owner
}

// owner says which packages own a kind of content.
type owner uint8

const (
	ownerApps  owner = iota // applications and libraries
	ownerFonts              // font packages
	ownerNone               // generated at build time
)

func otherShapes() []otherShape {
	return []otherShape{
		{150, 0.6, kindText, fmtNone, false, func(d *desktop, s string) string {
			return "usr/share/doc/" + s + "/" + d.word() + []string{".md", ".txt", ".html", ""}[d.r.IntN(4)]
		}, ownerApps},
		{90, 0.15, kindRandom, fmtGzip, false, func(d *desktop, s string) string {
			sec := []string{"1", "1", "3", "5", "8"}[d.r.IntN(5)]
			return "usr/share/man/man" + sec + "/" + s + "-" + d.word() + "." + sec + ".gz"
		}, ownerApps},
		{60, 3, kindBinary, fmtELF, true, func(d *desktop, s string) string { return "usr/bin/" + s + "-" + d.word() }, ownerApps},
		{40, 2, kindBinary, fmtELF, true, func(d *desktop, s string) string { return "usr/libexec/" + s + "/" + d.word() }, ownerApps},
		{250, 0.5, kindText, fmtNone, false, func(d *desktop, s string) string {
			return "usr/share/" + s + "/" + d.word() + "/" + d.word() + []string{".json", ".xml", ".ui", ".js", ".css", ".conf"}[d.r.IntN(6)]
		}, ownerApps},
		{120, 0.3, kindRandom, fmtJPEG, false, func(d *desktop, s string) string {
			return "usr/share/" + s + "/images/" + d.word() + ".jpg"
		}, ownerApps},
		{30, 4, kindBinary, fmtTTF, false, (*desktop).fontPath, ownerFonts},
		{40, 0.05, kindText, fmtNone, false, func(d *desktop, s string) string {
			return "usr/share/applications/org." + d.word() + "." + s + ".desktop"
		}, ownerApps},
		{30, 0.1, kindText, fmtNone, false, func(d *desktop, s string) string {
			return "usr/share/metainfo/org." + d.word() + "." + s + ".metainfo.xml"
		}, ownerApps},
		{20, 0.3, kindText, fmtNone, false, func(d *desktop, s string) string {
			return "usr/share/glib-2.0/schemas/org.gnome." + s + "." + d.word() + ".gschema.xml"
		}, ownerApps},
		{80, 0.3, kindText, fmtNone, false, func(d *desktop, s string) string {
			return "usr/lib64/qt6/qml/org/kde/" + s + "/" + d.word() + ".qml"
		}, ownerApps},
		{50, 0.4, kindText, fmtNone, false, func(d *desktop, s string) string {
			lang := "C"
			if d.r.IntN(10) < 6 {
				langs := strings.Fields(popularLangs)
				lang = langs[d.r.IntN(len(langs))]
			}
			return "usr/share/help/" + lang + "/" + s + "/" + d.word() + ".page"
		}, ownerApps},
		{5, 8, kindRandom, fmtJPEG, false, func(d *desktop, s string) string {
			res := []string{"1920x1080", "2560x1440", "3840x2160", "5120x2880", "1080x1920"}[d.r.IntN(5)]
			return "usr/share/wallpapers/" + s + "-" + d.word() + "/contents/images/" + res + ".jpg"
		}, ownerApps},
		{15, 0.8, kindRandom, fmtNone, false, func(d *desktop, s string) string {
			return "usr/share/sounds/" + s + "/stereo/" + d.word() + ".oga"
		}, ownerApps},
		{20, 1, kindBinary, fmtNone, false, (*desktop).cachePath, ownerNone},
	}
}

// addOther fills the rest of the file and byte budgets with ordinary package content:
// documentation, man pages, programs, data, fonts, desktop entries, wallpapers, and a
// few caches generated at build time. Sizes follow the bytes still to place, so the
// total lands on the budget.
func (d *desktop) addOther() {
	shapes := otherShapes()
	weights := make([]int, len(shapes))
	avg := 0.0
	for i, s := range shapes {
		weights[i] = s.weight
		avg += float64(s.weight) * s.scale / 1000
	}
	for d.files < d.n {
		s := shapes[pickWeighted(d.r, weights)]
		mean := max(float64(d.size-d.bytes)/float64(d.n-d.files)/avg, 2<<10)
		it := d.newItem("", min(16+int64(mean*s.scale*d.r.ExpFloat64()*d.r.ExpFloat64()), 64<<20), s.k, s.f, catOther)
		if s.exec {
			it.mode = 0o755
		}
		switch s.owner {
		case ownerNone:
			it.path = s.path(d, "")
			d.unowned(layerBase, it)
		case ownerFonts:
			p := d.pick(roleFont)
			it.path = s.path(d, d.pkgs[p].stem)
			d.own(p, it)
		default:
			p := d.pickOwner()
			it.path = s.path(d, d.pkgs[p].stem)
			d.own(p, it)
		}
	}
	d.addRest()
}

// addRest places bytes the file budget left over (when -files is small for the size)
// as application data packs of at most 64 MiB.
func (d *desktop) addRest() {
	for d.bytes < d.size {
		p := d.pick(roleApp)
		size := min(d.size-d.bytes, 64<<20)
		d.own(p, d.newItem("usr/share/"+d.pkgs[p].stem+"/data/"+d.word()+".pak", size, kindBinary, fmtNone, catOther))
	}
}

func (d *desktop) fontPath(stem string) string {
	style := []string{"Regular", "Bold", "Italic", "BoldItalic", "Light", "Medium", "SemiBold", "Thin", "Black"}[d.r.IntN(9)]
	return fmt.Sprintf("usr/share/fonts/%s/%s%s-%s.%s", stem, strings.ToUpper(stem[:1]), d.word(), style, []string{"ttf", "otf"}[d.r.IntN(2)])
}

// cachePath is a cache that a build step regenerates, so no package owns it.
func (d *desktop) cachePath(string) string {
	if d.r.IntN(2) == 0 {
		return "usr/lib/fontconfig/cache/" + d.hexID()[:32] + "-le64.cache-9"
	}
	return "usr/share/mime/" + []string{"application", "image", "text", "audio", "video"}[d.r.IntN(5)] + "/" + d.word() + "-" + d.word() + ".xml"
}
