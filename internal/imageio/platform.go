package imageio

import (
	"context"
	"fmt"
	"runtime"
	"strings"

	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/types"
)

// Platform names the system an image is built for, in OCI naming: linux/amd64,
// linux/arm64/v8. Empty fields in a request mean "the host's" (OS, architecture) or
// "any" (variant).
type Platform struct {
	OS, Architecture, Variant string
}

// String formats p as OS/ARCH[/VARIANT].
func (p Platform) String() string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// ParsePlatform parses OS/ARCH[/VARIANT] as podman's --platform spells it. Both OS and
// architecture are required: a bare architecture is ambiguous about the OS only in
// theory, but accepting it would make "arm64/v8" mean something else than it looks.
func ParsePlatform(s string) (Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return Platform{}, fmt.Errorf("platform %q: want OS/ARCH[/VARIANT], e.g. linux/arm64", s)
	}
	for _, part := range parts {
		if part == "" || strings.TrimSpace(part) != part {
			return Platform{}, fmt.Errorf("platform %q: empty or padded part; want OS/ARCH[/VARIANT], e.g. linux/arm64", s)
		}
	}
	p := Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// Matches reports whether p and q are the same platform: same OS and architecture, and
// the same variant when both name one (configs often leave the variant out).
func (p Platform) Matches(q Platform) bool {
	if p.OS != q.OS || p.Architecture != q.Architecture {
		return false
	}
	return p.Variant == "" || q.Variant == "" || p.Variant == q.Variant
}

// satisfies reports whether p is what req asks for; req's empty fields ask for nothing.
func (p Platform) satisfies(req Platform) bool {
	return (req.OS == "" || req.OS == p.OS) &&
		(req.Architecture == "" || req.Architecture == p.Architecture) &&
		(req.Variant == "" || p.Variant == "" || req.Variant == p.Variant)
}

// isSet reports whether any field is set.
func (p Platform) isSet() bool { return p != Platform{} }

// orHost fills the OS and architecture a request leaves empty with the host's, as
// containers/image does when it picks an instance.
func (p Platform) orHost() Platform {
	if p.OS == "" {
		p.OS = runtime.GOOS
	}
	if p.Architecture == "" {
		p.Architecture = runtime.GOARCH
	}
	return p
}

func platformOf(p *imgspecv1.Platform) Platform {
	return Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}
}

// chooseInstance returns the instance digest to open: nil when the reference names a
// single image, else the instance of the index that containers/image picks for the
// requested platform. It records the index digest and what the index says the chosen
// instance is (nil when the index entry names no platform).
func (s *Source) chooseInstance(ctx context.Context, sys *types.SystemContext, want Platform) (*digest.Digest, *Platform, error) {
	raw, mt, err := s.src.GetManifest(ctx, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("read manifest: %w", err)
	}
	if mt == "" {
		mt = manifest.GuessMIMEType(raw)
	}
	if !manifest.MIMETypeIsMultiImage(mt) {
		return nil, nil, nil
	}
	s.IndexDigest = digest.FromBytes(raw)
	list, err := manifest.ListFromBlob(raw, mt)
	if err != nil {
		return nil, nil, fmt.Errorf("parse image index %s: %w", s.IndexDigest, err)
	}
	d, err := list.ChooseInstance(sys)
	if err != nil {
		// containers/image says what was wanted but not what there is.
		return nil, nil, fmt.Errorf("image index %s has no image for %s; it offers %s",
			s.IndexDigest, want.orHost(), strings.Join(offeredPlatforms(list), ", "))
	}
	inst, err := list.Instance(d)
	if err != nil {
		return nil, nil, fmt.Errorf("image index %s: instance %s: %w", s.IndexDigest, d, err)
	}
	var listed *Platform
	if p := inst.ReadOnly.Platform; p != nil {
		lp := platformOf(p)
		listed = &lp
	}
	return &d, listed, nil
}

// offeredPlatforms lists the platforms of an index's instances, in index order.
func offeredPlatforms(list manifest.List) []string {
	var out []string
	for _, d := range list.Instances() {
		inst, err := list.Instance(d)
		switch {
		case err != nil:
			out = append(out, fmt.Sprintf("%s (unreadable entry)", d))
		case inst.ReadOnly.Platform == nil:
			out = append(out, fmt.Sprintf("%s (no platform)", d))
		default:
			out = append(out, platformOf(inst.ReadOnly.Platform).String())
		}
	}
	if len(out) == 0 {
		return []string{"nothing (the index is empty)"}
	}
	return out
}

// checkPlatform records the platform the config declares and checks it against what
// the index said the instance is or, without such an entry, against an explicit
// request: an image for another platform than asked for must not be built silently.
func (s *Source) checkPlatform(want Platform, listed *Platform) error {
	s.Platform = Platform{OS: s.Config.OS, Architecture: s.Config.Architecture, Variant: s.Config.Variant}
	switch {
	case listed != nil && !listed.Matches(s.Platform):
		return fmt.Errorf("image index %s lists instance %s as %s, but its config says %s", s.IndexDigest, s.Digest, *listed, s.Platform)
	case listed == nil && want.isSet() && !s.Platform.satisfies(want):
		return fmt.Errorf("image is %s, not the requested %s", s.Platform, want.orHost())
	}
	return nil
}
