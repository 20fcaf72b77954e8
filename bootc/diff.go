package bootc

import (
	"context"

	digest "github.com/opencontainers/go-digest"

	"github.com/rechunker-dev/rechunker/internal/imageio"
)

// DiffOptions configure Diff.
type DiffOptions struct {
	// NoDiffID models bootc before PR #2081 (2026-03), which reuses a layer only when its
	// compressed digest is already stored; newer bootc also matches diff_ids.
	NoDiffID bool
}

// DiffLayer is one layer of the new image.
type DiffLayer struct {
	Index      int           `json:"index"`
	Digest     digest.Digest `json:"digest"`
	DiffID     digest.Digest `json:"diff_id,omitempty"`
	Size       int64         `json:"size"`
	Components []string      `json:"components"`
	// ReusedBy says how an unfetched layer is matched: "digest" or "diff_id".
	ReusedBy string `json:"reused_by,omitempty"`
}

// DiffReport is what `bootc upgrade` from Old to New downloads.
type DiffReport struct {
	Old, New      string      `json:"-"`
	LayersTotal   int         `json:"layers_total"`
	LayersFetched int         `json:"layers_fetched"`
	BytesTotal    int64       `json:"bytes_total"`
	BytesFetched  int64       `json:"bytes_fetched"`
	Fetched       []DiffLayer `json:"fetched"`
	Reused        []DiffLayer `json:"reused"`
	// Removed are old layers the new image no longer uses.
	Removed []DiffLayer `json:"removed"`
	// SameImage is set when bootc's fast path applies (same manifest or config digest):
	// nothing is downloaded at all.
	SameImage bool `json:"same_image"`
}

// Diff reports what upgrading from old to new downloads. It reads manifests and configs
// only: a layer is fetched unless old has a layer with the same compressed digest or
// (unless NoDiffID) the same diff_id.
func Diff(_ context.Context, old, new *imageio.Source, o DiffOptions) *DiffReport {
	r := DiffLayers(old.Layers, new.Layers, o)
	r.Old, r.New = old.Ref.StringWithinTransport(), new.Ref.StringWithinTransport()
	if old.Digest == new.Digest || old.ConfigDigest == new.ConfigDigest {
		r.SameImage = true
		r.Reused = append(r.Reused, r.Fetched...)
		r.Fetched, r.LayersFetched, r.BytesFetched = []DiffLayer{}, 0, 0
	}
	oldPlan, newPlan := ParsePlanLabel(old.Labels()[LabelPlan]), ParsePlanLabel(new.Labels()[LabelPlan])
	fill := func(ls []DiffLayer, p *PlanInfo) {
		for i := range ls {
			if len(ls[i].Components) == 0 && p != nil {
				if c := p.ComponentsAt(ls[i].Index); c != nil {
					ls[i].Components = c
				} else if c := p.ComponentsFor(ls[i].Digest, ls[i].DiffID); c != nil {
					ls[i].Components = c
				}
			}
		}
	}
	fill(r.Fetched, newPlan)
	fill(r.Reused, newPlan)
	fill(r.Removed, oldPlan)
	return r
}

// DiffLayers is Diff on plain layer lists.
func DiffLayers(old, new []imageio.Layer, o DiffOptions) *DiffReport {
	byDigest := map[digest.Digest]bool{}
	byDiffID := map[digest.Digest]bool{}
	for _, l := range old {
		byDigest[l.Digest] = true
		if l.DiffID != "" {
			byDiffID[l.DiffID] = true
		}
	}
	newDigest := map[digest.Digest]bool{}
	newDiffID := map[digest.Digest]bool{}
	r := &DiffReport{Fetched: []DiffLayer{}, Reused: []DiffLayer{}, Removed: []DiffLayer{}}
	for i, l := range new {
		newDigest[l.Digest] = true
		if l.DiffID != "" {
			newDiffID[l.DiffID] = true
		}
		comps, _ := Components(l)
		if comps == nil {
			comps = []string{}
		}
		dl := DiffLayer{Index: i, Digest: l.Digest, DiffID: l.DiffID, Size: l.Size, Components: comps}
		r.LayersTotal++
		r.BytesTotal += max(l.Size, 0)
		switch {
		case byDigest[l.Digest]:
			dl.ReusedBy = "digest"
		case !o.NoDiffID && l.DiffID != "" && byDiffID[l.DiffID]:
			dl.ReusedBy = "diff_id"
		}
		if dl.ReusedBy != "" {
			r.Reused = append(r.Reused, dl)
			continue
		}
		r.Fetched = append(r.Fetched, dl)
		r.LayersFetched++
		r.BytesFetched += max(l.Size, 0)
	}
	for i, l := range old {
		if newDigest[l.Digest] || (!o.NoDiffID && l.DiffID != "" && newDiffID[l.DiffID]) {
			continue
		}
		comps, _ := Components(l)
		if comps == nil {
			comps = []string{}
		}
		r.Removed = append(r.Removed, DiffLayer{Index: i, Digest: l.Digest, DiffID: l.DiffID, Size: l.Size, Components: comps})
	}
	return r
}
