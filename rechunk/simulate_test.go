package rechunk

import (
	"compress/gzip"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const fcosContentMeta = "/work/shared/fixtures/bootc/fedora-coreos-contentmeta.json.gz"

// fcosEntry is one element of the FCOS contentmeta fixture.
type fcosEntry struct {
	Identifier      string `json:"identifier"`
	Name            string `json:"name"`
	SrcID           string `json:"srcid"`
	ChangeFrequency uint32 `json:"change_frequency"`
	Size            uint64 `json:"size"`
}

func loadFCOS(t testing.TB) []fcosEntry {
	t.Helper()
	f, err := os.Open(fcosContentMeta)
	if err != nil {
		t.Skipf("FCOS fixture not available: %v", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	require.NoError(t, err)
	var out []fcosEntry
	require.NoError(t, json.NewDecoder(zr).Decode(&out))
	require.Len(t, out, 396, "fixture README: 396 components")
	return out
}

// releasesPerYear is the simulated cadence: weekly releases, as bootc auto-updates do.
const releasesPerYear = 52

// fcosProb turns a yearly changelog count into the probability of a change per release.
func fcosProb(freq uint32) float64 {
	if freq == math.MaxUint32 {
		return 1
	}
	return -math.Expm1(-float64(freq) / releasesPerYear)
}

// srpmName strips version and release from a source rpm file name.
func srpmName(srcid string) string {
	h := rpmHeader{Name: srcid, SourceRPM: srcid}
	return h.sourceName()
}

// simLayer is a layer of either planner, as the simulation sees it.
type simLayer struct {
	size    float64
	members []string // change units (source packages)
}

type simResult struct {
	layers              int
	expected, simulated float64 // bytes per upgrade
	maxShare            float64 // largest layer / image
}

// simulate draws releases: each source package changes with its probability, all its
// binary packages with it (they are built together). An upgrade downloads every layer
// holding a changed unit.
func simulate(layers []simLayer, prob map[string]float64, releases int, seed uint64) simResult {
	res := simResult{layers: len(layers)}
	var total float64
	for _, l := range layers {
		total += l.size
		res.maxShare = max(res.maxShare, l.size)
	}
	res.maxShare /= total
	for _, l := range layers {
		q := 1.0
		seen := map[string]bool{}
		for _, m := range l.members {
			if !seen[m] {
				seen[m] = true
				q *= 1 - prob[m]
			}
		}
		res.expected += l.size * (1 - q)
	}
	units := make([]string, 0, len(prob))
	for u := range prob {
		units = append(units, u)
	}
	sortStrings(units)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	total = 0
	for r := 0; r < releases; r++ {
		changed := map[string]bool{}
		for _, u := range units {
			if rng.Float64() < prob[u] {
				changed[u] = true
			}
		}
		for _, l := range layers {
			for _, m := range l.members {
				if changed[m] {
					total += l.size
					break
				}
			}
		}
	}
	res.simulated = total / float64(releases)
	return res
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// fcosUnit is the change unit of a fixture entry: its source package.
func fcosUnit(e fcosEntry) string {
	if e.ChangeFrequency == math.MaxUint32 {
		return e.Identifier // initramfs, unpackaged content: synthetic, alone
	}
	return srpmName(e.SrcID)
}

// ourFCOSLayers plans the fixture with our packer: components are source packages,
// as the planner groups rpms; the initramfs gets its own layer as the kernel source
// asks.
func ourFCOSLayers(t testing.TB, entries []fcosEntry, maxLayers int, grouped bool) []simLayer {
	idx := map[string]int{}
	var items []packItem
	for _, e := range entries {
		name := e.Identifier
		if grouped {
			name = fcosUnit(e)
		}
		i, ok := idx[name]
		if !ok {
			i = len(items)
			idx[name] = i
			items = append(items, packItem{name: name, p: fcosProb(e.ChangeFrequency)})
			if strings.HasPrefix(e.Identifier, "initramfs") {
				items[i].single = true
			}
		}
		items[i].size += int64(e.Size)
	}
	bins, err := packFresh(items, maxLayers)
	require.NoError(t, err)
	require.LessOrEqual(t, len(bins), maxLayers)
	// Every component exactly once.
	seen := map[int]int{}
	var layers []simLayer
	for _, b := range bins {
		var l simLayer
		for _, u := range b.units {
			seen[u.item]++
			l.size += float64(items[u.item].size)
			l.members = append(l.members, items[u.item].name)
		}
		layers = append(layers, l)
	}
	for i := range items {
		require.Equal(t, 1, seen[i], "component %s placed once", items[i].name)
	}
	return layers
}

func baselineFCOSLayers(t testing.TB, entries []fcosEntry, maxLayers int, grouped bool) []simLayer {
	comps := make([]baselineComponent, len(entries))
	unit := map[string]string{}
	for i, e := range entries {
		comps[i] = baselineComponent{id: e.Identifier, name: e.Name, size: e.Size, frequency: e.ChangeFrequency}
		unit[e.Identifier] = e.Identifier
		if grouped {
			unit[e.Identifier] = fcosUnit(e)
		}
	}
	bins, err := baselineBasicPacking(comps, maxLayers)
	require.NoError(t, err)
	require.LessOrEqual(t, len(bins), maxLayers)
	var layers []simLayer
	n := 0
	for _, b := range bins {
		var l simLayer
		for _, c := range b {
			l.size += float64(c.size)
			l.members = append(l.members, unit[c.id])
			n++
		}
		layers = append(layers, l)
	}
	require.Equal(t, len(entries), n, "baseline keeps every component")
	return layers
}

// TestSimulateFCOS compares expected bytes per upgrade of a fresh plan (no previous
// build) on real Fedora CoreOS package metadata between our planner and the ostree-ext
// basic_packing baseline. Both see the same sizes and changelog counts; the commit
// layer (always downloaded) is left out of both. The floor is every unit alone.
//
//	go test -run 'TestSimulateFCOS$' -v ./rechunk/
func TestSimulateFCOS(t *testing.T) {
	entries := loadFCOS(t)
	const releases = 52
	var total float64
	for _, e := range entries {
		total += float64(e.Size)
	}
	t.Logf("FCOS image: %d packages, %.1f MB; %d weekly releases simulated", len(entries), total/1e6, releases)
	for _, grouped := range []bool{true, false} {
		prob := map[string]float64{}
		for _, e := range entries {
			u := e.Identifier
			if grouped {
				u = fcosUnit(e)
			}
			prob[u] = fcosProb(e.ChangeFrequency)
		}
		model := "source packages change with their subpackages"
		if !grouped {
			model = "every package changes independently"
		}
		var floor float64
		units := map[string]float64{}
		for _, e := range entries {
			u := e.Identifier
			if grouped {
				u = fcosUnit(e)
			}
			units[u] += float64(e.Size)
		}
		for u, size := range units {
			floor += size * prob[u]
		}
		for _, maxLayers := range []int{64, 128} {
			ours := simulate(ourFCOSLayers(t, entries, maxLayers, grouped), prob, releases, 1)
			base := simulate(baselineFCOSLayers(t, entries, maxLayers, grouped), prob, releases, 1)
			t.Logf("%-45s max-layers %3d: ours %3d layers, expected %6.1f MB/upgrade, simulated %6.1f MB, largest layer %4.1f%% | baseline basic_packing %3d layers, expected %6.1f MB, simulated %6.1f MB, largest layer %4.1f%% | saving %4.1f%% | floor %6.1f MB",
				model, maxLayers, ours.layers, ours.expected/1e6, ours.simulated/1e6, 100*ours.maxShare,
				base.layers, base.expected/1e6, base.simulated/1e6, 100*base.maxShare, 100*(1-ours.expected/base.expected), floor/1e6)
			require.Less(t, ours.expected, base.expected, "expected bytes per upgrade at %d layers", maxLayers)
			require.Less(t, ours.simulated, base.simulated, "simulated bytes per upgrade at %d layers", maxLayers)
		}
	}
}
