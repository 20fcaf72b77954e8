package bootc

import (
	"fmt"
	"strings"

	digest "github.com/opencontainers/go-digest"
)

// ShortDigest abbreviates a digest to algorithm and 12 hex digits.
func ShortDigest(d digest.Digest) string {
	if d.Validate() != nil {
		return string(d)
	}
	e := d.Encoded()
	if len(e) > 12 {
		e = e[:12]
	}
	return d.Algorithm().String() + ":" + e
}

// ComponentList renders components for a terminal, at most width characters.
func ComponentList(role Role, comps []string, annotated bool, width int) string {
	switch {
	case len(comps) > 0:
	case role == RoleCommit:
		return "(ostree commit)"
	case annotated:
		return "(reserved for new content)"
	default:
		return "-"
	}
	s := strings.Join(comps, ", ")
	if width <= 0 || len(s) <= width {
		return s
	}
	shown := 0
	out := ""
	for i, c := range comps {
		next := out
		if i > 0 {
			next += ", "
		}
		next += c
		if len(next)+len(fmt.Sprintf(" (+%d more)", len(comps)-i-1)) > width && i > 0 {
			break
		}
		out, shown = next, i+1
	}
	if shown == len(comps) {
		return ellipsis(out, width)
	}
	return fmt.Sprintf("%s (+%d more)", out, len(comps)-shown)
}

func ellipsis(s string, width int) string {
	r := []rune(s)
	if len(r) <= width {
		return s
	}
	return string(r[:width-1]) + "…"
}
