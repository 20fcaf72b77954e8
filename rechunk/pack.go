package rechunk

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/bits"
	"sort"
	"strconv"
)

// MinLayers is the smallest layer budget the planner accepts.
const MinLayers = 4

// Packing works on plain data (packItem) and returns bins of units; the planner turns
// them into layers. The objective is the expected number of bytes an upgrade downloads:
// the sum over layers of size × P(any member changes). Stability comes first, though:
// a layer whose components are all unchanged keeps exactly its content, so that the
// client already has it. Fresh plans (packFresh) decide by fixed change tiers and
// hashed positions split in halves, which a package bump barely disturbs; with a
// labelled previous build, only layers that change anyway are repacked (repackChanged,
// partition).

// packItem is what the packer knows of a component.
type packItem struct {
	name      string
	size      int64
	p         float64 // probability of changing in one upgrade
	exclusive bool
	// single asks for a layer of its own (kernel/initramfs, package database).
	single bool
	// aliases are other names the component may have had in a previous build's
	// ostree.components annotation (binary package names of a source package group).
	aliases []string
	// parts are big files of a large component that may get layers of their own.
	parts []packPart
	// changed is set when a previous build showed the component with other content.
	changed bool
	// digest identifies the component's content (component.digestHex).
	digest string
}

// packPart is one big file of a large component.
type packPart struct {
	key  string // file path
	size int64
}

// unitRef is the unit packing moves: a component (part "") or one of its big files.
type unitRef struct {
	item int
	part string
}

type binKind int

const (
	binExclusive binKind = iota // the main layer of an exclusive component
	binSpan                     // big files of a large component
	binSingle                   // one shared component alone
	binTier                     // shared components of similar change rates
	binNew                      // components new since the previous build
	binReserved                 // empty: room for components of the next build
)

// pbin is a planned layer.
type pbin struct {
	kind  binKind
	tier  int
	units []unitRef
	// prev is the layer's 1-based manifest index in the previous build, 0 when new.
	prev int
	// repacked marks a previous layer that changed anyway and was refilled.
	repacked bool
	// family names the sibling image whose layer fam (1-based manifest index) this bin
	// rebuilds exactly.
	family string
	fam    int
}

// tierBounds split change probabilities per upgrade into tiers. They are fixed, not
// derived from the data, so that a component only changes tier when its own rate does.
// The lowest bound sits between a package at the rate floor (minChangesPerYear: 0.0048
// per weekly upgrade) and its stable part (a quarter of that): content that only a new
// upstream version changes then fills layers of its own tier, so a big stable part no
// longer needs a layer to itself to stay clear of the small packages that stable
// updates do touch, and those small packages get more, smaller layers. On the Debian
// security update of the integration suite this took the 64-layer download from 1.32x
// to 1.26x the changed-files bound (docs/benchmarks.md).
var tierBounds = []float64{0.003, 0.02, 0.06, 0.15, 0.35, 0.7}

func tierOf(p float64) int {
	t := 0
	for _, b := range tierBounds {
		if p >= b {
			t++
		}
	}
	return t
}

var tierNames = []string{"almost never changing", "rarely changing", "seldom changing", "occasionally changing", "regularly changing", "often changing", "nearly always changing"}

// rank is a rendezvous hash: a unit goes to the bin with the highest rank, so adding
// or removing one bin only moves the units that prefer that bin.
func rank(name string, salt string, bin int) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write([]byte(salt))
	h.Write([]byte{0})
	h.Write([]byte(strconv.Itoa(bin)))
	// fnv alone mixes the last bytes poorly; finish with a 64-bit mixer.
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// binStat accumulates a bin's size and the probability that none of it changes.
type binStat struct {
	size   float64
	logQ   float64 // sum of log(1-p) over members with p < 1
	always int     // members with p >= 1
}

func (s *binStat) add(size float64, p float64, sign float64) {
	s.size += sign * size
	if p >= 1 {
		s.always += int(sign)
	} else {
		s.logQ += sign * math.Log1p(-p)
	}
}

func (s binStat) prob() float64 {
	if s.always > 0 {
		return 1
	}
	return -math.Expm1(s.logQ)
}

func (s binStat) cost() float64 { return s.size * s.prob() }

// budget splits the layer budget: exclusive main layers, and the rest for shared
// components and big-file layers. No layer is left empty for new components: the next
// build with this one as previous build puts them into layers that change anyway
// (repackChanged), or into a layer of their own, which costs only their own bytes.
type budget struct {
	total, exclusive, spare int
}

func newBudget(items []packItem, maxLayers int) (budget, error) {
	if maxLayers < MinLayers {
		return budget{}, fmt.Errorf("at least %d layers are needed, --max-layers is %d", MinLayers, maxLayers)
	}
	b := budget{total: maxLayers}
	shared := 0
	for _, it := range items {
		if it.exclusive {
			b.exclusive++
		} else {
			shared++
		}
	}
	need := b.exclusive
	if shared > 0 {
		need++
	}
	if need > maxLayers {
		return budget{}, fmt.Errorf("%d exclusive components (user.component) need %d layers, more than --max-layers %d; raise --max-layers or merge components", b.exclusive, need, maxLayers)
	}
	b.spare = maxLayers - b.exclusive
	return b, nil
}

// packFresh plans without a previous build. Every decision depends on the component
// itself (its name, size class and change tier) or on the greedy allocation of spare
// layers, so a package bump moves nothing but that package in the common case.
func packFresh(items []packItem, maxLayers int) ([]*pbin, error) {
	bud, err := newBudget(items, maxLayers)
	if err != nil {
		return nil, err
	}
	spare := bud.spare
	shared, forced, sharedMin := forcedSingles(items, spare)
	spans := allocateSpans(items, (spare-len(forced)-sharedMin)/4, spare-len(forced)-sharedMin, len(shared) > len(forced))

	var bins []*pbin
	// Exclusive components first, by name, each followed by its big-file layers.
	order := make([]int, len(items))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return items[order[a]].name < items[order[b]].name })
	spanBins := func(i int) {
		for _, g := range spanGroups(items[i], i, spans[i]) {
			bins = append(bins, &pbin{kind: binSpan, units: g})
		}
	}
	for _, i := range order {
		if items[i].exclusive {
			bins = append(bins, &pbin{kind: binExclusive, units: []unitRef{{item: i}}})
			spanBins(i)
		}
	}
	used := 0
	for _, k := range spans {
		used += k
	}
	isForced := map[int]bool{}
	for _, i := range forced {
		isForced[i] = true
	}
	// Shared components with big-file layers are alone in their main layer as well.
	for i, k := range spans {
		if k > 0 && !items[i].exclusive && !isForced[i] {
			isForced[i] = true
			forced = append(forced, i)
		}
	}
	var rest []int
	for _, i := range shared {
		if !isForced[i] {
			rest = append(rest, i)
		}
	}
	left := spare - used - len(forced)
	singles, tiers := packShared(items, rest, left)
	singles = append(singles, forced...)
	sort.Slice(singles, func(a, b int) bool { return items[singles[a]].name < items[singles[b]].name })
	for _, i := range singles {
		bins = append(bins, &pbin{kind: binSingle, units: []unitRef{{item: i}}})
		if !items[i].exclusive {
			spanBins(i)
		}
	}
	bins = append(bins, tiers...)
	if len(bins) > maxLayers {
		return nil, fmt.Errorf("internal error: planned %d layers for a budget of %d", len(bins), maxLayers)
	}
	return bins, nil
}

// forcedSingles returns the shared components, those that ask for a layer of their own
// (single) and get one, and how many bins the others need (0 or 1). A single only gets
// its layer while one of the spare layers is left for the rest.
func forcedSingles(items []packItem, spare int) (shared, forced []int, sharedMin int) {
	for i, it := range items {
		if !it.exclusive {
			shared = append(shared, i)
			if it.single {
				forced = append(forced, i)
			}
		}
	}
	if len(shared) > 0 {
		sharedMin = 1
	}
	for len(forced) > 0 && spare-len(forced) < sharedMin && len(forced) < len(shared) {
		forced = forced[:len(forced)-1]
	}
	if len(forced) == len(shared) {
		sharedMin = 0
	}
	return shared, forced, sharedMin
}

// spanMinParts is how many big files a component needs before they get layers of
// their own, unless other content remains beside them.
const spanMinParts = 2

// allocateSpans decides how many extra layers each large component's big files get,
// within a cap: the component with the most big-file bytes per layer gets the next one.
func allocateSpans(items []packItem, capShared, capAll int, haveShared bool) map[int]int {
	limit := capShared
	if !haveShared {
		limit = capAll
	}
	out := map[int]int{}
	for limit > 0 {
		best, bestScore := -1, 0.0
		for i, it := range items {
			n := len(it.parts)
			if n == 0 || out[i] >= n {
				continue
			}
			var bytes int64
			for _, pt := range it.parts {
				bytes += pt.size
			}
			score := float64(bytes) / float64(out[i]+1)
			if best < 0 || score > bestScore || (score == bestScore && it.name < items[best].name) {
				best, bestScore = i, score
			}
		}
		if best < 0 {
			break
		}
		out[best]++
		limit--
	}
	return out
}

// spanGroups groups a component's big files into k layers: each alone when k allows,
// else by rendezvous hash of the path, so that a file keeps its group across builds.
func spanGroups(it packItem, item, k int) [][]unitRef {
	if k <= 0 {
		return nil
	}
	groups := make([][]unitRef, k)
	parts := append([]packPart(nil), it.parts...)
	sort.Slice(parts, func(a, b int) bool { return parts[a].key < parts[b].key })
	for i, pt := range parts {
		g := i
		if k < len(parts) {
			g, best := 0, uint64(0)
			for j := 0; j < k; j++ {
				if r := rank(pt.key, it.name, j); r > best {
					g, best = j, r
				}
			}
			groups[g] = append(groups[g], unitRef{part: pt.key})
			continue
		}
		groups[g] = append(groups[g], unitRef{part: pt.key})
	}
	var out [][]unitRef
	for _, g := range groups {
		if len(g) > 0 {
			out = append(out, g)
		}
	}
	for _, g := range out {
		for i := range g {
			g[i].item = item
		}
	}
	return out
}

// packShared packs shared components into at most n bins: a greedy loop spends one
// layer at a time on whichever saves the most expected bytes, either isolating a
// component or adding a bin to a change tier (splitting one of its bins, splitBin).
func packShared(items []packItem, idx []int, n int) (singles []int, bins []*pbin) {
	if len(idx) == 0 || n <= 0 {
		if len(idx) > 0 {
			return nil, []*pbin{{kind: binTier, tier: 0, units: unitsOf(idx)}}
		}
		return nil, nil
	}
	sp := newSharedPacker(items, idx, n)
	for used := len(sp.tierCount); used < n; used++ {
		gain, mi := sp.bestIsolation()
		tier := -1
		if g, t := sp.bestTierSplit(gain); t >= 0 {
			gain, mi, tier = g, -1, t
		}
		if gain <= 0 {
			break
		}
		if tier >= 0 {
			sp.splitTier(tier)
		} else {
			sp.isolate(mi)
		}
	}
	return sp.singles, sp.tierBins()
}

// sharedPacker is packShared's state: the bin of its tier each component hashes into,
// and what each bin would cost.
type sharedPacker struct {
	items     []packItem
	members   []tierMember
	tierList  []int               // tiers present, ascending
	tierCount map[int]int         // bins per tier, for the tiers that have bins
	stats     map[[2]int]*binStat // per tier and bin
	single    map[int]bool        // isolated components
	singles   []int               // isolated components, in the order isolated
}

// tierMember is a shared component in its tier's bins.
type tierMember struct {
	item int
	tier int
	bin  int    // index among the tier's bins
	pos  uint64 // its place in the tier's hash space (splitBin)
}

// splitBin returns the bin of position h when a tier has k bins. A tier's hash space
// starts as one bin and is split in halves in a fixed order, breadth first: bin n
// (n = 2^d + r) is the upper half of the r-th interval of depth d, which the bins
// before it hold. Going from k to k+1 bins therefore splits one bin and leaves every
// other bin exactly as it was, and k−1 merges two: a budget that gives a tier one
// layer more or less changes one or two of its layers, not all of them, as rendezvous
// hashing would (each new bin draws members from every other).
func splitBin(h uint64, k int) int {
	bin := 0
	for n := 1; n < k; n++ {
		d := bits.Len(uint(n)) - 1
		r := uint64(n - 1<<d)
		if d > 0 && h>>(64-d) != r {
			continue
		}
		if h>>(63-d)&1 == 1 {
			bin = n
		}
	}
	return bin
}

// newSharedPacker puts every component of idx into the one bin of its tier. With fewer
// bins than tiers, neighbouring tiers share one, so that a component's tier still
// depends on its own rate only.
func newSharedPacker(items []packItem, idx []int, n int) *sharedPacker {
	sp := &sharedPacker{items: items, tierCount: map[int]int{}, stats: map[[2]int]*binStat{}, single: map[int]bool{}}
	present := map[int]bool{}
	for _, i := range idx {
		present[tierOf(items[i].p)] = true
	}
	for t := range present {
		sp.tierList = append(sp.tierList, t)
	}
	sort.Ints(sp.tierList)
	tierGroup := map[int]int{}
	for k, t := range sp.tierList {
		if len(sp.tierList) > n {
			tierGroup[t] = sp.tierList[k*n/len(sp.tierList)]
		} else {
			tierGroup[t] = t
		}
	}
	sp.members = make([]tierMember, 0, len(idx))
	for _, i := range idx {
		sp.members = append(sp.members, tierMember{item: i, tier: tierGroup[tierOf(items[i].p)]})
	}
	for _, m := range sp.members {
		sp.tierCount[m.tier] = 1
	}
	for k := range sp.members {
		m := &sp.members[k]
		m.pos = rank(items[m.item].name, strconv.Itoa(m.tier), 0)
		sp.stat(m.tier, 0).add(float64(items[m.item].size), items[m.item].p, 1)
	}
	return sp
}

func (sp *sharedPacker) stat(t, b int) *binStat {
	k := [2]int{t, b}
	if sp.stats[k] == nil {
		sp.stats[k] = &binStat{}
	}
	return sp.stats[k]
}

// bestIsolation returns the member whose layer of its own saves the most expected
// bytes, and the saving; -1 when none saves anything. A member alone in its bin has
// nothing to gain.
func (sp *sharedPacker) bestIsolation() (gain float64, member int) {
	bestGain, bestMember := 0.0, -1
	binSize := map[[2]int]int{}
	for _, m := range sp.members {
		if !sp.single[m.item] {
			binSize[[2]int{m.tier, m.bin}]++
		}
	}
	for k, m := range sp.members {
		if sp.single[m.item] || binSize[[2]int{m.tier, m.bin}] < 2 {
			continue
		}
		it := sp.items[m.item]
		s := *sp.stat(m.tier, m.bin)
		before := s.cost()
		s.add(float64(it.size), it.p, -1)
		gain := before - s.cost() - float64(it.size)*it.p
		if gain > bestGain*(1+1e-12) {
			bestGain, bestMember = gain, k
		}
	}
	return bestGain, bestMember
}

// bestTierSplit returns the tier whose next bin saves more than floor, the most, and
// the saving; -1 when none does.
func (sp *sharedPacker) bestTierSplit(floor float64) (gain float64, tier int) {
	bestGain, bestTier := floor, -1
	for _, t := range sp.tierList {
		k, ok := sp.tierCount[t]
		if !ok {
			continue
		}
		if g, ok := sp.splitGain(t, k); ok && g > bestGain*(1+1e-12) {
			bestGain, bestTier = g, t
		}
	}
	return bestGain, bestTier
}

// splitGain is what adding bin k to tier t saves: the members that rank the new bin
// highest move there. ok is false when none would.
func (sp *sharedPacker) splitGain(t, k int) (gain float64, ok bool) {
	var moved binStat
	from := make([]*binStat, k)
	for _, m := range sp.members {
		if m.tier != t || sp.single[m.item] {
			continue
		}
		it := sp.items[m.item]
		if splitBin(m.pos, k+1) == k {
			moved.add(float64(it.size), it.p, 1)
			if from[m.bin] == nil {
				s := *sp.stat(t, m.bin)
				from[m.bin] = &s
			}
			from[m.bin].add(float64(it.size), it.p, -1)
		}
	}
	if moved.size == 0 && moved.always == 0 && moved.logQ == 0 {
		return 0, false
	}
	for b, s := range from {
		if s != nil {
			gain += sp.stat(t, b).cost() - s.cost()
		}
	}
	gain -= moved.cost()
	return gain, true
}

// splitTier adds a bin to tier t and moves the members that rank it highest.
func (sp *sharedPacker) splitTier(t int) {
	k := sp.tierCount[t]
	for j := range sp.members {
		m := &sp.members[j]
		if m.tier != t || sp.single[m.item] {
			continue
		}
		it := sp.items[m.item]
		if splitBin(m.pos, k+1) == k {
			sp.stat(t, m.bin).add(float64(it.size), it.p, -1)
			m.bin = k
			sp.stat(t, k).add(float64(it.size), it.p, 1)
		}
	}
	sp.tierCount[t] = k + 1
}

// isolate gives member k a layer of its own.
func (sp *sharedPacker) isolate(k int) {
	m := sp.members[k]
	sp.single[m.item] = true
	sp.stat(m.tier, m.bin).add(float64(sp.items[m.item].size), sp.items[m.item].p, -1)
	sp.singles = append(sp.singles, m.item)
}

// tierBins returns the tier bins, most stable tier first, without the bins that ended
// up empty.
func (sp *sharedPacker) tierBins() []*pbin {
	byBin := map[[2]int][]int{}
	for _, m := range sp.members {
		if !sp.single[m.item] {
			k := [2]int{m.tier, m.bin}
			byBin[k] = append(byBin[k], m.item)
		}
	}
	keys := make([][2]int, 0, len(byBin))
	for k := range byBin {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool {
		if keys[a][0] != keys[b][0] {
			return keys[a][0] < keys[b][0]
		}
		return keys[a][1] < keys[b][1]
	})
	var bins []*pbin
	for _, k := range keys {
		bins = append(bins, &pbin{kind: binTier, tier: k[0], units: unitsOf(byBin[k])})
	}
	return bins
}

func unitsOf(idx []int) []unitRef {
	out := make([]unitRef, len(idx))
	for i, v := range idx {
		out[i] = unitRef{item: v}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].item < out[b].item })
	return out
}

func log1m(p float64) float64 { return math.Log1p(-p) }
