package build

import (
	"context"
	"errors"
	"fmt"
	"strings"

	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/rechunker-dev/rechunker/internal/imageio"
	"github.com/rechunker-dev/rechunker/rechunk"
)

// Previous is a previous build as its manifest and config describe it (no layer blobs
// are read): what the planner and the exporter use (rechunk.Previous), the platform it
// was built for, and whether it is chunked at all.
type Previous struct {
	rechunk.Previous
	Platform imageio.Platform
	// Chunked is set when every layer but the first names its components
	// (ostree.components) or the config carries rechunker's plan label.
	Chunked bool
}

// LoadPrevious reads a previous build's manifest and config.
func LoadPrevious(ctx context.Context, ref string, o imageio.Options) (Previous, error) {
	src, err := imageio.Open(ctx, ref, o)
	if err != nil {
		return Previous{}, fmt.Errorf("read previous build: %w", err)
	}
	defer src.Close()
	p := Previous{Previous: rechunk.Previous{Ref: ref, Labels: src.Labels()}, Platform: src.Platform}
	if src.Config.Created != nil {
		p.Created = *src.Config.Created
	}
	annotated := len(src.Layers) > 1
	for i, l := range src.Layers {
		p.Layers = append(p.Layers, rechunk.PreviousLayer{
			Digest: l.Digest.String(), DiffID: l.DiffID.String(), Size: l.Size, Annotations: l.Annotations,
		})
		if _, ok := l.Annotations[rechunk.ComponentsAnnotation]; i > 0 && !ok {
			annotated = false
		}
	}
	_, labelled := p.Labels[rechunk.PlanLabel]
	p.Chunked = annotated || labelled
	return p, nil
}

// Discover reads the previous builds refs; none given, it probes output as rpm-ostree
// does. A previous build that is not chunked is skipped with a warning; so is an output
// that does not exist yet or cannot be read, the normal state of a first build (quiet
// leaves those notes out). A chunked output it finds is the last previous build returned;
// Run then says NoticeBaseline, as rpm-ostree does.
func Discover(ctx context.Context, refs []string, output string, o imageio.Options, warn func(string), quiet bool) ([]Previous, error) {
	prev, err := LoadChunked(ctx, refs, o, "previous build", warn)
	if err != nil {
		return nil, err
	}
	if len(refs) > 0 || output == "" {
		return prev, nil
	}
	p, err := LoadPrevious(ctx, output, o)
	switch {
	case errors.Is(err, imageio.ErrNotFound):
	case err != nil:
		if !quiet && !strings.Contains(err.Error(), "no such file") {
			warn(fmt.Sprintf("no previous build at %s: %v", output, err))
		}
	case !p.Chunked:
		if !quiet {
			warn(fmt.Sprintf("%s is not chunked, will create a new image", output))
		}
	default:
		prev = append(prev, p)
	}
	return prev, nil
}

// LoadChunked reads the manifests and configs of images that should be chunked builds
// (previous builds, family images); one that is not chunked is skipped with a warning
// naming it as what.
func LoadChunked(ctx context.Context, refs []string, o imageio.Options, what string, warn func(string)) ([]Previous, error) {
	var out []Previous
	for _, ref := range refs {
		p, err := LoadPrevious(ctx, ref, o)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if !p.Chunked {
			warn(fmt.Sprintf("%s %s is not chunked; ignored", what, ref))
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// CheckPlatforms refuses previous builds made for another platform than the input:
// their layout and blobs describe other binaries, and reusing them would mix
// architectures in one image.
func CheckPlatforms(input imageio.Platform, prev []Previous) error {
	for _, p := range prev {
		if !p.Platform.Matches(input) {
			return fmt.Errorf("previous build %s is %s, but the input is %s; give a previous build of the same platform", p.Ref, p.Platform, input)
		}
	}
	return nil
}

// Planned returns what the planner and the exporter need of the previous builds.
func Planned(prev []Previous) []rechunk.Previous {
	out := make([]rechunk.Previous, 0, len(prev))
	for _, p := range prev {
		out = append(out, p.Previous)
	}
	return out
}

// SetPlatform makes a synthesized config say it is for p where p says anything: a root
// filesystem directory has no platform of its own but the one it is built for.
func SetPlatform(cfg *imgspecv1.Image, p imageio.Platform) {
	if p.OS != "" {
		cfg.OS = p.OS
	}
	if p.Architecture != "" {
		cfg.Architecture = p.Architecture
	}
	if p.Variant != "" {
		cfg.Variant = p.Variant
	}
}

// ConfigPlatform is the platform an image config declares.
func ConfigPlatform(cfg imgspecv1.Image) imageio.Platform {
	return imageio.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
}
