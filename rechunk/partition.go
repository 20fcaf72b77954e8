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

// pstat is a group's size, log of the probability that no member changes, and the
// number of members that always change; cost is kept up to date by the caller.
type pstat struct {
	size, logQ float64
	always     int
	cost       float64
}

func costOf(size, logQ float64, always int) float64 {
	if always > 0 {
		return size
	}
	return size * -math.Expm1(logQ)
}

// member is what the search needs of one component.
type member struct {
	size, logQ float64
	always     int
}

func (s *pstat) add(m member, sign float64) {
	s.size += sign * m.size
	s.logQ += sign * m.logQ
	s.always += int(sign) * m.always
	s.cost = costOf(s.size, s.logQ, s.always)
}

// with returns the stat with m added (sign 1) or removed (sign -1), without its cost.
func (s pstat) with(m member, sign float64) (size, logQ float64, always int) {
	return s.size + sign*m.size, s.logQ + sign*m.logQ, s.always + int(sign)*m.always
}

// search is the local search state.
type search struct {
	groups [][]int
	stats  []pstat
	m      map[int]member
	limit  float64 // largest size of a group of several members
	eps    float64 // smallest saving that counts
}

// improveGroups moves single components to the group (or an unused group, while fewer
// than k exist) where they save the most expected bytes. When no single move helps, it
// tries exchanging two components, then merging two groups to isolate a third
// component, and stops when nothing saves more than a negligible amount.
func improveGroups(items []packItem, groups [][]int, k int, limit float64) [][]int {
	for len(groups) < k {
		groups = append(groups, nil)
	}
	s := &search{groups: groups, stats: make([]pstat, len(groups)), m: map[int]member{}, limit: limit}
	var total float64
	for g, members := range groups {
		for _, i := range members {
			it := items[i]
			m := member{size: float64(it.size)}
			if it.p >= 1 {
				m.always = 1
			} else {
				m.logQ = math.Log1p(-it.p)
			}
			s.m[i] = m
			s.stats[g].add(m, 1)
		}
		total += s.stats[g].size
	}
	s.eps = 1e-9 * (total + 1)
	const maxPasses, maxSwapPasses = 64, 4
	swaps := 0
	for pass := 0; pass < maxPasses; pass++ {
		if s.movePass() {
			continue
		}
		if swaps < maxSwapPasses && s.swapPass() {
			swaps++
			continue
		}
		if !s.mergeAndIsolate() {
			break
		}
	}
	out := s.groups[:0]
	for _, g := range s.groups {
		if len(g) > 0 {
			out = append(out, g)
		}
	}
	return out
}

// movePass moves every component whose move to another group saves bytes.
func (s *search) movePass() bool {
	moved := false
	for g := range s.groups {
		for j := 0; j < len(s.groups[g]); j++ {
			i := s.groups[g][j]
			m := s.m[i]
			fs, fl, fa := s.stats[g].with(m, -1)
			saved := s.stats[g].cost - costOf(fs, fl, fa)
			best, bestGain := -1, s.eps
			emptyTried := false
			for h := range s.groups {
				if h == g {
					continue
				}
				if len(s.groups[h]) == 0 {
					if emptyTried {
						continue
					}
					emptyTried = true
				}
				ts, tl, ta := s.stats[h].with(m, 1)
				if len(s.groups[h]) > 0 && ts > s.limit {
					continue
				}
				if gain := saved - (costOf(ts, tl, ta) - s.stats[h].cost); gain > bestGain {
					best, bestGain = h, gain
				}
			}
			if best < 0 {
				continue
			}
			s.stats[g].add(m, -1)
			s.stats[best].add(m, 1)
			s.groups[g] = append(s.groups[g][:j], s.groups[g][j+1:]...)
			s.groups[best] = append(s.groups[best], i)
			j--
			moved = true
		}
	}
	return moved
}

// swapPass exchanges components of different groups where the exchange saves bytes
// (each component with its best partner, in turn).
func (s *search) swapPass() bool {
	swapped := false
	for g := range s.groups {
		for j := range s.groups[g] {
			x := s.m[s.groups[g][j]]
			bh, bn, bestGain := -1, -1, s.eps
			for h := g + 1; h < len(s.groups); h++ {
				for n := range s.groups[h] {
					y := s.m[s.groups[h][n]]
					xs, xl, xa := s.stats[g].size-x.size+y.size, s.stats[g].logQ-x.logQ+y.logQ, s.stats[g].always-x.always+y.always
					ys, yl, ya := s.stats[h].size-y.size+x.size, s.stats[h].logQ-y.logQ+x.logQ, s.stats[h].always-y.always+x.always
					if (len(s.groups[g]) > 1 && xs > s.limit) || (len(s.groups[h]) > 1 && ys > s.limit) {
						continue
					}
					if gain := s.stats[g].cost + s.stats[h].cost - costOf(xs, xl, xa) - costOf(ys, yl, ya); gain > bestGain {
						bh, bn, bestGain = h, n, gain
					}
				}
			}
			if bh < 0 {
				continue
			}
			xi, yi := s.groups[g][j], s.groups[bh][bn]
			s.stats[g].add(x, -1)
			s.stats[g].add(s.m[yi], 1)
			s.stats[bh].add(s.m[yi], -1)
			s.stats[bh].add(x, 1)
			s.groups[g][j], s.groups[bh][bn] = yi, xi
			swapped = true
		}
	}
	return swapped
}

// mergeAndIsolate merges the two groups that cost least together and gives the freed
// group to the component whose isolation saves the most, when that saves bytes overall
// (two steps single moves cannot take, as the first alone costs).
func (s *search) mergeAndIsolate() bool {
	// The three best isolations, so that one outside any merged pair is at hand.
	type iso struct {
		g, j int
		gain float64
	}
	var top []iso
	for g, members := range s.groups {
		if len(members) < 2 {
			continue
		}
		for j, i := range members {
			m := s.m[i]
			rs, rl, ra := s.stats[g].with(m, -1)
			gain := s.stats[g].cost - costOf(rs, rl, ra) - costOf(m.size, m.logQ, m.always)
			if gain <= 0 {
				continue
			}
			top = append(top, iso{g, j, gain})
			sort.Slice(top, func(a, b int) bool { return top[a].gain > top[b].gain })
			if len(top) > 3 {
				top = top[:3]
			}
		}
	}
	if len(top) == 0 {
		return false
	}
	bestGain, ba, bb, bi := s.eps, -1, -1, -1
	for a := range s.groups {
		if len(s.groups[a]) == 0 {
			continue
		}
		for b := a + 1; b < len(s.groups); b++ {
			if len(s.groups[b]) == 0 {
				continue
			}
			sa, sb := s.stats[a], s.stats[b]
			if sa.size+sb.size > s.limit {
				continue
			}
			loss := costOf(sa.size+sb.size, sa.logQ+sb.logQ, sa.always+sb.always) - sa.cost - sb.cost
			for t, is := range top {
				if is.g == a || is.g == b {
					continue
				}
				if gain := is.gain - loss; gain > bestGain {
					bestGain, ba, bb, bi = gain, a, b, t
				}
				break
			}
		}
	}
	if ba < 0 {
		return false
	}
	is := top[bi]
	i := s.groups[is.g][is.j]
	s.stats[is.g].add(s.m[i], -1)
	s.groups[is.g] = append(s.groups[is.g][:is.j], s.groups[is.g][is.j+1:]...)
	for _, x := range s.groups[bb] {
		s.stats[ba].add(s.m[x], 1)
	}
	s.groups[ba] = append(s.groups[ba], s.groups[bb]...)
	s.groups[bb] = []int{i}
	s.stats[bb] = pstat{}
	s.stats[bb].add(s.m[i], 1)
	return true
}
