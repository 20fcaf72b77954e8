package rechunk

import (
	"fmt"
	"sort"
)

// packWithPrior keeps a previous build's layout. With its plan label (which says what
// changed), repackChanged keeps every unchanged layer and refills the changed ones.
// From annotations alone: every component stays in the layer it had; removed
// components leave; new components go to layers of their own when the fresh plan would
// isolate them, else to the previous reserved bin or a new layer. Over budget (e.g.
// --max-layers was lowered), the two shared layers whose merge costs the fewest
// expected bytes are merged; with spare room, components that changed anyway leave
// bins that grew far beyond their share.
//
// Components new to this image that sibling images (families) hold go first into
// copies of the siblings' layers (placeFamily).
func packWithPrior(items []packItem, maxLayers int, prior *priorLayout, families []*priorLayout) ([]*pbin, error) {
	if _, err := newBudget(items, maxLayers); err != nil {
		return nil, err
	}
	pp := &priorPacker{items: items, maxLayers: maxLayers, prior: prior, families: families}
	if err := pp.planFresh(); err != nil {
		return nil, err
	}
	pp.locateUnits()
	pp.separateExclusive()
	pp.dropOrphanParts()
	if prior.fromLabel {
		return pp.repackChanged()
	}
	return pp.keepAnnotated()
}

// priorPacker is the state packWithPrior's steps share.
type priorPacker struct {
	items     []packItem
	maxLayers int
	prior     *priorLayout
	families  []*priorLayout

	// What a fresh plan would do: the components it isolates, and the groups of big
	// files it gives layers of their own, per component.
	freshAlone map[int]bool
	freshSpans map[int][][]unitRef

	// layerUnits are the units each previous layer (by manifest index) keeps.
	layerUnits map[int][]unitRef
	// newMain are the components whose main unit no previous layer keeps.
	newMain []int
	// hasPrior is set for the components whose main unit a previous layer keeps.
	hasPrior []bool
	// placedPart are the big-file parts a previous layer keeps.
	placedPart map[unitRef]bool

	bins     []*pbin
	reserved *pbin // the empty bin kept for the next build's new components, if any

	// With a plan label: the changed previous layers left to refill (slots), and the
	// components to pack into them (pool).
	slots []*pbin
	pool  []int
}

// planFresh learns from a fresh plan which new components it would isolate and which
// big files get layers of their own; a labelled previous build only needs the latter.
func (pp *priorPacker) planFresh() error {
	needFresh := !pp.prior.fromLabel
	for _, it := range pp.items {
		needFresh = needFresh || len(it.parts) > 0
	}
	var fresh []*pbin
	if needFresh {
		var err error
		if fresh, err = packFresh(pp.items, pp.maxLayers); err != nil {
			return err
		}
	}
	pp.freshAlone = map[int]bool{}
	pp.freshSpans = map[int][][]unitRef{}
	for _, b := range fresh {
		switch b.kind {
		case binSingle, binExclusive:
			pp.freshAlone[b.units[0].item] = true
		case binSpan:
			i := b.units[0].item
			pp.freshSpans[i] = append(pp.freshSpans[i], b.units)
		}
	}
	return nil
}

// locateUnits finds the previous layer of every unit.
func (pp *priorPacker) locateUnits() {
	pp.layerUnits = map[int][]unitRef{}
	pp.hasPrior = make([]bool, len(pp.items))
	pp.placedPart = map[unitRef]bool{}
	for i, it := range pp.items {
		if idx := pp.priorLayer(it); idx == 0 {
			pp.newMain = append(pp.newMain, i)
		} else {
			pp.hasPrior[i] = true
			pp.layerUnits[idx] = append(pp.layerUnits[idx], unitRef{item: i})
		}
		for _, pt := range it.parts {
			if j := pp.prior.parts[it.name][pt.key]; j > 0 {
				u := unitRef{item: i, part: pt.key}
				pp.layerUnits[j] = append(pp.layerUnits[j], u)
				pp.placedPart[u] = true
			}
		}
	}
}

// priorLayer returns the previous layer of a component's main unit, 0 for none. A
// previous build may know a source package group by its binary packages' names
// (ostree.components annotations): the layer most of them were in wins, the first on
// a tie.
func (pp *priorPacker) priorLayer(it packItem) int {
	idx := pp.prior.names[it.name]
	if idx != 0 || len(it.aliases) == 0 {
		return idx
	}
	votes := map[int]int{}
	for _, a := range it.aliases {
		if j := pp.prior.names[a]; j > 0 {
			votes[j]++
		}
	}
	for j, v := range votes {
		if idx == 0 || v > votes[idx] || (v == votes[idx] && j < idx) {
			idx = j
		}
	}
	return idx
}

// separateExclusive keeps exclusive content from sharing a layer with another
// component: in a previous layer of several components, exclusive components count as
// new, and big files rejoin their component's main layer.
func (pp *priorPacker) separateExclusive() {
	for idx, us := range pp.layerUnits {
		owners := map[int]bool{}
		for _, u := range us {
			owners[u.item] = true
		}
		if len(owners) < 2 {
			continue
		}
		kept := us[:0]
		for _, u := range us {
			switch {
			case u.part != "":
				delete(pp.placedPart, u)
			case pp.items[u.item].exclusive:
				pp.hasPrior[u.item] = false
				pp.newMain = append(pp.newMain, u.item)
			default:
				kept = append(kept, u)
			}
		}
		pp.layerUnits[idx] = kept
	}
}

// dropOrphanParts lets a big file keep its own layer only while its component keeps a
// main layer as well; otherwise it goes where the component goes.
func (pp *priorPacker) dropOrphanParts() {
	for idx, us := range pp.layerUnits {
		kept := us[:0]
		for _, u := range us {
			if u.part != "" && !pp.hasPrior[u.item] {
				delete(pp.placedPart, u)
				continue
			}
			kept = append(kept, u)
		}
		pp.layerUnits[idx] = kept
	}
}

// keepAnnotated packs against a previous build known from its ostree.components
// annotations only. Nothing says which of its layers change, so every component stays
// where it was and only new components, the budget and oversized bins move anything.
func (pp *priorPacker) keepAnnotated() ([]*pbin, error) {
	pp.keepLayers()
	pp.placeNew()
	if err := pp.fitBudget(); err != nil {
		return nil, err
	}
	pp.splitOversized()
	for _, b := range pp.bins {
		sortUnits(b.units)
	}
	// Reserved last.
	if pp.reserved != nil {
		pp.bins = append(removeBin(pp.bins, pp.reserved), pp.reserved)
	}
	return pp.bins, nil
}

// keepLayers keeps the previous layers, in their order, and the first empty one the
// previous build reserved for new components.
func (pp *priorPacker) keepLayers() {
	for idx := 1; idx <= pp.prior.layers; idx++ {
		us := pp.layerUnits[idx]
		if len(us) == 0 {
			if pp.prior.reserved[idx] && pp.reserved == nil {
				pp.reserved = &pbin{kind: binReserved, prev: idx}
				pp.bins = append(pp.bins, pp.reserved)
			}
			continue
		}
		sortUnits(us)
		pp.bins = append(pp.bins, &pbin{kind: pp.kindOf(us), units: us, prev: idx})
	}
}

// placeNew adds bins for new components: exclusive ones, and those a fresh plan would
// isolate, alone; the others together in one bin, the reserved one when there is one
// (the client has nothing of it either). With room left, a new reserved bin waits for
// the next build's new components.
func (pp *priorPacker) placeNew() {
	items := pp.items
	sort.Slice(pp.newMain, func(a, b int) bool { return items[pp.newMain[a]].name < items[pp.newMain[b]].name })
	placed := pp.placeFamily()
	var newBin *pbin
	for _, i := range pp.newMain {
		it := items[i]
		switch {
		case placed[i]:
		case it.exclusive:
			pp.bins = append(pp.bins, &pbin{kind: binExclusive, units: []unitRef{{item: i}}})
		case pp.freshAlone[i] || it.single:
			pp.bins = append(pp.bins, &pbin{kind: binSingle, units: []unitRef{{item: i}}})
		default:
			if newBin == nil {
				if pp.reserved != nil {
					newBin, pp.reserved = pp.reserved, nil
					newBin.kind = binNew
				} else {
					newBin = &pbin{kind: binNew}
					pp.bins = append(pp.bins, newBin)
				}
			}
			newBin.units = append(newBin.units, unitRef{item: i})
		}
	}
	pp.bins = append(pp.bins, pp.unplacedSpans()...)
	if pp.reserved == nil && len(pp.bins) < pp.maxLayers {
		pp.reserved = &pbin{kind: binReserved}
		pp.bins = append(pp.bins, pp.reserved)
	}
}

// placeFamily gives new components the layers sibling images have them in. A sibling
// layer is copied when every component it holds is new here, not yet placed, neither
// exclusive nor split into big-file layers, and (when the sibling has a plan label) has
// the sibling's digest: the copy then has the same objects at the same paths, so the
// same tar and blob, which a client switching between the images already has and a
// registry already stores. Siblings are tried in order; a layer is copied only while a
// layer of the budget stays free for the rest. It returns the components placed.
func (pp *priorPacker) placeFamily() map[int]bool {
	placed := map[int]bool{}
	if len(pp.families) == 0 {
		return placed
	}
	candidates := map[string]int{}
	for _, i := range pp.newMain {
		it := pp.items[i]
		if !it.exclusive && len(it.parts) == 0 {
			candidates[it.name] = i
		}
	}
	for _, f := range pp.families {
		if !f.fromLabel {
			continue // annotations name binary packages: no exact component sets
		}
		for idx, names := range f.layerMembers() {
			if len(pp.bins)+1 >= pp.maxLayers {
				return placed
			}
			units, ok := pp.familyUnits(f, names, candidates, placed)
			if !ok {
				continue
			}
			for _, u := range units {
				placed[u.item] = true
			}
			pp.bins = append(pp.bins, &pbin{kind: pp.kindOf(units), units: units, family: f.ref, fam: idx + 1})
		}
	}
	return placed
}

// familyUnits returns the units of a sibling layer's components when all are
// candidates with the sibling's content (placeFamily only asks of labelled siblings).
func (pp *priorPacker) familyUnits(f *priorLayout, names []string, candidates map[string]int, placed map[int]bool) ([]unitRef, bool) {
	if len(names) == 0 {
		return nil, false
	}
	units := make([]unitRef, 0, len(names))
	for _, n := range names {
		i, ok := candidates[n]
		if !ok || placed[i] || len(f.parts[n]) > 0 {
			return nil, false
		}
		if f.digests[n] != pp.items[i].digest {
			return nil, false
		}
		units = append(units, unitRef{item: i})
	}
	sortUnits(units)
	return units, true
}

// fitBudget brings the bins within maxLayers (--max-layers may have been lowered
// since the previous build): the reserved bin goes first, as it holds nothing; then
// the cheapest merges; big-file layers fold back into their component's last.
func (pp *priorPacker) fitBudget() error {
	for len(pp.bins) > pp.maxLayers {
		if pp.reserved != nil {
			pp.bins = removeBin(pp.bins, pp.reserved)
			pp.reserved = nil
			continue
		}
		if pp.mergeCheapest() {
			continue
		}
		if pp.foldSpan() {
			continue
		}
		return fmt.Errorf("previous layout of %s cannot be reduced to %d layers", pp.prior.ref, pp.maxLayers)
	}
	return nil
}

func sortUnits(us []unitRef) {
	sort.Slice(us, func(a, b int) bool {
		if us[a].item != us[b].item {
			return us[a].item < us[b].item
		}
		return us[a].part < us[b].part
	})
}

func (pp *priorPacker) kindOf(us []unitRef) binKind {
	owners := map[int]bool{}
	main := false
	for _, u := range us {
		owners[u.item] = true
		if u.part == "" {
			main = true
		}
	}
	switch {
	case !main:
		return binSpan
	case len(owners) > 1:
		return binTier
	case pp.items[us[0].item].exclusive:
		return binExclusive
	default:
		return binSingle
	}
}

func removeBin(bins []*pbin, b *pbin) []*pbin {
	out := bins[:0]
	for _, x := range bins {
		if x != b {
			out = append(out, x)
		}
	}
	return out
}

// binStatOf computes a bin's size and change probability (parts count their own size,
// the main unit the rest of the component).
func (pp *priorPacker) binStatOf(b *pbin) binStat {
	var s binStat
	seen := map[int]bool{}
	for _, u := range b.units {
		it := pp.items[u.item]
		size := it.size
		if u.part != "" {
			for _, pt := range it.parts {
				if pt.key == u.part {
					size = pt.size
				}
			}
		}
		s.size += float64(size)
		if !seen[u.item] {
			seen[u.item] = true
			if it.p >= 1 {
				s.always++
			} else {
				s.logQ += log1m(it.p)
			}
		}
	}
	return s
}

// shareable reports whether b may take in another bin's components: big files,
// exclusive components and the reserved bin stay apart.
func (pp *priorPacker) shareable(b *pbin) bool {
	if b.kind == binReserved || b.kind == binSpan {
		return false
	}
	for _, u := range b.units {
		if pp.items[u.item].exclusive || u.part != "" {
			return false
		}
	}
	return true
}

// mergeCheapest merges the two shared bins whose union costs the fewest bytes: the
// expected bytes it adds per upgrade, plus what this upgrade downloads because a layer
// kept unchanged from the previous build changes (merging two large stable layers to
// make room for a small new component would re-download both right away).
// The merged bin keeps the position of the first.
func (pp *priorPacker) mergeCheapest() bool {
	bs := pp.bins
	best, bi, bj := 0.0, -1, -1
	stats := make([]binStat, len(bs))
	now := make([]float64, len(bs))
	for i, b := range bs {
		stats[i] = pp.binStatOf(b)
		if pp.keptUnchanged(b) {
			now[i] = stats[i].size
		}
	}
	for i := range bs {
		if !pp.shareable(bs[i]) {
			continue
		}
		for j := i + 1; j < len(bs); j++ {
			if !pp.shareable(bs[j]) {
				continue
			}
			m := stats[i]
			m.size += stats[j].size
			m.logQ += stats[j].logQ
			m.always += stats[j].always
			c := m.cost() - stats[i].cost() - stats[j].cost() + now[i] + now[j]
			if bi < 0 || c < best {
				best, bi, bj = c, i, j
			}
		}
	}
	if bi < 0 {
		return false
	}
	bs[bi].units = append(bs[bi].units, bs[bj].units...)
	bs[bi].kind = binTier
	pp.bins = append(bs[:bj], bs[bj+1:]...)
	return true
}

// unplacedSpans returns a span bin for each group of big-file parts the fresh plan
// splits out that has no layer yet.
func (pp *priorPacker) unplacedSpans() []*pbin {
	var bins []*pbin
	for i := range pp.items {
		for _, g := range pp.freshSpans[i] {
			var us []unitRef
			for _, u := range g {
				if !pp.placedPart[u] {
					us = append(us, u)
				}
			}
			if len(us) > 0 {
				bins = append(bins, &pbin{kind: binSpan, units: us})
			}
		}
	}
	return bins
}

// keptUnchanged reports whether b is a previous layer that this build would otherwise
// reproduce as it was.
func (pp *priorPacker) keptUnchanged(b *pbin) bool {
	if b.prev == 0 || b.repacked {
		return false
	}
	for _, u := range b.units {
		if pp.items[u.item].changed {
			return false
		}
	}
	return true
}

// foldSpan moves the smallest big-file layer back into its component's main layer.
func (pp *priorPacker) foldSpan() bool {
	bs := pp.bins
	si := -1
	for i, b := range bs {
		if b.kind == binSpan && (si < 0 || len(b.units) < len(bs[si].units)) {
			si = i
		}
	}
	if si < 0 {
		return false
	}
	pp.bins = append(bs[:si], bs[si+1:]...)
	return true
}

// splitOversized moves changed components out of shared bins that grew to more than
// oversizeFactor times the average shared bin, while layers are left. Unchanged
// components never move, so no unchanged layer changes.
func (pp *priorPacker) splitOversized() {
	const oversizeFactor = 4
	var total float64
	n := 0
	for _, b := range pp.bins {
		if pp.shareable(b) && b.kind != binReserved {
			total += pp.binStatOf(b).size
			n++
		}
	}
	if n == 0 {
		return
	}
	avg := total / float64(n)
	for _, b := range append([]*pbin(nil), pp.bins...) {
		if !pp.shareable(b) || len(b.units) < 2 {
			continue
		}
		for pp.binStatOf(b).size > oversizeFactor*avg && len(pp.bins) < pp.maxLayers {
			pick := -1
			for k, u := range b.units {
				if pp.items[u.item].changed && (pick < 0 || pp.items[u.item].size > pp.items[b.units[pick].item].size) {
					pick = k
				}
			}
			if pick < 0 || len(b.units) < 2 {
				break
			}
			u := b.units[pick]
			b.units = append(b.units[:pick], b.units[pick+1:]...)
			pp.bins = append(pp.bins, &pbin{kind: binSingle, units: []unitRef{u}})
		}
	}
}

// repackChanged keeps a previous layout whose plan label says which components
// changed. Every previous layer whose content stays the same is kept as it was. The
// layers that change anyway (a member changed or left) are downloaded in full whatever
// they hold, so their components, together with the new ones, are packed afresh into
// those layers plus any unused budget: the upgrade costs no more bytes, and the layout
// drifts towards the best one for the change rates the history has observed.
func (pp *priorPacker) repackChanged() ([]*pbin, error) {
	pp.keepUnchanged()
	pp.addNew()
	pp.refill()
	out := pp.bins[:0]
	for _, b := range pp.bins {
		if len(b.units) > 0 {
			out = append(out, b)
		}
	}
	pp.bins = out
	if err := pp.fitBudget(); err != nil {
		return nil, err
	}
	return pp.bins, nil
}

// keepUnchanged keeps the previous layers whose content stays the same. A layer that
// changes anyway becomes a slot to refill and its components join the pool, unless it
// holds what must stay apart (exclusive components, big files, components with big
// files in other layers).
func (pp *priorPacker) keepUnchanged() {
	dirty := pp.leftLayers()
	hasParts := map[int]bool{}
	for u := range pp.placedPart {
		hasParts[u.item] = true
	}
	poolable := func(us []unitRef) bool {
		for _, u := range us {
			if u.part != "" || pp.items[u.item].exclusive || hasParts[u.item] {
				return false
			}
		}
		return true
	}
	for idx := 1; idx <= pp.prior.layers; idx++ {
		us := pp.layerUnits[idx]
		if len(us) == 0 {
			continue // emptied (or reserved) layers cost nothing to drop
		}
		sortUnits(us)
		changed := dirty[idx]
		for _, u := range us {
			if u.part == "" && pp.items[u.item].changed {
				changed = true
			}
		}
		if changed && poolable(us) {
			b := &pbin{kind: binTier, prev: idx, repacked: true}
			pp.bins = append(pp.bins, b)
			pp.slots = append(pp.slots, b)
			for _, u := range us {
				pp.pool = append(pp.pool, u.item)
			}
			continue
		}
		pp.bins = append(pp.bins, &pbin{kind: pp.kindOf(us), units: us, prev: idx})
	}
}

// leftLayers are the previous layers a component left: they change whatever stays.
func (pp *priorPacker) leftLayers() map[int]bool {
	present := make(map[string]bool, len(pp.items))
	for _, it := range pp.items {
		present[it.name] = true
	}
	dirty := map[int]bool{}
	for name, idx := range pp.prior.names {
		if !present[name] {
			dirty[idx] = true
		}
	}
	return dirty
}

// addNew gives new exclusive components, and new components whose big files get layers
// of their own, a main layer of their own, as a fresh plan does; the other new
// components join the pool.
func (pp *priorPacker) addNew() {
	// newMain is filled from maps (separateExclusive walks layers by index in a map):
	// sort it so that the new layers come in the same order on every run.
	sort.Slice(pp.newMain, func(a, b int) bool { return pp.items[pp.newMain[a]].name < pp.items[pp.newMain[b]].name })
	placed := pp.placeFamily()
	for _, i := range pp.newMain {
		switch {
		case placed[i]:
		case pp.items[i].exclusive:
			pp.bins = append(pp.bins, &pbin{kind: binExclusive, units: []unitRef{{item: i}}})
		case len(pp.freshSpans[i]) > 0:
			pp.bins = append(pp.bins, &pbin{kind: binSingle, units: []unitRef{{item: i}}})
		default:
			pp.pool = append(pp.pool, i)
		}
	}
	pp.bins = append(pp.bins, pp.unplacedSpans()...)
}

// refill partitions the pool into the slots first, then into unused budget.
func (pp *priorPacker) refill() {
	k := len(pp.slots) + max(0, pp.maxLayers-len(pp.bins))
	if k == 0 && len(pp.pool) > 0 {
		k = 1 // over budget: fitBudget merges
	}
	groups := partition(pp.items, pp.pool, k)
	isNew := map[int]bool{}
	for _, i := range pp.newMain {
		isNew[i] = true
	}
	for _, g := range groups {
		b := pp.takeSlot(g)
		sort.Ints(g)
		b.units = unitsOf(g)
		b.kind = pp.kindOf(b.units)
		allNew := true
		for _, i := range g {
			allNew = allNew && isNew[i]
		}
		if allNew && b.prev == 0 {
			b.kind = binNew
		}
	}
}

// takeSlot returns the slot whose previous members the group shares most, the first on
// a tie, so that a layer's name and position follow most of its members; a new bin
// when no slot is left.
func (pp *priorPacker) takeSlot(g []int) *pbin {
	best, bestOverlap := -1, -1
	for k, s := range pp.slots {
		overlap := 0
		for _, i := range g {
			if pp.prior.names[pp.items[i].name] == s.prev {
				overlap++
			}
		}
		if overlap > bestOverlap {
			best, bestOverlap = k, overlap
		}
	}
	if best < 0 {
		b := &pbin{kind: binTier}
		pp.bins = append(pp.bins, b)
		return b
	}
	b := pp.slots[best]
	pp.slots = append(pp.slots[:best], pp.slots[best+1:]...)
	return b
}
