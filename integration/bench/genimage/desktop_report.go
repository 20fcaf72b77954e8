package main

import (
	"fmt"
	"io"
)

// tally counts files and bytes; incompressible bytes are those of random content
// (compressed formats: xz, PNG data, JPEG, models).
type tally struct {
	files, links          int
	bytes, incompressible int64
}

func (t *tally) add(it item) {
	if it.link != "" {
		t.links++
		return
	}
	t.files++
	t.bytes += it.size
	if it.kind == kindRandom && it.text == "" {
		t.incompressible += it.size
	}
}

// desktopStats describes a desktop image's files (the package database not included).
type desktopStats struct {
	total      tally
	cats       [catCount]tally
	layers     [desktopLayers]tally
	owned      int // regular files a package owns
	pkgs       int // packages that own files
	duplicates int // regular files whose bytes an earlier file already has
}

type contentKey struct {
	seed, size uint64
	kind       kind
	format     format
	aux        int32
}

func (d *desktop) stats() desktopStats {
	var s desktopStats
	seen := map[contentKey]bool{}
	pkgs := map[int32]bool{}
	for _, it := range d.items {
		s.total.add(it)
		s.cats[it.cat].add(it)
		s.layers[it.layer].add(it)
		if it.link != "" {
			continue
		}
		if it.pkg >= 0 {
			s.owned++
			pkgs[it.pkg] = true
		}
		if it.text == "" && it.size > 0 {
			k := contentKey{it.seed, uint64(it.size), it.kind, it.format, it.aux}
			if seen[k] {
				s.duplicates++
			}
			seen[k] = true
		}
	}
	s.pkgs = len(pkgs)
	return s
}

// report prints what the image holds, per category and per layer.
func (d *desktop) report(w io.Writer) {
	s := d.stats()
	row := func(name string, t tally) {
		fmt.Fprintf(w, "  %-13s %8d files %6d links %9.1f MiB %5.1f%% of bytes, %5.1f%% incompressible\n",
			name, t.files, t.links, float64(t.bytes)/(1<<20), pct(t.bytes, s.total.bytes), pct(t.incompressible, t.bytes))
	}
	fmt.Fprintln(w, "genimage desktop profile:")
	for c := range catCount {
		row(c.String(), s.cats[c])
	}
	for l, t := range s.layers {
		row(fmt.Sprintf("layer %d", l), t)
	}
	row("total", s.total)
	fmt.Fprintf(w, "  %d packages own %d of %d files (%.1f%%); %d files duplicate another's bytes\n",
		s.pkgs, s.owned, s.total.files, pct(int64(s.owned), int64(s.total.files)), s.duplicates)
}

func pct(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}
