package rechunk

import (
	"context"
	"fmt"
	"math"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/rechunker-dev/rechunker/internal/units"
	"github.com/rechunker-dev/rechunker/ostree"
)

// Defaults of Options.
const (
	DefaultMaxLayers = 64
	// DefaultSpanFileSize is the size from which a file of a large component may get a
	// layer of its own.
	DefaultSpanFileSize = 16 << 20
	// DefaultUpdateInterval is the assumed time between two upgrades a user installs.
	DefaultUpdateInterval = 7 * 24 * time.Hour
	// defaultChangesPerYear is assumed for components without any change signal.
	defaultChangesPerYear = 6
	// minChangesPerYear keeps packages without recent changelog entries from looking
	// frozen forever.
	minChangesPerYear = 0.25
)

// Options configure NewPlan.
type Options struct {
	// MaxLayers bounds the chunk layers; the commit layer comes in addition.
	MaxLayers int
	// Previous are earlier builds of the same image (any order). The newest one with a
	// readable layout is kept; all with a plan label feed the change history.
	Previous []Previous
	// Family are builds of sibling images (variants built from the same packages), in
	// order of preference. They are not history: a component new to this image goes
	// where a sibling has it when a whole sibling layer can be rebuilt byte for byte,
	// and without previous builds the first sibling's layout is followed.
	Family []Previous
	// Warn receives problems the planner works around; nil discards them.
	Warn func(string)
	// BigFileSize makes unowned files at least this big components of their own.
	BigFileSize int64
	// SpanFileSize lets files at least this big inside large components get layers of
	// their own.
	SpanFileSize int64
	// UpdateInterval is the expected time between two upgrades.
	UpdateInterval time.Duration
	// NoVolatileSplit keeps every package whole instead of splitting off the files
	// that package rebuilds change (volatile.go).
	NoVolatileSplit bool
}

// NewPlan assigns every file of the finalized tree t to a component and packs the
// components into at most o.MaxLayers layers. store holds t's content (package
// databases and changelogs are read from it).
func NewPlan(ctx context.Context, t *ostree.Tree, store *ostree.Store, o Options) (*Plan, error) {
	if o.MaxLayers == 0 {
		o.MaxLayers = DefaultMaxLayers
	}
	if o.MaxLayers < MinLayers {
		return nil, fmt.Errorf("plan: at least %d layers are needed, --max-layers is %d", MinLayers, o.MaxLayers)
	}
	if o.BigFileSize <= 0 {
		o.BigFileSize = DefaultBigFileSize
	}
	if o.SpanFileSize <= 0 {
		o.SpanFileSize = DefaultSpanFileSize
	}
	if o.UpdateInterval <= 0 {
		o.UpdateInterval = DefaultUpdateInterval
	}
	plan := &Plan{Labels: map[string]string{}}
	warn := func(s string) {
		plan.Warnings = append(plan.Warnings, s)
		if o.Warn != nil {
			o.Warn(s)
		}
	}

	files, comps, err := components(ctx, t, store, o, warn)
	if err != nil {
		return nil, err
	}
	if err := planComponents(plan, files, comps, o, warn); err != nil {
		return nil, err
	}
	return plan, nil
}

// planComponents packs components into layers, keeping a previous build's layout when
// one is given, and fills plan. Every component's files are a run of files (its at
// field), and the plan's layers take files over: the components' lists are gone after.
func planComponents(plan *Plan, files []FileRef, comps []*component, o Options, warn func(string)) error {
	prior, history := readHistory(o.Previous, comps, warn)
	families := readFamilies(o.Family, warn)
	if prior == nil && len(families) > 0 {
		// A first release of this image: follow the sibling's layout, so that what
		// both have lands in the same layers.
		prior, history = families[0], familyHistory(families[0], comps)
		families = families[1:]
	}
	items := packItems(comps, o, prior, history)

	var bins []*pbin
	var err error
	if prior != nil {
		bins, err = packWithPrior(items, o.MaxLayers, prior, families)
		if err == nil {
			plan.FromPrevious = prior.ref
		} else {
			warn(fmt.Sprintf("previous build %s: %v; planning afresh", prior.ref, err))
		}
	}
	if bins == nil {
		if bins, err = packFresh(items, o.MaxLayers); err != nil {
			return fmt.Errorf("plan: %w", err)
		}
	}
	lb := &layerBuilder{plan: plan, files: files, comps: comps, items: items, bins: bins, prior: prior, hist: history}
	return lb.build()
}

// components runs the component sources over the tree. It returns the list of the
// tree's files, of which each component's files are a run.
func components(ctx context.Context, t *ostree.Tree, store *ostree.Store, o Options, warn func(string)) ([]FileRef, []*component, error) {
	r := newResolver(t)
	sources := []componentSource{newXattrSource(t, warn)}
	var pkgs []*pkgSource
	var dbDirs []string
	for _, l := range packageLoaders(ctx, t, store, r, warn) {
		s, dir, err := l.load()
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			warn(fmt.Sprintf("%s database %s is unreadable, its packages' files are planned without it: %v", l.name, dir, err))
		}
		if dir != "" {
			dbDirs = append(dbDirs, strings.TrimSuffix(dir, "/")+"/")
		}
		if s != nil {
			sources = append(sources, s)
			pkgs = append(pkgs, s)
		}
	}
	// rpm-ostree keeps a hardlinked copy of the base rpmdb.
	if d := r.dir("/usr/lib/sysimage/rpm-ostree-base-db", 0); d != "" {
		dbDirs = append(dbDirs, d+"/")
	}
	sources = append(sources,
		newKernelSource(t),
		&pkgDBSource{dirs: dbDirs},
		&dirOwnerSource{pkgs: pkgs, maxSize: o.BigFileSize},
		&bigFileSource{min: o.BigFileSize},
		stateDirSource{},
	)
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	// assign reorders r.files: the resolver is not used after this.
	comps := assign(r.files, sources)
	years := o.UpdateInterval.Hours() / (365 * 24)
	for _, c := range comps {
		rate := c.info.changesPerYear
		switch {
		case c.info.alwaysChanges:
			c.p = 1
			continue
		case rate < 0:
			rate = defaultChangesPerYear
		case rate < minChangesPerYear:
			rate = minChangesPerYear
		}
		c.p = -math.Expm1(-rate * years)
	}
	if !o.NoVolatileSplit {
		comps = splitVolatile(comps)
	}
	return r.files, comps, nil
}

// pkgLoader reads one kind of package database; load returns a nil source when the
// tree has no such database, and the database's directory when it has one.
type pkgLoader struct {
	name string
	load func() (*pkgSource, string, error)
}

func packageLoaders(ctx context.Context, t *ostree.Tree, store *ostree.Store, r *resolver, warn func(string)) []pkgLoader {
	return []pkgLoader{
		{"rpm", func() (*pkgSource, string, error) { return loadRPM(ctx, store, t, r) }},
		{"dpkg", func() (*pkgSource, string, error) { return loadDpkg(ctx, store, r, warn) }},
		{"pacman", func() (*pkgSource, string, error) { return loadPacman(ctx, store, r, warn) }},
		{"apk", func() (*pkgSource, string, error) { return loadAPK(ctx, store, r) }},
	}
}

// componentHistory is what previous builds say about one component.
type componentHistory struct {
	known   bool // a previous plan label knew the component
	changed bool // its digest differs from the newest label's
	bits    uint64
	seen    int
}

// readHistory picks the layout to keep (the newest previous build that has one) and
// reconstructs per-component change history from the plan labels.
func readHistory(prev []Previous, comps []*component, warn func(string)) (*priorLayout, map[string]componentHistory) {
	sorted := append([]Previous(nil), prev...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Created.After(sorted[j].Created) })
	var layouts []*priorLayout
	for _, p := range sorted {
		if l := readPrior(p, warn); l != nil {
			layouts = append(layouts, l)
		} else {
			warn(fmt.Sprintf("previous build %s is not chunked (no %s label, no %s annotations); ignored", p.Ref, PlanLabel, ComponentsAnnotation))
		}
	}
	hist := map[string]componentHistory{}
	if len(layouts) == 0 {
		return nil, hist
	}
	// Chain of labelled builds, oldest first, then this build.
	var labelled []*priorLayout
	for i := len(layouts) - 1; i >= 0; i-- {
		if layouts[i].fromLabel {
			labelled = append(labelled, layouts[i])
		}
	}
	if len(labelled) > 0 {
		newest := labelled[len(labelled)-1]
		for _, c := range comps {
			h := componentHistory{}
			// Pairwise comparisons between the given builds.
			for k := 1; k < len(labelled); k++ {
				a, okA := labelled[k-1].digests[c.name]
				b, okB := labelled[k].digests[c.name]
				if okA && okB {
					h.bits = h.bits<<1 | uint64(boolBit(a != b))
					h.seen++
				}
			}
			// The newest label's rolling record reaches further back when it has more.
			if rec, ok := newest.history[c.name]; ok && rec.Seen > h.seen {
				h.bits, h.seen = rec.History, rec.Seen
			}
			if d, ok := newest.digests[c.name]; ok {
				h.known = true
				h.changed = d != c.digestHex()
				h.bits = h.bits<<1 | uint64(boolBit(h.changed))
				h.seen = min(h.seen+1, historyBits)
			}
			hist[c.name] = h
		}
	}
	return layouts[0], hist
}

// readFamilies reads the siblings' layouts; a sibling that is not chunked is ignored
// with a warning.
func readFamilies(fam []Previous, warn func(string)) []*priorLayout {
	var out []*priorLayout
	for _, f := range fam {
		l := readPrior(f, warn)
		if l == nil {
			warn(fmt.Sprintf("family image %s is not chunked (no %s label, no %s annotations); ignored", f.Ref, PlanLabel, ComponentsAnnotation))
			continue
		}
		l.family = true
		out = append(out, l)
	}
	return out
}

// familyHistory is what a sibling's plan label says of this image's components: which
// differ from the sibling's (so its layers that would change are refilled) and the
// sibling's record of how often each changed, the best estimate of their rates before
// this image has releases of its own. The comparison with the sibling is not a release
// of this image, so it adds nothing to the record.
func familyHistory(f *priorLayout, comps []*component) map[string]componentHistory {
	hist := map[string]componentHistory{}
	if !f.fromLabel {
		return hist
	}
	for _, c := range comps {
		d, ok := f.digests[c.name]
		if !ok {
			continue
		}
		rec := f.history[c.name]
		hist[c.name] = componentHistory{known: true, changed: d != c.digestHex(), bits: rec.History, seen: min(rec.Seen, historyBits)}
	}
	return hist
}

func boolBit(b bool) int {
	if b {
		return 1
	}
	return 0
}

// packItems turns components into what the packer sees.
func packItems(comps []*component, o Options, prior *priorLayout, hist map[string]componentHistory) []packItem {
	items := make([]packItem, len(comps))
	for i, c := range comps {
		p := c.p
		if h := hist[c.name]; h.seen > 0 {
			p = observedRate(popcount(h.bits, h.seen), h.seen, c.p)
		}
		it := packItem{
			name: c.name, size: c.size, p: p, exclusive: c.info.exclusive, digest: c.digestHex(),
			single:  c.name == KernelComponent || c.name == PackageDBComponent,
			aliases: c.info.packages, changed: hist[c.name].changed,
		}
		it.parts = spanParts(c, o.SpanFileSize)
		items[i] = it
	}
	return items
}

// spanParts lists the big files of a large component (one path per object).
func spanParts(c *component, min int64) []packPart {
	if c.size < 2*min {
		return nil
	}
	var parts []packPart
	var rest int64
	seen := map[ostree.Checksum]bool{}
	for _, fe := range c.files {
		if seen[fe.File.Checksum] {
			continue
		}
		seen[fe.File.Checksum] = true
		if fe.File.Size >= min && !fe.File.Header.IsSymlink() {
			parts = append(parts, packPart{key: fe.Path(), size: fe.File.Size})
		} else {
			rest += fe.File.Size
		}
	}
	if len(parts) < spanMinParts && !(len(parts) == 1 && rest >= min) {
		return nil
	}
	return parts
}

// layerBuilder turns bins into the plan's layers, with their files, names and the
// history label.
type layerBuilder struct {
	plan *Plan
	// files is the tree's files, each component's a run of it; fillLayers reorders it
	// into the layers' lists.
	files []FileRef
	comps []*component
	// nfiles is each component's file count, kept when fillLayers takes the lists.
	nfiles []int
	items  []packItem
	bins   []*pbin
	prior  *priorLayout
	hist   map[string]componentHistory

	// mainBin is the bin of each component's main unit.
	mainBin []int
	// partKeyBin and partBin are the bins of each component's big files that have bins
	// of their own, by path and by object (every path of the object goes there).
	partKeyBin []map[string]int
	partBin    []map[ostree.Checksum]int
	// members are the components with files in each bin (or their main unit), ascending.
	members [][]int
}

// build fills the plan's layers, component summaries and history label.
func (lb *layerBuilder) build() error {
	if err := lb.placeUnits(); err != nil {
		return err
	}
	layers, err := lb.fillLayers()
	if err != nil {
		return err
	}
	for bi, b := range lb.bins {
		l := &layers[bi]
		slices.SortFunc(l.Files, ComparePaths)
		sort.Ints(lb.members[bi])
		q := 1.0
		for _, i := range lb.members[bi] {
			l.Components = append(l.Components, lb.comps[i].name)
			q *= 1 - lb.items[i].p
		}
		sort.Strings(l.Components)
		l.ChangeProbability = 1 - q
		l.Name, l.Why = lb.describe(b, lb.members[bi])
		switch {
		case b.family != "":
			l.Follows = b.family
		case b.prev > 0 && !b.repacked && lb.prior != nil:
			l.Follows = lb.prior.ref
		}
	}
	for bi := range layers {
		layers[bi].Size = distinctSize(layers[bi].Files)
	}
	lb.plan.Layers = layers
	return lb.record()
}

// placeUnits finds the bin of every component's main unit and big files.
func (lb *layerBuilder) placeUnits() error {
	n := len(lb.items)
	lb.mainBin = make([]int, n)
	for i := range lb.mainBin {
		lb.mainBin[i] = -1
	}
	lb.partBin = make([]map[ostree.Checksum]int, n)
	lb.partKeyBin = make([]map[string]int, n)
	for bi, b := range lb.bins {
		for _, u := range b.units {
			if u.part == "" {
				lb.mainBin[u.item] = bi
				continue
			}
			if lb.partKeyBin[u.item] == nil {
				lb.partKeyBin[u.item] = map[string]int{}
				lb.partBin[u.item] = map[ostree.Checksum]int{}
			}
			lb.partKeyBin[u.item][u.part] = bi
		}
	}
	for i, c := range lb.comps {
		if lb.mainBin[i] < 0 {
			return fmt.Errorf("plan: internal error: component %s has no layer", c.name)
		}
		if lb.partKeyBin[i] == nil {
			continue
		}
		for _, fe := range c.files {
			if bi, ok := lb.partKeyBin[i][fe.Path()]; ok {
				lb.partBin[i][fe.File.Checksum] = bi
			}
		}
	}
	return nil
}

// binOf returns the bin of file fe of component i.
func (lb *layerBuilder) binOf(i int, fe FileRef) int {
	if pb, ok := lb.partBin[i][fe.File.Checksum]; ok {
		return pb
	}
	return lb.mainBin[i]
}

// fillLayers returns a layer per bin with its files, unsorted, and records each bin's
// members. The layers' lists are runs of lb.files, reordered in place (a second list
// of a 300k-file tree is 13 MB); the components' lists are cleared, since their runs
// now hold other files.
func (lb *layerBuilder) fillLayers() ([]Layer, error) {
	layers := make([]Layer, len(lb.bins))
	lb.members = make([][]int, len(lb.bins))
	lb.nfiles = make([]int, len(lb.comps))
	start := make([]int, len(lb.bins)+1)
	for i, c := range lb.comps {
		if len(c.files) > 0 && (c.at < 0 || c.at+len(c.files) > len(lb.files) || &lb.files[c.at] != &c.files[0]) {
			return nil, fmt.Errorf("plan: internal error: component %s is not a run of the file list", c.name)
		}
		present := map[int]bool{lb.mainBin[i]: true}
		for _, fe := range c.files {
			bi := lb.binOf(i, fe)
			start[bi+1]++
			present[bi] = true
		}
		for bi := range present {
			lb.members[bi] = append(lb.members[bi], i)
		}
	}
	for bi := 1; bi < len(start); bi++ {
		start[bi] += start[bi-1]
	}
	if start[len(lb.bins)] != len(lb.files) {
		return nil, fmt.Errorf("plan: internal error: components hold %d files of %d", start[len(lb.bins)], len(lb.files))
	}
	// The runs must not overlap, or dest is no permutation; with as many files as
	// the list, they then cover it.
	dest := make([]int32, len(lb.files))
	for i := range dest {
		dest[i] = -1
	}
	next := slices.Clone(start[:len(lb.bins)])
	for i, c := range lb.comps {
		for k, fe := range c.files {
			if dest[c.at+k] >= 0 {
				return nil, fmt.Errorf("plan: internal error: component %s shares files with another", c.name)
			}
			bi := lb.binOf(i, fe)
			dest[c.at+k] = int32(next[bi])
			next[bi]++
		}
		lb.nfiles[i] = len(c.files)
		c.files = nil
	}
	permute(lb.files, dest)
	for bi := range layers {
		layers[bi].Files = lb.files[start[bi]:start[bi+1]:start[bi+1]]
	}
	return layers, nil
}

// record fills the component summaries and the history label.
func (lb *layerBuilder) record() error {
	rec := &planRecord{Version: planRecordVersion, Layers: len(lb.bins)}
	for bi, b := range lb.bins {
		if b.kind == binReserved {
			rec.Reserved = append(rec.Reserved, bi+1)
		}
	}
	compLayers := make([][]int, len(lb.comps))
	for bi := range lb.members {
		for _, i := range lb.members[bi] {
			compLayers[i] = append(compLayers[i], bi)
		}
	}
	for i, c := range lb.comps {
		h := lb.hist[c.name]
		cr := componentRecord{Name: c.name, Digest: c.digestHex(), Layer: lb.mainBin[i] + 1, History: h.bits, Seen: h.seen}
		for key, bi := range lb.partKeyBin[i] {
			if cr.Parts == nil {
				cr.Parts = map[string]int{}
			}
			cr.Parts[key] = bi + 1
		}
		rec.Components = append(rec.Components, cr)
		lb.plan.Components = append(lb.plan.Components, ComponentInfo{
			Name: c.name, Source: c.source, Exclusive: c.info.exclusive, Files: lb.nfiles[i], Size: c.size,
			ChangeProbability: lb.items[i].p, Digest: c.digestHex(), Layers: compLayers[i],
			Changed: h.changed, New: lb.prior != nil && !lb.prior.family && lb.prior.fromLabel && !h.known,
			Volatile: c.info.volatilePart,
		})
	}
	label, err := encodePlanRecord(rec)
	if err != nil {
		return fmt.Errorf("plan: encode %s: %w", PlanLabel, err)
	}
	lb.plan.Labels[PlanLabel] = label
	return nil
}

// describe names a layer and says why it holds what it holds.
func (lb *layerBuilder) describe(b *pbin, members []int) (string, string) {
	name, why := lb.describeBin(b, members)
	volatile := 0
	for _, i := range members {
		if lb.comps[i].info.volatilePart {
			volatile++
		}
	}
	switch {
	case volatile == 1 && len(members) == 1:
		why += "; the volatile part of a package (what its rebuilds change)"
	case volatile > 0:
		why += fmt.Sprintf("; %d of them volatile parts of packages", volatile)
	}
	return name, why
}

// describeBin names a layer by its kind of bin.
func (lb *layerBuilder) describeBin(b *pbin, members []int) (string, string) {
	kept := ""
	if b.prev > 0 && lb.prior != nil {
		sibling := ""
		if lb.prior.family {
			sibling = "sibling "
		}
		kept = fmt.Sprintf("kept from %s%s layer %d; ", sibling, lb.prior.ref, b.prev)
		if b.repacked {
			kept = fmt.Sprintf("repacked (%s%s layer %d changed anyway); ", sibling, lb.prior.ref, b.prev)
		}
	}
	if b.family != "" {
		kept = fmt.Sprintf("copied from sibling %s layer %d (its blob is reused); ", b.family, b.fam)
	}
	names := make([]string, 0, len(members))
	for _, i := range members {
		names = append(names, lb.comps[i].name)
	}
	sort.Strings(names)
	switch b.kind {
	case binReserved:
		return "Reserved for new packages", kept + "empty: room for components added by the next build"
	case binSpan:
		var files []string
		for _, u := range b.units {
			files = append(files, path.Base(u.part))
		}
		sort.Strings(files)
		return fmt.Sprintf("%s: %s", names[0], joinNames(files)), kept + "big files of a large component in a layer of their own: an unchanged file keeps an unchanged layer"
	case binExclusive:
		return names[0], kept + "exclusive component (user.component)"
	case binSingle:
		c := lb.comps[members[0]]
		why := fmt.Sprintf("large component (%s): alone, so other changes never re-download it", units.Bytes(c.size))
		switch c.name {
		case KernelComponent:
			why = "kernel and initramfs: changes with every kernel update, kept away from other content"
		case PackageDBComponent:
			why = "package database: changes whenever any package does"
		}
		return c.name, kept + why
	case binNew:
		return joinNames(names), kept + "components new since the previous build (cost nothing extra: this layer is new anyway)"
	default:
		t := tierOf(lb.items[members[0]].p)
		why := fmt.Sprintf("%d small components %s together", len(members), tierNames[t])
		if len(members) == 1 {
			why = fmt.Sprintf("a small component %s; its tier's other components hash elsewhere", tierNames[t])
		}
		if b.prev > 0 {
			why = fmt.Sprintf("%d components", len(members))
		}
		if b.repacked {
			why = fmt.Sprintf("%d components grouped by observed change rate", len(members))
		}
		return joinNames(names), kept + why
	}
}

// joinNames makes a short human list: "a", "a and b", "a, b and c", "12 components (a, b, c, ...)".
func joinNames(n []string) string {
	switch {
	case len(n) == 0:
		return "(empty)"
	case len(n) == 1:
		return n[0]
	case len(n) <= 5:
		return strings.Join(n[:len(n)-1], ", ") + " and " + n[len(n)-1]
	default:
		return fmt.Sprintf("%d components (%s, ...)", len(n), strings.Join(n[:3], ", "))
	}
}
