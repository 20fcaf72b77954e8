package bootc

import (
	"fmt"
	"strings"

	digest "github.com/opencontainers/go-digest"
)

// HumanSize formats a byte count with decimal units, e.g. "12.3 MB".
func HumanSize(n int64) string {
	if n < 0 {
		return "?"
	}
	if n < 1000 {
		return fmt.Sprintf("%d B", n)
	}
	units := []string{"kB", "MB", "GB", "TB", "PB"}
	v := float64(n) / 1000
	i := 0
	for v >= 999.95 && i < len(units)-1 {
		v /= 1000
		i++
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}

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
