package rechunk

import (
	"fmt"
	"math"
	"math/rand"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newRand(seed int64) *rand.Rand { return rand.New(rand.NewSource(seed)) }

// syntheticItems returns n components shaped like a distribution's packages: sizes
// log-normal around 200 kB (a few of tens of MB), change rates spread over the tiers.
func syntheticItems(rng *rand.Rand, n int, prefix string) []packItem {
	items := make([]packItem, n)
	for i := range items {
		size := int64(math.Exp(rng.NormFloat64()*2.0 + math.Log(200e3)))
		size = max(size, 200)
		p := math.Exp(rng.Float64()*math.Log(0.9/0.001)) * 0.001 // 0.001 .. 0.9, log-uniform
		items[i] = packItem{name: fmt.Sprintf("%s%04d", prefix, i), size: size, p: p}
	}
	return items
}

// binNames describes each bin by its members' names (parts as name:part).
func binNames(items []packItem, bins []*pbin) []string {
	out := make([]string, 0, len(bins))
	for _, b := range bins {
		var names []string
		for _, u := range b.units {
			n := items[u.item].name
			if u.part != "" {
				n += ":" + u.part
			}
			names = append(names, n)
		}
		sort.Strings(names)
		out = append(out, strings.Join(names, ","))
	}
	return out
}

// orphanChanges counts the layers of plan b that plan a does not have and that a
// client switching from a to b downloads only because unchanged components were
// regrouped: they hold no component new to b, and they are not an a layer that merely
// lost components b does not have.
func orphanChanges(itemsA []packItem, a []*pbin, itemsB []packItem, b []*pbin) (orphans, changed int) {
	inA, inB := map[string]bool{}, map[string]bool{}
	for _, it := range itemsA {
		inA[it.name] = true
	}
	for _, it := range itemsB {
		inB[it.name] = true
	}
	layersA, lostOnly := map[string]bool{}, map[string]bool{}
	for k, n := range binNames(itemsA, a) {
		layersA[n] = true
		var kept []unitRef
		for _, u := range a[k].units {
			if inB[itemsA[u.item].name] {
				kept = append(kept, u)
			}
		}
		if len(kept) < len(a[k].units) {
			lostOnly[binNames(itemsA, []*pbin{{units: kept}})[0]] = true
		}
	}
	for k, n := range binNames(itemsB, b) {
		if layersA[n] {
			continue
		}
		changed++
		hasNew := false
		for _, u := range b[k].units {
			hasNew = hasNew || !inA[itemsB[u.item].name]
		}
		if !hasNew && !lostOnly[n] {
			orphans++
		}
	}
	return orphans, changed
}

// TestFreshPlanLocality measures what sibling images planned without history (no
// previous build, no family) cost a client switching between them: adding or removing
// k packages should change the layers that receive or lose them and few others.
// splitBin guarantees that a tier's layer count changing by one changes one or two of
// its layers; the greedy budget decisions can still move a component between a layer
// of its own and a tier layer, which these bounds measure over random images.
func TestFreshPlanLocality(t *testing.T) {
	for _, tc := range []struct {
		name            string
		base, layers, k int
		remove          bool
		// maxOrphans bounds the mean orphan layers per pair. Rendezvous hashing of tier
		// bins (before splitBin) gave 0.10, 1.20, 3.57, 2.53, 6.03 and 0.90 on these
		// cases; what is left comes from the budget: a layer spent on isolating one
		// component more or less is a tier layer less or more.
		maxOrphans float64
	}{
		{name: "add 1 to 400", base: 400, layers: 64, k: 1, maxOrphans: 0.07},
		{name: "add 5 to 400", base: 400, layers: 64, k: 5, maxOrphans: 1.0},
		{name: "add 15 to 400", base: 400, layers: 64, k: 15, maxOrphans: 2.5},
		{name: "add 15 to 1500", base: 1500, layers: 64, k: 15, maxOrphans: 1.8},
		{name: "remove 10 of 400", base: 400, layers: 64, k: 10, remove: true, maxOrphans: 5.0},
		{name: "add 10 to 400, 32 layers", base: 400, layers: 32, k: 10, maxOrphans: 0.7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			totalOrphans, totalChanged, runs := 0, 0, 30
			for seed := range runs {
				rng := newRand(int64(seed))
				a := syntheticItems(rng, tc.base, "pkg")
				var b []packItem
				if tc.remove {
					perm := rng.Perm(len(a))[:tc.k]
					drop := map[int]bool{}
					for _, i := range perm {
						drop[i] = true
					}
					for i, it := range a {
						if !drop[i] {
							b = append(b, it)
						}
					}
				} else {
					b = append(append([]packItem(nil), a...), syntheticItems(rng, tc.k, "new")...)
				}
				binsA, err := packFresh(a, tc.layers)
				require.NoError(t, err)
				binsB, err := packFresh(b, tc.layers)
				require.NoError(t, err)
				o, c := orphanChanges(a, binsA, b, binsB)
				totalOrphans += o
				totalChanged += c
			}
			t.Logf("%s: %.2f changed layers per image pair, %.2f of them with no new component (%d pairs)",
				tc.name, float64(totalChanged)/float64(runs), float64(totalOrphans)/float64(runs), runs)
			assert.LessOrEqual(t, float64(totalOrphans)/float64(runs), tc.maxOrphans)
		})
	}
}

// TestSplitBin checks the guarantee splitBin gives the fresh packer: with one bin more,
// members only move into the new bin, all from one old bin, and about half of it; so a
// tier that gains (or loses) a layer changes one of its layers into two (or two into
// one) and leaves the others byte for byte.
func TestSplitBin(t *testing.T) {
	rng := newRand(7)
	pos := make([]uint64, 20000)
	for i := range pos {
		pos[i] = rng.Uint64()
	}
	for k := 1; k <= 70; k++ {
		from := map[int]int{}
		sizes := map[int]int{}
		for _, h := range pos {
			a, b := splitBin(h, k), splitBin(h, k+1)
			require.Less(t, a, k)
			sizes[a]++
			if a != b {
				require.Equal(t, k, b, "a member moves only into the new bin")
				from[a]++
			}
		}
		require.Len(t, from, 1, "k=%d: the new bin takes members from exactly one bin", k)
		for src, n := range from {
			assert.InDelta(t, 0.5, float64(n)/float64(sizes[src]), 0.1, "k=%d: the split bin gives away about half", k)
		}
	}
	assert.Equal(t, 0, splitBin(^uint64(0), 1), "one bin holds everything")
}
