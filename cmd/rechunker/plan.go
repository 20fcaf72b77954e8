package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/rechunker-dev/rechunker/build"
	"github.com/rechunker-dev/rechunker/internal/units"
	"github.com/rechunker-dev/rechunker/rechunk"
)

func newPlanCmd() *cobra.Command {
	var f inputFlags
	var previous, family []string
	var maxLayers int
	var asJSON, noVolatileSplit bool
	var explain []string
	cmd := &cobra.Command{
		Use:   "plan [SOURCE] [--rootfs DIR] [--previous-build IMAGE]... [--family IMAGE]... [--max-layers N] [--json] [--store DIR]",
		Short: "Show how the image's files would be split into layers",
		Long: `Plan loads the input (an image or --rootfs DIR), assigns every file to a component
(user.component xattr, rpm/dpkg/pacman/apk package grouped by source package, kernel and
initramfs, package database, big unowned file, state directory, catch-all), splits off a
package's volatile part (executables, shared objects, bytecode, changelogs: what a
rebuild of the package changes) when that pays, and packs the
components into at most --max-layers chunk layers (the commit layer comes in addition),
minimising the bytes an upgrade downloads. With --previous-build, components stay in the
layers they had there. With --family (sibling images: variants built from the same
packages), components new to this image go where a sibling has them, so that switching
between the images downloads only what differs. Nothing is written but the store.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			from := ""
			if len(args) == 1 {
				from = args[0]
			}
			ctx := cmd.Context()
			opts, err := f.imageOptions()
			if err != nil {
				return err
			}
			warn := func(m string) { fmt.Fprintln(os.Stderr, "rechunker: warning:", m) }
			prev, err := build.LoadChunked(ctx, previous, opts, "previous build", warn)
			if err != nil {
				return err
			}
			fam, err := build.LoadChunked(ctx, family, opts, "family image", warn)
			if err != nil {
				return err
			}
			in, store, err := f.load(ctx, from)
			if err != nil {
				return err
			}
			defer in.Close()
			if err := build.CheckPlatforms(build.ConfigPlatform(in.Config), append(append([]build.Previous(nil), prev...), fam...)); err != nil {
				return err
			}
			plan, err := rechunk.NewPlan(ctx, in.Tree, store, rechunk.Options{
				MaxLayers:       maxLayers,
				Previous:        build.Planned(prev),
				Family:          build.Planned(fam),
				NoVolatileSplit: noVolatileSplit,
				Warn:            warn,
			})
			if err != nil {
				return err
			}
			if len(explain) > 0 {
				return explainPaths(cmd.OutOrStdout(), plan, explain)
			}
			if asJSON {
				return writePlanJSON(cmd.OutOrStdout(), plan)
			}
			printPlan(cmd.OutOrStdout(), plan)
			return nil
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().StringArrayVar(&previous, "previous-build", nil, "a previous build of this image (TRANSPORT:REF) whose layout to keep; repeat for more change history")
	cmd.Flags().StringArrayVar(&family, "family", nil, "a sibling image (TRANSPORT:REF, a chunked variant built from the same packages) whose layers new components follow; repeatable, in order of preference")
	cmd.Flags().IntVar(&maxLayers, "max-layers", rechunk.DefaultMaxLayers, "maximum number of chunk layers (the commit layer comes in addition)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the plan as JSON")
	cmd.Flags().BoolVar(&noVolatileSplit, "no-volatile-split", false, "keep every package in one component")
	cmd.Flags().StringArrayVar(&explain, "explain", nil, "say which layer holds PATH and why, instead of the whole plan; repeatable")
	return cmd
}

// planJSON is the --json output.
type planJSON struct {
	FromPrevious string                  `json:"from_previous,omitempty"`
	Layers       []planLayerJSON         `json:"layers"`
	Components   []rechunk.ComponentInfo `json:"components"`
	Labels       map[string]string       `json:"labels"`
	Warnings     []string                `json:"warnings,omitempty"`
	// ExpectedBytesPerUpgrade is the sum over layers of size × change probability.
	ExpectedBytesPerUpgrade int64 `json:"expected_bytes_per_upgrade"`
	TotalBytes              int64 `json:"total_bytes"`
}

type planLayerJSON struct {
	Index             int      `json:"index"` // manifest index (the commit layer is 0)
	Name              string   `json:"name"`
	Components        []string `json:"components"`
	Files             []string `json:"files"`
	Size              int64    `json:"size"`
	ChangeProbability float64  `json:"change_probability"`
	Why               string   `json:"why"`
	// Follows is the image (previous build or family image) whose layer this one keeps
	// or copies; empty for a new or refilled layer.
	Follows string `json:"follows,omitempty"`
}

func writePlanJSON(w io.Writer, p *rechunk.Plan) error {
	out := planJSON{FromPrevious: p.FromPrevious, Components: p.Components, Labels: p.Labels, Warnings: p.Warnings}
	for i, l := range p.Layers {
		files := make([]string, len(l.Files))
		for k, f := range l.Files {
			files[k] = f.Path()
		}
		comps := l.Components
		if comps == nil {
			comps = []string{}
		}
		out.Layers = append(out.Layers, planLayerJSON{Index: i + 1, Name: l.Name, Components: comps, Files: files,
			Size: l.Size, ChangeProbability: l.ChangeProbability, Why: l.Why, Follows: l.Follows})
		out.TotalBytes += l.Size
		out.ExpectedBytesPerUpgrade += int64(float64(l.Size) * l.ChangeProbability)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func printPlan(w io.Writer, p *rechunk.Plan) {
	var total, expected float64
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LAYER\tSIZE\tFILES\tP(CHANGE)\tCOMPONENTS\tWHY")
	for i, l := range p.Layers {
		comps := strings.Join(l.Components, ",")
		if comps == "" {
			comps = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%.2f\t%s\t%s\n", i+1, units.Bytes(l.Size), len(l.Files), l.ChangeProbability,
			ellipsize(comps, 48), ellipsize(l.Why, 72))
		total += float64(l.Size)
		expected += float64(l.Size) * l.ChangeProbability
	}
	tw.Flush()
	from := "fresh layout"
	if p.FromPrevious != "" {
		from = "layout kept from " + p.FromPrevious
	}
	split := 0
	for _, c := range p.Components {
		if c.Volatile {
			split++
		}
	}
	fmt.Fprintf(w, "\n%d chunk layers (+1 commit layer), %d components (%d packages split into stable and %s parts), %s total, %s; expected download per upgrade: %s\n",
		len(p.Layers), len(p.Components), split, rechunk.VolatileSuffix[1:], units.Bytes(int64(total)), from, units.Bytes(int64(expected)))
	follows := map[string]int{}
	var refs []string
	for _, l := range p.Layers {
		if l.Follows == "" {
			continue
		}
		if follows[l.Follows] == 0 {
			refs = append(refs, l.Follows)
		}
		follows[l.Follows]++
	}
	for _, r := range refs {
		fmt.Fprintf(w, "%d layers follow %s (same content, so the same blob)\n", follows[r], r)
	}
}

// explainPaths says, for each path, which layer holds it, why that layer holds what it
// holds, and which part of its package the volatility rule gives the file.
func explainPaths(w io.Writer, plan *rechunk.Plan, paths []string) error {
	for _, p := range paths {
		want := path.Clean("/" + p)
		if want == "/etc" || strings.HasPrefix(want, "/etc/") {
			want = "/usr" + want // the commit keeps /etc in /usr/etc
		}
		idx, ref, ok := findPlanned(plan, want)
		if !ok {
			return fmt.Errorf("plan --explain: %s is not a file or symlink of the tree", p)
		}
		l := plan.Layers[idx]
		fmt.Fprintf(w, "%s\n  layer %d: %s\n  why: %s\n  components: %s\n", want, idx+1, l.Name, l.Why, strings.Join(l.Components, ", "))
		part := "stable (data, docs, translations, sources: a rebuild of the package leaves it alone)"
		if r := rechunk.VolatileReason(want, ref.File); r != "" {
			part = "volatile: " + r
		}
		fmt.Fprintf(w, "  part, if its package is split: %s\n", part)
	}
	return nil
}

// findPlanned returns the layer index holding commit path p and its entry.
func findPlanned(plan *rechunk.Plan, p string) (int, rechunk.FileRef, bool) {
	for i, l := range plan.Layers {
		for _, f := range l.Files {
			if f.Path() == p {
				return i, f, true
			}
		}
	}
	return 0, rechunk.FileRef{}, false
}
