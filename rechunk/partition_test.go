package rechunk

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func groupsCost(items []packItem, groups [][]int) float64 {
	var c float64
	for _, g := range groups {
		var s binStat
		for _, i := range g {
			s.add(float64(items[i].size), items[i].p, 1)
		}
		c += s.cost()
	}
	return c
}

// bestPartition tries every set partition of items into at most k groups where no
// group of several members is larger than limit.
func bestPartition(items []packItem, k int, limit float64) float64 {
	best := -1.0
	var groups [][]int
	var rec func(i int)
	rec = func(i int) {
		if i == len(items) {
			for _, g := range groups {
				var s float64
				for _, m := range g {
					s += float64(items[m].size)
				}
				if len(g) > 1 && s > limit {
					return
				}
			}
			if c := groupsCost(items, groups); best < 0 || c < best {
				best = c
			}
			return
		}
		for g := range groups {
			groups[g] = append(groups[g], i)
			rec(i + 1)
			groups[g] = groups[g][:len(groups[g])-1]
		}
		if len(groups) < k {
			groups = append(groups, []int{i})
			rec(i + 1)
			groups = groups[:len(groups)-1]
		}
	}
	rec(0)
	return best
}

func TestPartitionNearOptimal(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var worst float64
	for trial := 0; trial < 300; trial++ {
		n := 3 + rng.IntN(6)
		k := 1 + rng.IntN(4)
		items := make([]packItem, n)
		idx := make([]int, n)
		var total, largest float64
		for i := range items {
			p := rng.Float64()
			if rng.IntN(8) == 0 {
				p = 1
			}
			size := int64(1 + rng.ExpFloat64()*1e6)
			items[i] = packItem{name: fmt.Sprintf("c%d", i), size: size, p: p}
			idx[i] = i
			total += float64(size)
			largest = max(largest, float64(size))
		}
		got := partition(items, idx, k)
		require.LessOrEqual(t, len(got), k)
		seen := map[int]int{}
		for _, g := range got {
			require.NotEmpty(t, g)
			for _, i := range g {
				seen[i]++
			}
		}
		require.Len(t, seen, n, "every component once")
		for _, c := range seen {
			require.Equal(t, 1, c)
		}
		want := bestPartition(items, k, max(largest, 2*total/float64(k)))
		ratio := groupsCost(items, got) / want
		worst = max(worst, ratio)
		assert.Less(t, ratio, 1.03, "trial %d: n=%d k=%d", trial, n, k)
		// Deterministic.
		assert.Equal(t, got, partition(items, idx, k))
	}
	t.Logf("worst cost / optimal over 300 random instances: %.4f", worst)
}

func TestPartitionBalance(t *testing.T) {
	// Many small components that always change: free to merge, but no merged layer
	// may outgrow the largest component or twice the average layer.
	items := []packItem{{name: "big", size: 100, p: 0.1}}
	idx := []int{0}
	for i := 0; i < 40; i++ {
		items = append(items, packItem{name: fmt.Sprintf("s%02d", i), size: 20, p: 1})
		idx = append(idx, len(items)-1)
	}
	got := partition(items, idx, 8)
	require.LessOrEqual(t, len(got), 8)
	for _, g := range got {
		var s int64
		for _, i := range g {
			s += items[i].size
		}
		if len(g) > 1 {
			assert.LessOrEqual(t, s, int64(225), "group %v", g) // 2 × 900/8
		}
	}
}

// TestRepackChanged: with a labelled previous build, layers whose components are all
// unchanged keep their exact membership and position; the changed layers' components
// and the new ones are repacked into the changed layers (and unused budget) only.
func TestRepackChanged(t *testing.T) {
	var items []packItem
	add := func(name string, size int64, p float64, changed bool) int {
		items = append(items, packItem{name: name, size: size, p: p, changed: changed})
		return len(items) - 1
	}
	// Previous layout: 1 {a b}, 2 {c d}, 3 {e}, 4 {f g}, 5 {gone}; budget 6.
	a := add("a", 1000, 0.05, false)
	b := add("b", 1000, 0.05, false)
	c := add("c", 500, 0.9, true)
	d := add("d", 30000, 0.02, false)
	e := add("e", 50000, 0.3, false)
	f := add("f", 800, 0.8, false)
	g := add("g", 900, 0.85, false)
	n := add("new", 700, 0.5, false)
	prior := &priorLayout{ref: "v1", layers: 5, fromLabel: true, parts: map[string]map[string]int{}, reserved: map[int]bool{},
		names: map[string]int{"a": 1, "b": 1, "c": 2, "d": 2, "e": 3, "f": 4, "g": 4, "gone": 5}}
	bins, err := packWithPrior(items, 6, prior, nil)
	require.NoError(t, err)
	require.LessOrEqual(t, len(bins), 6)
	byPrev := map[int][]int{}
	where := map[int]int{}
	for bi, bin := range bins {
		for _, u := range bin.units {
			where[u.item] = bi
			if bin.prev > 0 {
				byPrev[bin.prev] = append(byPrev[bin.prev], u.item)
			}
		}
	}
	// Unchanged layers 1, 3 and 4 are kept as they were.
	assert.ElementsMatch(t, []int{a, b}, byPrev[1])
	assert.ElementsMatch(t, []int{e}, byPrev[3])
	assert.ElementsMatch(t, []int{f, g}, byPrev[4])
	// Layer 2 changed (c): the big stable d must not share with the hot c any more.
	assert.NotEqual(t, where[c], where[d], "d leaves the changing c")
	// The new component went into a changed or unused layer, not into a kept one.
	for _, kept := range []int{a, e, f} {
		assert.NotEqual(t, where[kept], where[n], "new component in kept layer of %s", items[kept].name)
	}
	for i := range items {
		_, ok := where[i]
		assert.True(t, ok, "%s placed", items[i].name)
	}
}
