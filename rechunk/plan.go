// Package rechunk decides which files go into which layer: it assigns every file of a
// commit to a component (package, user.component xattr, kernel, package database, big
// unowned file, catch-all) and packs components into at most N layers so that a typical
// upgrade downloads few bytes and the same content stays in the same layer across
// releases. It reads the tree from ostree/ and returns a Plan as plain data; it never
// writes images.
//
// Cost model. Each component i has a size s_i and a probability p_i of changing between
// two upgrades (from its changelog: 1 − e^(−rate × interval); from the plan label's
// history once previous builds were seen). Components of one source package are one
// component, since they change together. A layer is downloaded when any member
// changes, so a layout costs Σ_layers size(L) × (1 − Π_{i∈L} (1 − p_i)) bytes per
// upgrade. Isolating a component saves bytes but spends a layer; merging components
// that always change (the package database, the catch-all) costs nothing.
//
// Without a previous build, large components get layers of their own and the others
// are spread over fixed change-rate tiers by hashed position (a tier's bins split its
// hash space in halves, so one bin more or less changes one bin), so that a package bump
// moves nothing else. With a previous build's plan label, every layer whose components
// are unchanged is kept byte for byte, and the layers that change anyway are refilled,
// together with new components, by an optimizer (sort by p, best contiguous split by
// dynamic programming, then local search) over the observed change rates: the upgrade
// costs no extra byte and the layout keeps improving. No merged layer grows beyond the
// largest component or twice the average layer.
package rechunk

import (
	"strings"

	"github.com/rechunker-dev/rechunker/ostree"
)

// FileRef is one path of the tree and the tree's entry at it. The path is kept in two
// parts so that all entries of a directory share its path: an image has ~10 files per
// directory, and a string per file path would be the largest part of a plan.
type FileRef struct {
	// Dir is the absolute path of the parent directory with a trailing slash ("/",
	// "/usr/bin/"); etc lives under /usr/etc/.
	Dir  string
	Name string
	File *ostree.File
}

// Path returns the entry's absolute commit path, e.g. /usr/etc/os-release.
func (r FileRef) Path() string { return r.Dir + r.Name }

// ComparePaths orders refs by Path without building the paths.
func ComparePaths(a, b FileRef) int { return compareJoined(a.Dir, a.Name, b.Dir, b.Name) }

// compareJoined compares a1+a2 with b1+b2.
func compareJoined(a1, a2, b1, b2 string) int {
	for {
		n := min(len(a1), len(b1))
		if c := strings.Compare(a1[:n], b1[:n]); c != 0 {
			return c
		}
		a1, b1 = a1[n:], b1[n:]
		switch {
		case a1 == "" && b1 == "":
			return strings.Compare(a2, b2)
		case a1 == "":
			a1, a2 = a2, ""
			if a1 == "" {
				return -1 // a is a proper prefix of b
			}
		default: // b1 == ""
			b1, b2 = b2, ""
			if b1 == "" {
				return 1
			}
		}
	}
}

// Layer is one planned chunk layer.
type Layer struct {
	// Name is the human name written as the layer's history created_by.
	Name string
	// Components are the component names in the layer, sorted; joined with "," they form
	// the ostree.components annotation. Empty for the reserved bin.
	Components []string
	// Files are every path assigned to the layer. Each path of the tree is in exactly one
	// layer; one checksum may appear in several layers (exclusive components).
	Files []FileRef
	// Size is the sum of payload sizes of the distinct objects of the layer.
	Size int64
	// ChangeProbability is the planner's estimate that the layer changes in an upgrade.
	ChangeProbability float64
	// Why explains the grouping in a few words (shown by `rechunker plan`).
	Why string
	// Follows is the image (a previous build or a family image) whose layer this one
	// keeps or copies with the same content; empty for a new or refilled layer.
	Follows string
}

// Plan is the planner's output, consumed by the exporter.
type Plan struct {
	Layers []Layer
	// Labels are config labels the exporter must add (the plan history label).
	Labels map[string]string
	// Components describes every component (for `rechunker plan` and reports), sorted
	// by name.
	Components []ComponentInfo
	// FromPrevious names the previous build whose layout was kept, empty for a fresh plan.
	// Without previous builds it is the family image whose layout was followed.
	FromPrevious string
	// Warnings are the problems the planner worked around (also sent to Options.Warn).
	Warnings []string
}

// ComponentInfo summarizes one component of a plan.
type ComponentInfo struct {
	Name   string
	Source string // xattr, rpm, dpkg, pacman, apk, kernel, pkgdb, bigfile, unclaimed
	// Exclusive components never share a layer with other components.
	Exclusive bool
	Files     int
	Size      int64 // sum of payload sizes of its distinct objects
	// ChangeProbability is the estimated probability that it changes in one upgrade.
	ChangeProbability float64
	// Digest identifies its content: hex of the first 8 bytes of sha256 over its sorted
	// (path, checksum) list.
	Digest string
	// Layers are the indexes into Plan.Layers holding its files.
	Layers []int
	// Changed is set when a previous build's plan label had a different digest.
	Changed bool
	// New is set when a previous build's plan did not know the component.
	New bool
	// Volatile marks the volatile part of a split package (named with VolatileSuffix);
	// the package's stable part keeps the package's name.
	Volatile bool
}
