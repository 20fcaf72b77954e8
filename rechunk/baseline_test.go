package rechunk

import (
	"errors"
	"math"
	"sort"
)

// This file is a BASELINE for comparisons only: a Go reimplementation, from the
// description in docs (ostree-ext-format.md §4.4), of ostree-ext's fresh
// `basic_packing`, which rpm-ostree uses for chunked images. It is not used by the
// planner.

// baselineComponent is ostree-ext's ObjectSourceMetaSized, reduced to what packing reads.
type baselineComponent struct {
	id        string
	name      string // matched against a prior build's ostree.components
	size      uint64
	frequency uint32 // changelog entries in a year; math.MaxUint32 = changes all the time
}

// baselineBasicPacking packs components (sorted by size, descending) into bins.
func baselineBasicPacking(components []baselineComponent, bins int) ([][]baselineComponent, error) {
	const minLayers = 4
	if bins < minLayers {
		return nil, errors.New("too few bins")
	}
	if len(components) < bins {
		var r [][]baselineComponent
		for _, c := range components {
			r = append(r, []baselineComponent{c})
		}
		if len(components) > 0 {
			r = append(r, nil)
		}
		return r, nil
	}
	var regular, maxFreq []baselineComponent
	for _, c := range components {
		if c.frequency == math.MaxUint32 {
			maxFreq = append(maxFreq, c)
		} else {
			regular = append(regular, c)
		}
	}
	var r [][]baselineComponent
	if len(regular) > 0 {
		ls, newBins := 1, 1
		mf := min(1, len(maxFreq))
		other := ls + newBins + mf
		hs := int(math.Floor(0.6 * float64(bins-other)))
		ms := bins - (hs + other)
		parts, err := baselinePartitions(regular, hs, 2)
		if err != nil {
			return nil, err
		}
		low := len(parts["2ls"])
		if ms == 0 {
			return nil, errors.New("no medium bins")
		}
		perMS := (len(regular) - hs - low) / ms
		keys := make([]string, 0, len(parts))
		for k := range parts {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			pkgs := parts[k]
			switch k {
			case "1hs":
				for _, c := range pkgs {
					r = append(r, []baselineComponent{c})
				}
			case "2ls":
				r = append(r, append([]baselineComponent(nil), pkgs...))
			default:
				var bin []baselineComponent
				for i, c := range pkgs {
					if len(bin) < perMS {
						bin = append(bin, c)
					} else {
						r = append(r, bin)
						bin = []baselineComponent{c}
					}
					if i == len(pkgs)-1 && len(bin) > 0 {
						r = append(r, bin)
						bin = nil
					}
				}
			}
		}
		target := bins - newBins - mf
		for len(r) > target {
			// Upstream walks the indexes ls+hs, ls+hs+2, ... below len-1 (fixed at the
			// start of the pass) from the top down.
			lo := ls + hs
			top := len(r) - 2
			if top < lo {
				return nil, errors.New("fold: no medium bins to merge")
			}
			top -= (top - lo) % 2
			for i := top; i >= lo; i -= 2 {
				if len(r) <= target {
					break
				}
				merged := append(append([]baselineComponent(nil), r[i-1]...), r[i]...)
				r = append(r[:i-1], r[i+1:]...)
				r = append(r[:i], append([][]baselineComponent{merged}, r[i:]...)...)
			}
		}
	}
	if len(maxFreq) > 0 {
		r = append(r, maxFreq)
	}
	r = append(r, nil)
	return r, nil
}

func baselineMedian(sortedDesc []float64) float64 {
	n := len(sortedDesc)
	if n%2 == 1 {
		return sortedDesc[n/2]
	}
	return 0.5 * (sortedDesc[n/2-1] + sortedDesc[n/2])
}

func baselineMeanStd(v []float64) (float64, float64) {
	var s float64
	for _, x := range v {
		s += x
	}
	m := s / float64(len(v))
	var d float64
	for _, x := range v {
		d += (m - x) * (m - x)
	}
	return m, math.Sqrt(d / float64(len(v)))
}

func baselinePartitions(components []baselineComponent, hsLimit int, t float64) (map[string][]baselineComponent, error) {
	sizes := make([]float64, len(components))
	for i, c := range components {
		sizes[i] = float64(c.size)
	}
	med := baselineMedian(sizes) // the input is sorted by size, descending
	dev := make([]float64, len(sizes))
	for i, s := range sizes {
		dev[i] = math.Abs(s - med)
	}
	sort.Float64s(dev)
	var mad float64
	if l := len(dev); l%2 == 1 {
		mad = dev[l/2]
	} else {
		mad = 0.5 * (dev[l/2-1] + dev[l/2])
	}
	lowLimit := 0.5 * math.Abs(med-t*mad)
	highLimit := med + t*mad
	parts := map[string][]baselineComponent{}
	var high, medium []baselineComponent
	for _, c := range components {
		s := float64(c.size)
		switch {
		case s >= highLimit:
			high = append(high, c)
		case s <= lowLimit:
			parts["2ls"] = append(parts["2ls"], c)
		default:
			medium = append(medium, c)
		}
	}
	var rest []baselineComponent
	if len(high) > hsLimit {
		rest = append(rest, high[hsLimit:]...)
		high = high[:hsLimit]
	}
	rest = append(rest, medium...)
	parts["1hs"] = high
	sort.SliceStable(rest, func(a, b int) bool { return rest[a].frequency < rest[b].frequency })
	if len(rest) == 0 {
		return nil, errors.New("partitioning components into sets: empty medium list")
	}
	ms := make([]float64, len(rest))
	mf := make([]float64, len(rest))
	for i, c := range rest {
		ms[i], mf[i] = float64(c.size), float64(c.frequency)
	}
	meanF, sdF := baselineMeanStd(mf)
	meanS, sdS := baselineMeanStd(ms)
	fLow, fHigh := 0.5*math.Abs(meanF-t*sdF), meanF+t*sdF
	sLow, sHigh := 0.5*math.Abs(meanS-t*sdS), meanS+t*sdS
	for _, c := range rest {
		s, f := float64(c.size), float64(c.frequency)
		sz := "ms"
		if s >= sHigh {
			sz = "hs"
		} else if s <= sLow {
			sz = "ls"
		}
		fr := "4mf"
		if f >= fHigh {
			fr = "3hf"
		} else if f <= fLow {
			fr = "5lf"
		}
		parts[fr+"_"+sz] = append(parts[fr+"_"+sz], c)
	}
	return parts, nil
}

// baselinePackingWithPrior is §4.5 basic_packing_with_prior_build (HEAD): the prior's
// chunk layers as component-name lists (manifest layers 1..n), added names appended to
// the last bin, removed names dropped, empty bins but the last dropped. ok is false when
// the prior does not fit (ostree-ext then packs afresh).
func baselinePackingWithPrior(components []baselineComponent, bins int, prior [][]string) (r [][]baselineComponent, ok bool) {
	if len(prior) == 0 {
		return nil, false
	}
	prev := map[string]bool{}
	for _, b := range prior {
		for _, n := range b {
			if n != "" {
				prev[n] = true
			}
		}
	}
	curr := map[string]bool{}
	byName := map[string]baselineComponent{}
	var currNames []string
	for _, c := range components {
		if !curr[c.name] {
			curr[c.name] = true
			byName[c.name] = c
			currNames = append(currNames, c.name)
		}
	}
	sort.Strings(currNames)
	layout := make([][]string, len(prior))
	for i, b := range prior {
		for _, n := range b {
			if n != "" && curr[n] {
				layout[i] = append(layout[i], n)
			}
		}
	}
	last := len(layout) - 1
	for _, n := range currNames {
		if !prev[n] {
			layout[last] = append(layout[last], n)
		}
	}
	var kept [][]string
	for i, b := range layout {
		if len(b) > 0 || i == last {
			kept = append(kept, b)
		}
	}
	if len(kept) > bins {
		return nil, false
	}
	for _, b := range kept {
		var bin []baselineComponent
		for _, n := range b {
			bin = append(bin, byName[n])
		}
		r = append(r, bin)
	}
	return r, true
}
