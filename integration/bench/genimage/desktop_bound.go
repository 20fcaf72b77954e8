package main

import (
	"fmt"
	"strings"
)

// boundStore is the additional image store physically bound images live in; its
// user.component xattr makes the planner give it a component of its own.
const boundStore = "usr/lib/containers/storage"

// boundLayer is one layer of a bound image in the store.
type boundLayer struct {
	id, link string
}

// addBoundImages adds container images copied into the OS image at build time (so
// they need no pull at boot): about files files and budget bytes of overlay layers in
// a containers-storage layout, and the quadlet units that bootc binds them with.
func (d *desktop) addBoundImages(files int, budget int64) {
	d.marks = append(d.marks, mark{path: boundStore, layer: layerBound, pax: map[string]string{
		"SCHILY.xattr.user.component":       "bound-images",
		"SCHILY.xattr.user.update-interval": "monthly",
	}})
	var layers []boundLayer
	var images strings.Builder
	for _, name := range []string{"ollama", "open-webui", "toolbox"} {
		img := d.hexID()
		unit := "usr/share/containers/systemd/" + name + ".image"
		d.unowned(layerBound, textItem(unit, "[Image]\nImage=ghcr.io/bench/"+name+":latest\n", catBound))
		d.unowned(layerBound, symlink("usr/lib/bootc/bound-images.d/"+name+".image", "/"+unit, catBound))
		d.unowned(layerBound, d.newItem(boundStore+"/overlay-images/"+img+"/manifest", logUniform(d.r, 800, 3000, 1), kindText, fmtNone, catBound))
		fmt.Fprintf(&images, `{"id":"%s","names":["ghcr.io/bench/%s:latest"]}`+"\n", img, name)
		for k := 2 + d.r.IntN(3); k > 0; k-- {
			layers = append(layers, d.addBoundLayer())
		}
	}
	var index strings.Builder
	for _, l := range layers {
		fmt.Fprintf(&index, `{"id":"%s","link":"%s"}`+"\n", l.id, l.link)
	}
	d.unowned(layerBound, textItem(boundStore+"/overlay-images/images.json", images.String(), catBound))
	d.unowned(layerBound, textItem(boundStore+"/overlay-layers/layers.json", index.String(), catBound))
	d.addBoundDiffs(layers, files, budget)
}

// addBoundLayer adds a storage layer's bookkeeping: its short link name (a symlink in
// overlay/l) and its empty diff directory's siblings.
func (d *desktop) addBoundLayer() boundLayer {
	l := boundLayer{id: d.hexID()}
	var link [26]byte
	for i := range link {
		link[i] = 'A' + byte(d.r.IntN(26))
	}
	l.link = string(link[:])
	dir := boundStore + "/overlay/" + l.id
	d.unowned(layerBound, textItem(dir+"/link", l.link, catBound))
	d.unowned(layerBound, d.newItem(dir+"/committed", 0, kindText, fmtNone, catBound))
	d.unowned(layerBound, symlink(boundStore+"/overlay/l/"+l.link, "../"+l.id+"/diff", catBound))
	return l
}

// addBoundDiffs fills the layers' diff directories with a distribution's files: about
// files files and budget bytes, the first layer (a base the images share) the largest.
func (d *desktop) addBoundDiffs(layers []boundLayer, files int, budget int64) {
	type shape struct {
		weight int
		scale  float64
		k      kind
		f      format
		path   string // %[1]s a word, %[2]s another
	}
	shapes := []shape{
		{20, 3, kindBinary, fmtELF, "usr/lib64/lib%s_%s.so.1"},
		{15, 2, kindBinary, fmtELF, "usr/bin/%s-%s"},
		{30, 0.4, kindText, fmtPython, "usr/lib/python3.12/site-packages/%s/%s.py"},
		{20, 0.3, kindText, fmtNone, "usr/share/%s/%s.json"},
		{10, 2, kindRandom, fmtGzip, "usr/share/%s/%s.gz"},
		{5, 0.1, kindText, fmtNone, "etc/%s/%s.conf"},
	}
	weights := make([]int, len(shapes))
	avg := 0.0
	for i, s := range shapes {
		weights[i] = s.weight
		avg += float64(s.weight) * s.scale / 100
	}
	hi := max(budget/10, 1<<20)
	for start, startBytes, i := d.files, d.bytes, 0; d.files-start < files; i++ {
		s := shapes[pickWeighted(d.r, weights)]
		mean := float64(budget-(d.bytes-startBytes)) / float64(files-(d.files-start)) / avg
		size := min(int64(max(mean, 256)*s.scale*d.r.ExpFloat64()*d.r.ExpFloat64()), hi)
		l := layers[d.r.IntN(len(layers))]
		if d.r.IntN(2) == 0 {
			l = layers[0]
		}
		it := d.newItem(boundStore+"/overlay/"+l.id+"/diff/"+fmt.Sprintf(s.path, d.word(), d.word()), size, s.k, s.f, catBound)
		if s.f == fmtELF {
			it.mode = 0o755
		}
		d.unowned(layerBound, it)
	}
}
