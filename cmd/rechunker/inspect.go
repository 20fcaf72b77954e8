package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"

	"github.com/rechunker-dev/rechunker/bootc"
	"github.com/rechunker-dev/rechunker/internal/imageio"
	"github.com/rechunker-dev/rechunker/internal/units"
)

func newInspectCmd() *cobra.Command {
	var (
		img    imageReadFlags
		asJSON bool
		o      bootc.InspectOptions
		family []string
	)
	cmd := &cobra.Command{
		Use:   "inspect IMAGE",
		Short: "Show an image's layers, components, labels, plan history and bound images",
		Long: `Inspect shows the layers of IMAGE with sizes, roles (ostree commit, chunk, derived)
and components, its labels, and the rechunker plan history it carries. With
--bound-images it also reads every layer (a full verification pass) to list bootc's
logically bound images (usr/lib/bootc/bound-images.d). With --family IMAGE (repeatable)
it shows which layers the image shares with sibling images, byte for byte, and what
switching from each sibling downloads.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			opts, p, err := img.options()
			if err != nil {
				return err
			}
			src, err := imageio.Open(ctx, args[0], opts)
			if err != nil {
				return err
			}
			defer src.Close()
			if p.Architecture != "" {
				o.Verify.Arch = p.Architecture
			} else {
				o.Verify.Arch = src.Config.Architecture // inspecting, not deploying
			}
			r, err := bootc.Inspect(ctx, src, o)
			if err != nil {
				return fmt.Errorf("inspect %s: %w", args[0], err)
			}
			for _, ref := range family {
				blobs, err := layerBlobs(ctx, ref, opts)
				if err != nil {
					return fmt.Errorf("inspect: family image %s: %w", ref, err)
				}
				r.ShareWith(ref, blobs)
			}
			if asJSON {
				return writeReportJSON(cmd.OutOrStdout(), r)
			}
			printInspect(cmd.OutOrStdout(), args[0], r)
			return nil
		},
	}
	img.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.Flags().BoolVar(&o.BoundImages, "bound-images", false, "read the image's files to list logically bound images")
	cmd.Flags().StringArrayVar(&family, "family", nil, "a sibling image (TRANSPORT:REF) to compare layers with; repeatable")
	return cmd
}

// layerBlobs returns the layer digests of an image's manifest.
func layerBlobs(ctx context.Context, ref string, o imageio.Options) ([]digest.Digest, error) {
	src, err := imageio.Open(ctx, ref, o)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	out := make([]digest.Digest, 0, len(src.Layers))
	for _, l := range src.Layers {
		out = append(out, l.Digest)
	}
	return out, nil
}

func printInspect(w io.Writer, name string, r *bootc.InspectReport) {
	fmt.Fprintf(w, "Image:     %s\n", name)
	fmt.Fprintf(w, "Manifest:  %s\n", r.ManifestDigest)
	fmt.Fprintf(w, "Config:    %s\n", r.ConfigDigest)
	fmt.Fprintf(w, "Platform:  %s/%s\n", r.OS, r.Architecture)
	if r.Created != nil {
		fmt.Fprintf(w, "Created:   %s\n", r.Created.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(w, "Size:      %s in %d layers\n", units.Bytes(r.TotalSize), len(r.Layers))
	if r.Layout != "" {
		fmt.Fprintf(w, "Layout:    %s\n", r.Layout)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	shared := func(bootc.InspectLayer) string { return "" }
	if len(r.Family) > 0 {
		fmt.Fprint(tw, "#\tROLE\tDIGEST\tSIZE\tSHARED\tCOMPONENTS\n")
		shared = func(l bootc.InspectLayer) string { return fmt.Sprintf("%d/%d\t", len(l.SharedWith), len(r.Family)) }
	} else {
		fmt.Fprintln(tw, "#\tROLE\tDIGEST\tSIZE\tCOMPONENTS")
	}
	for _, l := range r.Layers {
		comps := bootc.ComponentList(l.Role, l.Components, len(l.Components) > 0 || l.Role == bootc.RoleChunk, 70)
		if comps == "-" && l.CreatedBy != "" {
			comps = ellipsize(l.CreatedBy, 70)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s%s\n", l.Index, l.Role, bootc.ShortDigest(l.Digest), units.Bytes(l.Size), shared(l), comps)
	}
	tw.Flush()
	if len(r.Family) > 0 {
		fmt.Fprintln(w, "\nFamily:")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, f := range r.Family {
			fmt.Fprintf(tw, "  %s\tshares %d of %d layers (%s of %s); switching from it downloads %s\n", f.Image,
				f.SharedLayers, len(r.Layers), units.Bytes(f.SharedBytes), units.Bytes(r.TotalSize), units.Bytes(f.SwitchBytes))
		}
		tw.Flush()
	}

	fmt.Fprintln(w, "\nLabels:")
	keys := make([]string, 0, len(r.Labels))
	for k := range r.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, k := range keys {
		v := r.Labels[k]
		if k == bootc.LabelPlan {
			v = fmt.Sprintf("(%s, see Plan)", units.Bytes(int64(len(v))))
		}
		fmt.Fprintf(tw, "  %s\t%s\n", k, ellipsize(v, 100))
	}
	tw.Flush()
	if p := r.Plan; p != nil {
		fmt.Fprintf(w, "\nPlan:      %s label, %s\n", bootc.LabelPlan, units.Bytes(int64(p.RawBytes)))
		fmt.Fprintf(w, "           %s\n", p.Summary)
		if len(p.ChangedThisBuild) > 0 {
			fmt.Fprintf(w, "           changed in this build: %s\n", bootc.ComponentList(bootc.RoleChunk, p.ChangedThisBuild, true, 90))
		}
	}
	if r.BoundImages != nil {
		fmt.Fprintf(w, "\nBound images (%d):\n", len(r.BoundImages))
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, b := range r.BoundImages {
			v := b.Image
			if b.Error != "" {
				v = "error: " + b.Error
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", b.Unit, v, b.Path)
		}
		tw.Flush()
	}
	if v := r.Verify; v != nil && !v.OK {
		fmt.Fprintf(w, "\nNote: verification failed: %v\n", v.Failure)
	}
}

func ellipsize(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
