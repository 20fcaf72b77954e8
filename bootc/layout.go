// Package bootc re-reads container images the way bootc (and its ostree-ext importer)
// does, as an independent check of what the exporter wrote: it recomputes every object
// checksum with ostree/ but never imports exporter/, so a writer bug cannot hide from it.
// It also answers the questions a bootc user asks of an image: what will `bootc upgrade`
// download (Diff), what is inside (Inspect), and what would `bootc container lint` say.
package bootc

import (
	"fmt"

	"github.com/rechunker-dev/rechunker/internal/imageio"
)

// Label keys and annotations bootc and ostree-ext read. The writer's names live in
// exporter and rechunk; this package keeps its own copy on purpose: it checks images as
// bootc does and must not inherit a writer's mistake, so it imports nothing of the writer.
const (
	LabelCommit      = "ostree.commit"
	LabelFinalDiffID = "ostree.final-diffid"
	LabelBootable    = "ostree.bootable"
	LabelBootc       = "containers.bootc"
	LabelLinux       = "ostree.linux"
	// LabelPlan carries rechunker's plan history (format owned by package rechunk).
	LabelPlan = "dev.rechunker.plan"
	// AnnotationComponents lists a chunk layer's components, comma-joined.
	AnnotationComponents = "ostree.components"
)

// Layer count limits worth a warning: some paths of bootc before 1.1.3 fail above 128
// layers and containers-storage refuses more than 500.
const (
	OldBootcLayerLimit = 128
	StorageLayerLimit  = 500
)

// Role is what bootc does with a layer.
type Role string

// Layer roles, as bootc's manifest layout parsing assigns them.
const (
	RoleCommit  Role = "commit"  // layer 0 of an ostree image: commit + metadata objects
	RoleChunk   Role = "chunk"   // ostree object-set layer
	RoleDerived Role = "derived" // plain filesystem layer applied on top
)

// Layout is the split of an image's layers by role.
type Layout struct {
	// Ostree is false when the image has no ostree.final-diffid: every layer is derived.
	Ostree bool
	// Final is the index of the last ostree layer (the one ostree.final-diffid names).
	Final int
}

// RoleOf returns the role of layer i.
func (l Layout) RoleOf(i int) Role {
	switch {
	case !l.Ostree || i > l.Final:
		return RoleDerived
	case i == 0:
		return RoleCommit
	default:
		return RoleChunk
	}
}

// ParseLayout splits src's layers the way bootc's parse_manifest_layout does: without
// ostree.final-diffid every layer is derived; with it, the label must name exactly one
// entry of rootfs.diff_ids, layer 0 is the commit layer, layers up to that entry are
// chunks and later ones derived.
func ParseLayout(src *imageio.Source) (Layout, error) {
	final, ok := src.Labels()[LabelFinalDiffID]
	if !ok {
		return Layout{Final: -1}, nil
	}
	idx := -1
	for i, d := range src.Config.RootFS.DiffIDs {
		if string(d) != final {
			continue
		}
		if idx >= 0 {
			return Layout{}, fmt.Errorf("%s %s appears twice in rootfs.diff_ids (layers %d and %d)", LabelFinalDiffID, final, idx, i)
		}
		idx = i
	}
	if idx < 0 {
		return Layout{}, fmt.Errorf("%s %s is not in rootfs.diff_ids", LabelFinalDiffID, final)
	}
	if idx >= len(src.Layers) {
		return Layout{}, fmt.Errorf("%s %s names diff_id %d but the manifest has %d layers", LabelFinalDiffID, final, idx, len(src.Layers))
	}
	return Layout{Ostree: true, Final: idx}, nil
}

// Components returns a layer's component names from its ostree.components annotation,
// and whether the annotation is present (an empty value is the reserved bin).
func Components(l imageio.Layer) ([]string, bool) {
	v, ok := l.Annotations[AnnotationComponents]
	if !ok {
		return nil, false
	}
	if v == "" {
		return []string{}, true
	}
	return splitComma(v), true
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}
