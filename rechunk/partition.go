package rechunk

import (
	"math"
	"sort"
)

// partition splits the components idx into at most k groups so that the expected bytes
// per upgrade, Σ size(group) × P(any member changes), is small. Components are sorted
// by change probability and cut into contiguous runs by dynamic programming (the best
// split of a sorted list); a local search then moves single components between groups,
// or into unused groups, while that saves bytes. The search escapes what contiguity
// cannot express: a big component is cheapest alone even when its probability sits in
// the middle of others'. The result is deterministic: ties break by name.
func partition(items []packItem, idx []int, k int) [][]int {
	if len(idx) == 0 || k <= 0 {
		return nil
	}
	order := append([]int(nil), idx...)
	sort.Slice(order, func(a, b int) bool {
		x, y := items[order[a]], items[order[b]]
		if x.p != y.p {
			return x.p < y.p
		}
		return x.name < y.name
	})
	if len(order) <= k {
		out := make([][]int, len(order))
		for i, v := range order {
			out[i] = []int{v}
		}
		return out
	}
	// Balance: a layer of several components is never larger than the largest
	// component (which is a layer no plan can avoid) or twice the average layer.
	var total, largest float64
	for _, i := range order {
		total += float64(items[i].size)
		largest = max(largest, float64(items[i].size))
	}
	limit := max(largest, 2*total/float64(k))
	groups := contiguousSplit(items, order, k, limit)
	groups = improveGroups(items, groups, k, limit)
	return groups
}

// contiguousSplit cuts order into at most k contiguous groups minimizing the cost.
func contiguousSplit(items []packItem, order []int, k int, limit float64) [][]int {
	n := len(order)
	size := make([]float64, n+1)
	logQ := make([]float64, n+1)
	always := make([]int, n+1)
	for i, v := range order {
		it := items[v]
		size[i+1], logQ[i+1], always[i+1] = size[i]+float64(it.size), logQ[i], always[i]
		if it.p >= 1 {
			always[i+1]++
		} else {
			logQ[i+1] += math.Log1p(-it.p)
		}
	}
	inf := math.Inf(1)
	cost := func(l, r int) float64 {
		s := size[r] - size[l]
		if r-l > 1 && s > limit {
			return inf
		}
		if always[r] > always[l] {
			return s
		}
		return s * -math.Expm1(logQ[r]-logQ[l])
	}
	// prev[r] = best cost of order[:r] in j-1 groups; cur for j groups.
	prev := make([]float64, n+1)
	cur := make([]float64, n+1)
	cut := make([][]int32, k+1) // cut[j][r]: start of the last group
	for r := 1; r <= n; r++ {
		prev[r] = inf
	}
	for j := 1; j <= k; j++ {
		cut[j] = make([]int32, n+1)
		cur[0] = 0
		for r := 1; r <= n; r++ {
			best, bl := inf, r-1
			// The cost of a group only grows as it extends to the left, so the scan
			// stops once the group alone costs more than the best total.
			for l := r - 1; l >= 0; l-- {
				c := cost(l, r)
				if c >= best {
					break
				}
				if v := prev[l] + c; v < best {
					best, bl = v, l
				}
			}
			cur[r], cut[j][r] = best, int32(bl)
		}
		prev, cur = cur, prev
	}
	var out [][]int
	for j, r := k, n; j >= 1 && r > 0; j-- {
		l := int(cut[j][r])
		out = append(out, append([]int(nil), order[l:r]...))
		r = l
	}
	// Most stable first.
	for a, b := 0, len(out)-1; a < b; a, b = a+1, b-1 {
		out[a], out[b] = out[b], out[a]
	}
	return out
}

// improveGroups moves single components to the group (or an unused group, while fewer
// than k exist) where they save the most expected bytes, until no move saves more than
// a negligible amount.
func improveGroups(items []packItem, groups [][]int, k int, limit float64) [][]int {
	for len(groups) < k {
		groups = append(groups, nil)
	}
	stats := make([]binStat, len(groups))
	var total float64
	for g, members := range groups {
		for _, i := range members {
			stats[g].add(float64(items[i].size), items[i].p, 1)
		}
		total += stats[g].size
	}
	eps := 1e-9 * (total + 1)
	const maxPasses = 64
	for pass := 0; pass < maxPasses; pass++ {
		moved := false
		for g := range groups {
			for m := 0; m < len(groups[g]); m++ {
				i := groups[g][m]
				size, p := float64(items[i].size), items[i].p
				from := stats[g]
				from.add(size, p, -1)
				saved := stats[g].cost() - from.cost()
				best, bestGain := -1, eps
				emptyTried := false
				for h := range groups {
					if h == g {
						continue
					}
					if len(groups[h]) == 0 {
						if emptyTried {
							continue
						}
						emptyTried = true
					}
					to := stats[h]
					to.add(size, p, 1)
					if len(groups[h]) > 0 && to.size > limit {
						continue
					}
					if gain := saved - (to.cost() - stats[h].cost()); gain > bestGain {
						best, bestGain = h, gain
					}
				}
				if best < 0 {
					continue
				}
				stats[g] = from
				stats[best].add(size, p, 1)
				groups[g] = append(groups[g][:m], groups[g][m+1:]...)
				groups[best] = append(groups[best], i)
				m--
				moved = true
			}
		}
		if !moved {
			break
		}
	}
	out := groups[:0]
	for _, g := range groups {
		if len(g) > 0 {
			out = append(out, g)
		}
	}
	return out
}
