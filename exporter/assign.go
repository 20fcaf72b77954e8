package exporter

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sort"
	"unsafe"

	"github.com/rechunker-dev/rechunker/ostree"
	"github.com/rechunker-dev/rechunker/rechunk"
)

// plannedEntry is a tree entry the plan places, by its address in the tree.
type plannedEntry struct {
	file    *ostree.File
	layer   int32
	index   int32
	matched bool
}

func byAddr(a, b plannedEntry) int {
	return cmp.Compare(uintptr(unsafe.Pointer(a.file)), uintptr(unsafe.Pointer(b.file)))
}

// planCheck holds the plan's entries while they are checked against the tree. Memory
// matters here: this runs with the tree and the plan in memory and used to be the peak
// of a build. No map keyed by path or checksum: per layer a copy of the plan's refs
// sorted into objects (the path parts stay shared with the plan), and one slice of the
// planned tree entries sorted by address, checked in one tree walk.
type planCheck struct {
	plan    *rechunk.Plan
	planned []plannedEntry
	rest    []rechunk.FileRef // tree entries the plan forgot
}

// assign turns the plan into layer specs, checking it against the tree: every planned
// entry must be the tree's entry at the planned path and be planned once; tree paths
// the plan forgot go into the commit layer, as ostree-ext does with its remainder.
func (e *export) assign() error {
	n := 0
	for _, l := range e.plan.Layers {
		n += len(l.Files)
	}
	// Exact capacity: appending would copy the largest slice of the check twice over.
	pc := &planCheck{plan: e.plan, planned: make([]plannedEntry, 0, n)}
	if !e.o.Plain {
		e.layers = []outLayer{{spec: &layerSpec{commit: true}, name: "ostree export of commit " + e.cd.sum.String()}}
	}
	for i, l := range e.plan.Layers {
		if err := pc.add(i, l); err != nil {
			return err
		}
		spec, size := specFrom(l.Files)
		comps := append([]string(nil), l.Components...)
		sort.Strings(comps)
		e.layers = append(e.layers, outLayer{spec: spec, name: l.Name, comps: comps, size: size})
	}
	slices.SortFunc(pc.planned, byAddr)
	if err := pc.once(); err != nil {
		return err
	}
	if err := pc.walk("/", e.in.Tree.Root); err != nil {
		return err
	}
	if err := pc.allMatched(); err != nil {
		return err
	}
	switch {
	case len(pc.rest) > 0 && e.o.Plain:
		e.warn("plan does not cover %d paths; they go into a layer of their own", len(pc.rest))
		spec, size := specFrom(pc.rest)
		e.layers = append(e.layers, outLayer{spec: spec, name: "files the plan does not cover", size: size})
	case len(pc.rest) > 0:
		e.warn("plan does not cover %d paths; they go into the commit layer", len(pc.rest))
		spec, size := specFrom(pc.rest)
		spec.commit = true
		e.layers[0].spec, e.layers[0].size = spec, size
	}
	if e.o.Plain {
		e.placeEmptyDirs()
	}
	return nil
}

// placeEmptyDirs gives the plain format's directories with no file below them to one
// layer (a layer of its own when the plan has none).
func (e *export) placeEmptyDirs() {
	dirs := emptyDirs(e.in.Tree)
	if len(dirs) == 0 {
		return
	}
	i := plainDirsLayer(e.plan.Layers)
	if i < 0 || i >= len(e.layers) {
		e.layers = append(e.layers, outLayer{spec: &layerSpec{}, name: "empty directories"})
		i = len(e.layers) - 1
	}
	e.layers[i].spec.dirs = dirs
}

// add records the entries of plan layer i.
func (pc *planCheck) add(i int, l rechunk.Layer) error {
	if len(l.Files) > math.MaxInt32 || len(pc.plan.Layers) > math.MaxInt32 {
		return fmt.Errorf("export: plan layer %d (%s) is too large", i, l.Name)
	}
	for j, f := range l.Files {
		if f.File == nil {
			return fmt.Errorf("export: plan layer %d (%s): %s has no tree entry", i, l.Name, f.Path())
		}
		pc.planned = append(pc.planned, plannedEntry{file: f.File, layer: int32(i), index: int32(j)})
	}
	return nil
}

func (pc *planCheck) refOf(p plannedEntry) rechunk.FileRef {
	return pc.plan.Layers[p.layer].Files[p.index]
}

// once refuses a tree entry planned twice (entries are sorted by address).
func (pc *planCheck) once() error {
	for j := 1; j < len(pc.planned); j++ {
		if pc.planned[j].file != pc.planned[j-1].file {
			continue
		}
		a, b := pc.planned[j-1], pc.planned[j]
		if a.layer > b.layer {
			a, b = b, a
		}
		if a.layer == b.layer {
			return fmt.Errorf("export: plan lists %s twice in layer %d", pc.refOf(a).Path(), a.layer)
		}
		return fmt.Errorf("export: plan puts %s in layers %d and %d", pc.refOf(a).Path(), a.layer, b.layer)
	}
	return nil
}

// walk matches the tree's entries below dir with the plan's.
func (pc *planCheck) walk(dir string, d *ostree.Dir) error {
	for _, n := range d.FileNames() {
		f := d.Files[n]
		i, ok := slices.BinarySearchFunc(pc.planned, plannedEntry{file: f}, byAddr)
		if !ok {
			pc.rest = append(pc.rest, rechunk.FileRef{Dir: dir, Name: n, File: f})
			continue
		}
		pc.planned[i].matched = true
		if r := pc.refOf(pc.planned[i]); r.Dir != dir || r.Name != n {
			return fmt.Errorf("export: plan layer %d (%s) lists %s at %s", pc.planned[i].layer,
				pc.plan.Layers[pc.planned[i].layer].Name, dir+n, r.Path())
		}
	}
	for _, n := range d.DirNames() {
		if err := pc.walk(dir+n+"/", d.Dirs[n]); err != nil {
			return err
		}
	}
	return nil
}

// allMatched refuses a planned entry the tree walk did not meet.
func (pc *planCheck) allMatched() error {
	for _, p := range pc.planned {
		if !p.matched {
			return fmt.Errorf("export: plan layer %d (%s): %s is not a file of the tree", p.layer,
				pc.plan.Layers[p.layer].Name, pc.refOf(p).Path())
		}
	}
	return nil
}

// specFrom groups refs into objects: ascending checksum, paths of one object in
// checkout order. refs must stay unmodified while the spec is used. The size is the
// layer's payload bytes.
func specFrom(refs []rechunk.FileRef) (*layerSpec, int64) {
	order := make([]int32, len(refs))
	// The sort compares checksum prefixes from one array instead of following each
	// ref's File pointer: a rebuild sorts every layer's files, and the pointer chasing
	// was most of that.
	prefix := make([]uint64, len(refs))
	for i := range order {
		order[i] = int32(i)
		prefix[i] = binary.BigEndian.Uint64(refs[i].File.Checksum[:8])
	}
	slices.SortFunc(order, func(x, y int32) int {
		if c := cmp.Compare(prefix[x], prefix[y]); c != 0 {
			return c
		}
		a, b := refs[x], refs[y]
		if c := bytes.Compare(a.File.Checksum[:], b.File.Checksum[:]); c != 0 {
			return c
		}
		// Only paths of one object get here (hardlinks, duplicates): building the
		// paths costs little.
		ap, bp := a.Path(), b.Path()
		switch {
		case checkoutLess(ap, bp):
			return -1
		case checkoutLess(bp, ap):
			return 1
		}
		return 0
	})
	first := func(i int) bool { return i == 0 || refs[order[i]].File.Checksum != refs[order[i-1]].File.Checksum }
	n := 0
	for i := range order {
		if first(i) {
			n++
		}
	}
	spec := &layerSpec{refs: refs, order: order, ends: make([]int32, 0, n)}
	var size int64
	for i, x := range order {
		if !first(i) {
			continue
		}
		if i > 0 {
			spec.ends = append(spec.ends, int32(i))
		}
		size += refs[x].File.Size
	}
	if len(order) > 0 {
		spec.ends = append(spec.ends, int32(len(order)))
	}
	return spec, size
}
