package rechunk

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/ostree"
)

// layoutOf describes bins as a labelled previous build would: every component's layer
// and digest.
func layoutOf(ref string, items []packItem, bins []*pbin, family bool) *priorLayout {
	l := &priorLayout{ref: ref, layers: len(bins), names: map[string]int{}, parts: map[string]map[string]int{},
		reserved: map[int]bool{}, digests: map[string]string{}, history: map[string]componentRecord{},
		fromLabel: true, family: family}
	for bi, b := range bins {
		for _, u := range b.units {
			it := items[u.item]
			l.names[it.name] = bi + 1
			l.digests[it.name] = it.digest
		}
	}
	return l
}

func withDigests(items []packItem, version string) []packItem {
	out := append([]packItem(nil), items...)
	for i := range out {
		out[i].digest = out[i].name + "@" + version
	}
	return out
}

func TestPlaceFamily(t *testing.T) {
	// This image's previous release: 30 components in 8 layers.
	own := withDigests(syntheticItems(newRand(1), 30, "pkg"), "1")
	ownBins, err := packFresh(own, 8)
	require.NoError(t, err)
	prior := layoutOf("own:v1", own, ownBins, false)
	// A sibling has a layer of exactly two components this image is about to gain.
	sibItems := withDigests(append(append([]packItem(nil), own[:5]...), packItem{name: "x", size: 5e5, p: 0.01}, packItem{name: "y", size: 3e5, p: 0.01}), "1")
	sibBins := []*pbin{{units: []unitRef{{item: 0}, {item: 1}, {item: 2}, {item: 3}, {item: 4}}}, {units: []unitRef{{item: 5}, {item: 6}}}}
	sibling := layoutOf("sibling", sibItems, sibBins, true)

	for _, tc := range []struct {
		name     string
		yDigest  string
		families []*priorLayout
		copied   bool
	}{
		{name: "new components a sibling layer holds exactly: copied", yDigest: "y@1", families: []*priorLayout{sibling}, copied: true},
		{name: "one of them differs from the sibling's: not copied", yDigest: "y@2", families: []*priorLayout{sibling}},
		{name: "no family", yDigest: "y@1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			items := append(withDigests(own, "1"),
				packItem{name: "x", size: 5e5, p: 0.01, digest: "x@1"},
				packItem{name: "y", size: 3e5, p: 0.01, digest: tc.yDigest})
			bins, err := packWithPrior(items, 10, prior, tc.families)
			require.NoError(t, err)
			var fam *pbin
			for _, b := range bins {
				if b.family != "" {
					require.Nil(t, fam, "one family layer")
					fam = b
				}
			}
			if !tc.copied {
				assert.Nil(t, fam)
				return
			}
			require.NotNil(t, fam)
			assert.Equal(t, "sibling", fam.family)
			assert.Equal(t, 2, fam.fam, "the sibling's second chunk layer")
			assert.Equal(t, []string{"x,y"}, binNames(items, []*pbin{fam}))
			// The own release's unchanged layers are all kept.
			kept := 0
			for _, b := range bins {
				if b.prev > 0 && !b.repacked {
					kept++
				}
			}
			assert.Equal(t, len(ownBins), kept)
		})
	}
}

// TestFamilyFirstRelease: a variant's first release, planned with its base as family
// (no history of its own), keeps every base layer whose components it has unchanged,
// and says which image each layer follows.
func TestFamilyFirstRelease(t *testing.T) {
	store, err := ostree.OpenStore(t.TempDir())
	require.NoError(t, err)
	ctx := context.Background()
	const maxLayers = 24
	base := releaseTree(t, store, "")
	pBase, err := NewPlan(ctx, base, store, Options{MaxLayers: maxLayers})
	require.NoError(t, err)

	pkgs := releasePackages("")
	for i := range 6 {
		pkgs = append(pkgs, dpkgPkg{name: fmt.Sprintf("extra%d", i), version: "1",
			files: map[string]int{fmt.Sprintf("/usr/lib/extra%d/f", i): 30<<10 + i*1000}})
	}
	variant := releaseTreeOf(t, store, pkgs)

	fresh, err := NewPlan(ctx, variant, store, Options{MaxLayers: maxLayers})
	require.NoError(t, err)
	withFamily, err := NewPlan(ctx, variant, store, Options{MaxLayers: maxLayers,
		Family: []Previous{asPrevious("base", pBase, true, true)}})
	require.NoError(t, err)
	checkPlan(t, variant, withFamily, maxLayers)
	assert.Equal(t, "base", withFamily.FromPrevious)

	switchCost := func(p *Plan) (n int, bytes int64) {
		for _, l := range changedLayers(pBase, p) {
			n++
			bytes += l.Size
		}
		return n, bytes
	}
	nFam, bFam := switchCost(withFamily)
	nFresh, bFresh := switchCost(fresh)
	t.Logf("switch base -> variant: %d layers, %d bytes with --family; %d layers, %d bytes planned alone", nFam, bFam, nFresh, bFresh)
	assert.LessOrEqual(t, bFam, bFresh)
	for _, l := range changedLayers(pBase, withFamily) {
		hasNew := false
		for _, c := range l.Components {
			hasNew = hasNew || c == PackageDBComponent || len(c) > 5 && c[:5] == "extra"
		}
		assert.True(t, hasNew, "changed layer %q holds something the base lacks or that changed", l.Name)
		assert.Empty(t, l.Follows)
	}
	follows := 0
	for _, l := range withFamily.Layers {
		if l.Follows == "base" {
			follows++
		}
	}
	assert.Equal(t, len(withFamily.Layers)-nFam, follows, "every unchanged layer says it follows the base")
	for _, c := range withFamily.Components {
		assert.False(t, c.New, "a family is not history: no component is new since a previous build")
	}
}
