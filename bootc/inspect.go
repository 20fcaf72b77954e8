package bootc

import (
	"context"
	"fmt"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/rechunker-dev/rechunker/internal/imageio"
)

// InspectOptions configure Inspect.
type InspectOptions struct {
	// BoundImages reads the whole image (a full verification pass) to list bound images.
	BoundImages bool
	Verify      Options
}

// InspectLayer is one layer as Inspect shows it.
type InspectLayer struct {
	Index      int           `json:"index"`
	Role       Role          `json:"role"`
	Digest     digest.Digest `json:"digest"`
	DiffID     digest.Digest `json:"diff_id"`
	Size       int64         `json:"size"`
	MediaType  string        `json:"media_type"`
	Components []string      `json:"components"`
	CreatedBy  string        `json:"created_by,omitempty"`
	// SharedWith are the sibling images (InspectReport.ShareWith) with the same blob.
	SharedWith []string `json:"shared_with,omitempty"`
}

// InspectReport describes an image.
type InspectReport struct {
	Image          string            `json:"image"`
	ManifestDigest digest.Digest     `json:"manifest_digest"`
	ConfigDigest   digest.Digest     `json:"config_digest"`
	Architecture   string            `json:"architecture"`
	OS             string            `json:"os"`
	Created        *time.Time        `json:"created,omitempty"`
	Labels         map[string]string `json:"labels"`
	Layers         []InspectLayer    `json:"layers"`
	TotalSize      int64             `json:"total_size"`
	Layout         string            `json:"layout"` // problem with the ostree split, if any
	Plan           *PlanInfo         `json:"plan,omitempty"`
	// BoundImages is nil unless requested.
	BoundImages []BoundImage `json:"bound_images,omitempty"`
	// Verify is the pass that read the tree, when one ran.
	Verify *Report `json:"verify,omitempty"`
	// Family is what the image shares with sibling images (ShareWith), in the order
	// they were compared.
	Family []FamilyShare `json:"family,omitempty"`
}

// FamilyShare is what an image has in common with one sibling: the layers whose blobs
// are identical, which a client switching between the two keeps and a registry stores
// once.
type FamilyShare struct {
	Image        string `json:"image"`
	SharedLayers int    `json:"shared_layers"`
	SharedBytes  int64  `json:"shared_bytes"`
	// SwitchBytes is what switching from the sibling to this image downloads: the
	// sizes of this image's layers the sibling does not have.
	SwitchBytes int64 `json:"switch_bytes"`
}

// ShareWith compares the report's layers with a sibling's layer blobs (by digest) and
// records the sibling's name in every shared layer and in Family.
func (r *InspectReport) ShareWith(image string, blobs []digest.Digest) {
	has := make(map[digest.Digest]bool, len(blobs))
	for _, d := range blobs {
		has[d] = true
	}
	fs := FamilyShare{Image: image}
	for i := range r.Layers {
		l := &r.Layers[i]
		if !has[l.Digest] {
			fs.SwitchBytes += l.Size
			continue
		}
		fs.SharedLayers++
		fs.SharedBytes += l.Size
		l.SharedWith = append(l.SharedWith, image)
	}
	r.Family = append(r.Family, fs)
}

// Inspect reports an image's layers, labels and plan from its manifest and config; with
// BoundImages it also reads every layer to list logically bound images.
func Inspect(ctx context.Context, src *imageio.Source, o InspectOptions) (*InspectReport, error) {
	r := &InspectReport{
		Image: src.Ref.StringWithinTransport(), ManifestDigest: src.Digest, ConfigDigest: src.ConfigDigest,
		Architecture: src.Config.Architecture, OS: src.Config.OS, Created: src.Config.Created,
		Labels: src.Labels(), Layers: []InspectLayer{},
	}
	layout, err := ParseLayout(src)
	if err != nil {
		r.Layout = err.Error()
		layout = Layout{Final: -1}
	}
	r.Plan = ParsePlanLabel(r.Labels[LabelPlan])
	// History entries that produced no layer do not count.
	var createdBy []string
	for _, h := range src.Config.History {
		if !h.EmptyLayer {
			createdBy = append(createdBy, h.CreatedBy)
		}
	}
	for i, l := range src.Layers {
		comps, ok := Components(l)
		if !ok {
			if comps = r.Plan.ComponentsAt(i); comps == nil {
				comps = r.Plan.ComponentsFor(l.Digest, l.DiffID)
			}
		}
		if comps == nil {
			comps = []string{}
		}
		il := InspectLayer{Index: i, Role: layout.RoleOf(i), Digest: l.Digest, DiffID: l.DiffID, Size: l.Size, MediaType: l.MediaType, Components: comps}
		if i < len(createdBy) {
			il.CreatedBy = createdBy[i]
		}
		r.Layers = append(r.Layers, il)
		r.TotalSize += max(l.Size, 0)
	}
	if !o.BoundImages {
		return r, nil
	}
	im, err := newImporter(src, o.Verify)
	if err != nil {
		return nil, err
	}
	defer im.close()
	im.capture = newCapture(true)
	if err := im.run(ctx); err != nil {
		return nil, err
	}
	r.Verify = im.r
	if im.tree == nil {
		return r, fmt.Errorf("inspect bound images: %w", im.r.Failure)
	}
	r.BoundImages = boundImages(im.tree, im.capture)
	if r.BoundImages == nil {
		r.BoundImages = []BoundImage{}
	}
	return r, nil
}
