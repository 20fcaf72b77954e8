package rechunk

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A release series on FCOS package metadata: every release draws which change units
// (source packages, or single packages in the independent model) change, from a "true"
// per-release probability; changed units get new content and a slightly different size.
// Both planners re-plan every release and an upgrade downloads every layer of the new
// build whose content the previous build did not have. The commit layer is left out for
// both (it always changes).

// seriesPkg is one binary package of a change unit.
type seriesPkg struct {
	name string
	size float64
}

// seriesUnit is what changes together.
type seriesUnit struct {
	name    string
	pkgs    []seriesPkg
	freq    uint32  // changelog entries per year: what both planners are told
	pTrue   float64 // what really drives the simulated changes
	version int
	// The unit is in the image from release addAt (0: from the start) until before
	// release removeAt (0: to the end).
	addAt, removeAt int
}

func (u *seriesUnit) active(r int) bool {
	return r >= u.addAt && (u.removeAt == 0 || r < u.removeAt)
}

func (u *seriesUnit) size() float64 {
	var s float64
	for _, p := range u.pkgs {
		s += p.size
	}
	return s
}

// seriesOptions describe one scenario.
type seriesOptions struct {
	grouped   bool    // units are source packages (else every package alone)
	noise     float64 // sigma of log(true rate / changelog rate)
	maxLayers int
	releases  int
	previous  bool // plan with the previous build (ours: label; baseline: annotations)
	churn     bool // 10% of the units are added during the series, 5% removed
	seed      uint64
}

// newSeries builds the units of the FCOS fixture.
func newSeries(entries []fcosEntry, o seriesOptions) []*seriesUnit {
	byName := map[string]*seriesUnit{}
	var units []*seriesUnit
	for _, e := range entries {
		name := e.Name
		if o.grouped {
			name = fcosUnit(e)
		}
		switch {
		case strings.HasPrefix(e.Identifier, "initramfs"):
			name = KernelComponent
		case e.Identifier == "rpmostree-unpackaged-content":
			name = UnclaimedComponent
		}
		u := byName[name]
		if u == nil {
			u = &seriesUnit{name: name, freq: e.ChangeFrequency}
			byName[name] = u
			units = append(units, u)
		}
		pkgName := e.Name
		if name == KernelComponent || name == UnclaimedComponent {
			pkgName = e.Identifier
		}
		u.pkgs = append(u.pkgs, seriesPkg{name: pkgName, size: float64(e.Size)})
	}
	sort.Slice(units, func(i, j int) bool { return units[i].name < units[j].name })
	rng := rand.New(rand.NewPCG(o.seed, 0x7e1))
	for _, u := range units {
		p := fcosProb(u.freq)
		z := rng.NormFloat64()
		if p >= 1 || o.noise == 0 {
			u.pTrue = p
			continue
		}
		rate := -math.Log1p(-p) * math.Exp(o.noise*z)
		u.pTrue = -math.Expm1(-rate)
	}
	if o.churn {
		for _, u := range units {
			if u.name == KernelComponent || u.name == UnclaimedComponent {
				continue
			}
			switch x := rng.Float64(); {
			case x < 0.10:
				u.addAt = 1 + rng.IntN(o.releases)
			case x < 0.15:
				u.removeAt = 1 + rng.IntN(o.releases)
			}
		}
	}
	return units
}

// seriesLayer is a layer of a build as the client sees it.
type seriesLayer struct {
	key  string // members and their versions: equal keys mean equal bytes
	size float64
}

type seriesResult struct {
	avg, avgLate float64 // mean bytes per upgrade: all upgrades; the second half
	maxShare     float64 // largest layer / image, over all builds
	layers       int     // layers of the last build
}

func (r seriesResult) String() string {
	return fmt.Sprintf("%6.1f MB/upgrade (2nd half %6.1f), largest layer %4.1f%%", r.avg/1e6, r.avgLate/1e6, 100*r.maxShare)
}

// runSeries plans every release with plan and measures downloads.
func runSeries(units []*seriesUnit, o seriesOptions, plan func(r int) []seriesLayer) seriesResult {
	rng := rand.New(rand.NewPCG(o.seed, 0x5e71e5))
	var res seriesResult
	var prev map[string]bool
	var downloads []float64
	for r := 0; r <= o.releases; r++ {
		if r > 0 {
			for _, u := range units {
				if rng.Float64() < u.pTrue && u.active(r) {
					u.version++
					for i := range u.pkgs {
						u.pkgs[i].size *= 1 + 0.02*rng.NormFloat64()
					}
				}
			}
		}
		layers := plan(r)
		var total, download float64
		keys := map[string]bool{}
		for _, l := range layers {
			total += l.size
			keys[l.key] = true
			if !prev[l.key] {
				download += l.size
			}
		}
		for _, l := range layers {
			res.maxShare = max(res.maxShare, l.size/total)
		}
		res.layers = len(layers)
		if r > 0 {
			downloads = append(downloads, download)
		}
		prev = keys
	}
	for i, d := range downloads {
		res.avg += d / float64(len(downloads))
		if i >= len(downloads)/2 {
			res.avgLate += d / float64(len(downloads)-len(downloads)/2)
		}
	}
	return res
}

// unitKey names a unit at its version.
func memberKey(names []string) string {
	sort.Strings(names)
	return strings.Join(names, ",")
}

// oursSeries plans with planComponents, the planner's real path after component
// discovery: history label, previous layout and packing.
func oursSeries(t testing.TB, units []*seriesUnit, o seriesOptions) func(r int) []seriesLayer {
	byName := map[string]*seriesUnit{}
	for _, u := range units {
		byName[u.name] = u
	}
	var previous []Previous
	return func(r int) []seriesLayer {
		comps := make([]*component, 0, len(units))
		active := 0
		for _, u := range units {
			if !u.active(r) {
				continue
			}
			active++
			c := &component{name: u.name, source: "rpm", size: int64(u.size()), p: fcosProb(u.freq)}
			for _, p := range u.pkgs {
				c.info.packages = append(c.info.packages, p.name)
			}
			h := fnv.New64a()
			fmt.Fprintf(h, "%s@%d", u.name, u.version)
			binary.BigEndian.PutUint64(c.digest[:], h.Sum64())
			comps = append(comps, c)
		}
		plan := &Plan{Labels: map[string]string{}}
		opts := Options{MaxLayers: o.maxLayers, SpanFileSize: DefaultSpanFileSize, UpdateInterval: DefaultUpdateInterval}
		if o.previous {
			opts.Previous = previous
		}
		require.NoError(t, planComponents(plan, nil, comps, opts, func(string) {}))
		require.LessOrEqual(t, len(plan.Layers), o.maxLayers)
		if o.previous && r > 0 {
			require.Equal(t, fmt.Sprint(r-1), plan.FromPrevious)
		}
		out := make([]seriesLayer, 0, len(plan.Layers))
		placed := 0
		prev := Previous{Ref: fmt.Sprint(r), Created: time.Unix(int64(r)*7*86400, 0), Labels: plan.Labels,
			Layers: []PreviousLayer{{Digest: "commit"}}}
		for _, l := range plan.Layers {
			var names []string
			var size float64
			for _, c := range l.Components {
				u := byName[c]
				names = append(names, fmt.Sprintf("%s@%d", c, u.version))
				size += u.size()
				placed++
			}
			out = append(out, seriesLayer{key: memberKey(names), size: size})
			prev.Layers = append(prev.Layers, PreviousLayer{Annotations: map[string]string{ComponentsAnnotation: strings.Join(l.Components, ",")}})
		}
		require.Equal(t, active, placed, "every unit in one layer")
		previous = []Previous{prev}
		return out
	}
}

// baselineSeries plans with the basic_packing baseline, with its prior-build path when
// o.previous is set (layer annotations of the previous build).
func baselineSeries(t testing.TB, units []*seriesUnit, o seriesOptions) func(r int) []seriesLayer {
	var prior [][]string
	return func(r int) []seriesLayer {
		var comps []baselineComponent
		version := map[string]string{}
		for _, u := range units {
			if !u.active(r) {
				continue
			}
			for _, p := range u.pkgs {
				freq := u.freq
				comps = append(comps, baselineComponent{id: fmt.Sprintf("%s@%d", p.name, u.version), name: p.name, size: uint64(p.size), frequency: freq})
				version[p.name] = fmt.Sprintf("%s@%d", p.name, u.version)
			}
		}
		sort.SliceStable(comps, func(i, j int) bool {
			if comps[i].size != comps[j].size {
				return comps[i].size > comps[j].size
			}
			return comps[i].id < comps[j].id
		})
		var bins [][]baselineComponent
		ok := false
		if o.previous {
			bins, ok = baselinePackingWithPrior(comps, o.maxLayers, prior)
		}
		if !ok {
			var err error
			bins, err = baselineBasicPacking(comps, o.maxLayers)
			require.NoError(t, err)
		}
		require.LessOrEqual(t, len(bins), o.maxLayers)
		prior = prior[:0]
		out := make([]seriesLayer, 0, len(bins))
		for _, b := range bins {
			var names, ann []string
			var size float64
			for _, c := range b {
				names = append(names, version[c.name])
				ann = append(ann, c.name)
				size += float64(c.size)
			}
			out = append(out, seriesLayer{key: memberKey(names), size: size})
			prior = append(prior, ann)
		}
		return out
	}
}

// floorSeries puts every unit in a layer of its own: the fewest bytes any layout can
// download when units change as wholes (unlimited layers).
func floorSeries(units []*seriesUnit) func(r int) []seriesLayer {
	return func(r int) []seriesLayer {
		var out []seriesLayer
		for _, u := range units {
			if u.active(r) {
				out = append(out, seriesLayer{key: fmt.Sprintf("%s@%d", u.name, u.version), size: u.size()})
			}
		}
		return out
	}
}

// TestSimulateFCOSSeries: 52 weekly releases, each planner re-planning every release,
// measured as the bytes of the layers an upgrade downloads.
//
//   - stateless: no previous build, every plan from scratch.
//
//   - history-aware: ours reads the previous build's plan label (layout, digests,
//     change history), the baseline its ostree.components annotations (§4.5).
//
//   - noise 1: the real change rates differ from the changelog-based ones by a
//     log-normal factor (sigma 1); only a planner that keeps history can learn them.
//
//   - churn: 10% of the units are added during the series and 5% removed.
//
//     go test -run TestSimulateFCOSSeries -v ./rechunk/
func TestSimulateFCOSSeries(t *testing.T) {
	entries := loadFCOS(t)
	type scenario struct {
		previous, churn bool
		noise           float64
	}
	models := []bool{true, false}
	if testing.Short() {
		models = models[:1]
	}
	for _, sc := range []scenario{{false, false, 0}, {true, false, 0}, {true, false, 1}, {true, true, 1}} {
		name := "stateless"
		if sc.previous {
			name = "history-aware"
		}
		if sc.churn {
			name += "+churn"
		}
		name += fmt.Sprintf("/noise-%.0f", sc.noise)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, grouped := range models {
				model := "source-package"
				if !grouped {
					model = "independent"
				}
				for _, maxLayers := range []int{64, 128} {
					o := seriesOptions{grouped: grouped, noise: sc.noise, maxLayers: maxLayers, releases: 52, previous: sc.previous, churn: sc.churn, seed: 7}
					unitsO := newSeries(entries, o)
					ours := runSeries(unitsO, o, oursSeries(t, unitsO, o))
					unitsB := newSeries(entries, o)
					base := runSeries(unitsB, o, baselineSeries(t, unitsB, o))
					unitsF := newSeries(entries, o)
					floor := runSeries(unitsF, o, floorSeries(unitsF))
					t.Logf("%-32s %-14s max-layers %3d: ours %s | baseline %s | saving %4.1f%% | floor (every unit alone) %6.1f MB",
						name, model, maxLayers, ours, base, 100*(1-ours.avg/base.avg), floor.avg/1e6)
					require.Less(t, ours.avg, base.avg, "%s %s %d layers: bytes per upgrade", name, model, maxLayers)
					require.LessOrEqual(t, ours.maxShare, base.maxShare*1.2, "largest layer")
				}
			}
		})
	}
}
