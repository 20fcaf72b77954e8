package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/rechunker-dev/rechunker/bootc"
	"github.com/rechunker-dev/rechunker/delta"
	"github.com/rechunker-dev/rechunker/internal/imageio"
	"github.com/rechunker-dev/rechunker/internal/units"
)

func newDiffCmd() *cobra.Command {
	var (
		img       imageReadFlags
		asJSON    bool
		o         bootc.DiffOptions
		changelog string
		store     string
		withDelta bool
	)
	cmd := &cobra.Command{
		Use:   "diff OLD NEW",
		Short: "Show what `bootc upgrade` from OLD to NEW downloads",
		Long: `Diff compares the manifests and configs of two images (no layer blobs are read) and
lists the layers of NEW that bootc would download when upgrading from OLD: those whose
compressed digest is not in OLD and, as bootc since 2026-03 does, whose diff_id is not
either (--no-diffid models older bootc). Components come from the ostree.components
annotations, or from rechunker's plan label when registries dropped the annotations.

--changelog[=text|markdown|json] instead lists the packages added, removed and changed
(old -> new version) between the two images, for release notes. It reads the package
databases (rpm, dpkg, pacman, apk), so it imports both images into the store (--store)
first: plain images work as well as chunked ones, and a store that already holds them
reads nothing again.

--delta also makes the oci-delta file 'rechunker delta OLD NEW' would write (in a
temporary directory, removed afterwards; it needs OLD's uncompressed size of disk) and
reports its size beside the plain download, so both numbers are known before shipping.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			opts, _, err := img.options()
			if err != nil {
				return err
			}
			if changelog != "" {
				if err := checkChangelogFormat(changelog); err != nil {
					return err
				}
				c, err := imageChangelog(ctx, store, args[0], args[1], opts)
				if err != nil {
					return err
				}
				return printChangelog(cmd.OutOrStdout(), changelog, args[0], args[1], c)
			}
			old, err := imageio.Open(ctx, args[0], opts)
			if err != nil {
				return err
			}
			defer old.Close()
			new, err := imageio.Open(ctx, args[1], opts)
			if err != nil {
				return err
			}
			defer new.Close()
			r := bootc.Diff(ctx, old, new, o)
			var ds *delta.Summary
			if withDelta {
				if ds, err = deltaSize(ctx, args[0], args[1], opts); err != nil {
					return err
				}
			}
			if asJSON {
				return writeReportJSON(cmd.OutOrStdout(), diffJSON{DiffReport: r, Delta: ds})
			}
			// Roles come from the new image's layout: a plain image has no commit layer.
			layout, err := bootc.ParseLayout(new)
			if err != nil {
				layout = bootc.Layout{Final: -1}
			}
			printDiff(cmd.OutOrStdout(), args[0], args[1], r, layout)
			if ds != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "As an oci-delta file (rechunker delta): %s (the plain download above: %s)\n",
					units.Bytes(ds.DeltaBytes), units.Bytes(r.BytesFetched))
			}
			return nil
		},
	}
	img.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.Flags().BoolVar(&o.NoDiffID, "no-diffid", false, "model bootc before diff_id matching (reuse by compressed digest only)")
	cmd.Flags().StringVar(&changelog, "changelog", "", "list package changes instead, as text, markdown or json (--changelog=FORMAT)")
	cmd.Flags().Lookup("changelog").NoOptDefVal = changelogText
	cmd.Flags().BoolVar(&withDelta, "delta", false, "also report the size of an oci-delta file from OLD to NEW")
	cmd.Flags().StringVar(&store, "store", "", "object store for --changelog (default $XDG_CACHE_HOME/rechunker/store)")
	return cmd
}

func printDiff(w io.Writer, oldName, newName string, r *bootc.DiffReport, layout bootc.Layout) {
	fmt.Fprintf(w, "Upgrade %s\n     -> %s\n", oldName, newName)
	if r.SameImage {
		fmt.Fprintln(w, "Same image (manifest or config digest unchanged): bootc downloads nothing.")
		return
	}
	pct := 0.0
	if r.BytesTotal > 0 {
		pct = 100 * float64(r.BytesFetched) / float64(r.BytesTotal)
	}
	fmt.Fprintf(w, "Downloads %d of %d layers, %s of %s (%.1f%%)\n", r.LayersFetched, r.LayersTotal,
		units.Bytes(r.BytesFetched), units.Bytes(r.BytesTotal), pct)
	if len(r.Fetched) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "#\tDIGEST\tSIZE\tCHANGED COMPONENTS")
		for _, l := range r.Fetched {
			role := layout.RoleOf(l.Index)
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", l.Index, bootc.ShortDigest(l.Digest), units.Bytes(l.Size),
				bootc.ComponentList(role, l.Components, len(l.Components) > 0 || role == bootc.RoleChunk, 70))
		}
		tw.Flush()
	}
	byDigest, byDiffID := 0, 0
	for _, l := range r.Reused {
		if l.ReusedBy == "diff_id" {
			byDiffID++
		} else {
			byDigest++
		}
	}
	fmt.Fprintf(w, "\nReused: %d layers (%d by digest, %d by diff_id); %d old layers no longer used.\n",
		len(r.Reused), byDigest, byDiffID, len(r.Removed))
}

// diffJSON is diff --json: the download report, and with --delta the delta's summary.
type diffJSON struct {
	*bootc.DiffReport
	Delta *delta.Summary `json:"delta,omitempty"`
}

// deltaSize makes the delta from oldRef to newRef in a temporary directory and returns
// its summary; the file itself is not kept.
func deltaSize(ctx context.Context, oldRef, newRef string, opts imageio.Options) (*delta.Summary, error) {
	dir, err := os.MkdirTemp("", "rechunker-diff-delta-")
	if err != nil {
		return nil, fmt.Errorf("diff --delta: %w", err)
	}
	defer os.RemoveAll(dir)
	return delta.Create(ctx, oldRef, newRef, filepath.Join(dir, "delta.tar"), delta.Options{Image: opts})
}
