package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/rechunker-dev/rechunker/bootc"
	"github.com/rechunker-dev/rechunker/delta"
	"github.com/rechunker-dev/rechunker/internal/units"
)

func newDeltaCmd() *cobra.Command {
	var (
		img    imageReadFlags
		output string
		asJSON bool
		ignore []string
		only   []string
	)
	cmd := &cobra.Command{
		Use:   "delta OLD NEW --output FILE",
		Short: "Write an oci-delta file that rebuilds NEW from OLD's files",
		Long: `Delta writes an oci-delta artifact (containers/oci-delta): a tar of an OCI layout holding
NEW's manifest and config and, for each layer of NEW whose diff_id OLD lacks, a tar-diff
(bsdiff + zstd) against OLD's files, or the original blob when that is smaller. Layers
OLD already has are only listed. 'rechunker delta apply' turns the file back into NEW.

OLD's layer tars are unpacked, uncompressed, next to --output while it runs and removed
at the end: the disk it needs is OLD's uncompressed size plus two of NEW's layers.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output == "" {
				return exitError{code: 2, err: errors.New("--output is required")}
			}
			opts, _, err := img.options()
			if err != nil {
				return err
			}
			sum, err := delta.Create(cmd.Context(), args[0], args[1], output,
				delta.Options{Image: opts, IgnoreSourcePrefixes: ignore, SourcePrefixes: only})
			if err != nil {
				return err
			}
			if asJSON {
				return writeReportJSON(cmd.OutOrStdout(), sum)
			}
			printDeltaSummary(cmd.OutOrStdout(), output, sum)
			return nil
		},
	}
	img.add(cmd)
	cmd.Flags().StringVar(&output, "output", "", "the delta file to write")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the summary as JSON")
	cmd.Flags().StringSliceVar(&ignore, "ignore-source-prefix", nil,
		"paths of OLD the delta must not copy from (the applying root lacks them); repeatable")
	cmd.Flags().StringSliceVar(&only, "source-prefix", nil,
		"the only paths of OLD the delta may copy from; "+delta.ObjectsPrefix+" makes a delta of chunked images that 'apply --repo' can apply alone; repeatable")
	cmd.AddCommand(newDeltaApplyCmd())
	return cmd
}

func printDeltaSummary(w io.Writer, output string, s *delta.Summary) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tLAYER\tKIND\tLAYER SIZE\tIN DELTA")
	for i, l := range s.Layers {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", i, bootc.ShortDigest(l.Digest), l.Kind,
			units.Bytes(l.Size), units.Bytes(l.Bytes))
	}
	tw.Flush()
	fmt.Fprintf(w, "Wrote %s: %s (NEW's layers: %s, of which OLD lacks %s) in %s\n", output,
		units.Bytes(s.DeltaBytes), units.Bytes(s.TargetBytes), units.Bytes(s.FetchBytes),
		time.Duration(s.Seconds*float64(time.Second)).Round(time.Millisecond))
}

func newDeltaApplyCmd() *cobra.Command {
	var (
		img    imageReadFlags
		root   string
		repo   string
		output string
		source string
	)
	cmd := &cobra.Command{
		Use:   "apply FILE (--root DIR | --repo REPO) --output oci-archive:PATH",
		Short: "Rebuild the image an oci-delta file describes from the old image's files",
		Long: `Apply rebuilds each layer of the delta's target image from its tar-diff and the files of
the old image unpacked at --root (e.g. 'umoci unpack'), gzips it, checks its diff_id
against the target config, and writes the image as an OCI archive. Layer digests differ
from the original's (gzip is not the original compressor); diff_ids are equal.

Layers the old image already had are not in the delta: --source OLD (the old image)
supplies them and is checked to be the image the delta was made from. Nothing is
written when any layer fails.

--repo REPO reads the old image's ostree objects (the files under sysroot/ostree/repo/
in a chunked image's layers) from an ostree repository in bare or bare-user mode, e.g.
a booted host's /sysroot/ostree/repo. A delta made with --source-prefix
` + delta.ObjectsPrefix + ` reads nothing else; other files come from --root.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (root == "" && repo == "") || output == "" {
				return exitError{code: 2, err: errors.New("--output and one of --root and --repo are required")}
			}
			path, ok := strings.CutPrefix(output, "oci-archive:")
			if !ok || path == "" {
				return exitError{code: 2, err: fmt.Errorf("--output %q: give oci-archive:PATH", output)}
			}
			opts, _, err := img.options()
			if err != nil {
				return err
			}
			return delta.Apply(cmd.Context(), args[0], root, path, delta.ApplyOptions{Image: opts, Source: source, Repo: repo})
		},
	}
	img.add(cmd)
	cmd.Flags().StringVar(&root, "root", "", "the old image's files, unpacked")
	cmd.Flags().StringVar(&repo, "repo", "", "an ostree repository (bare, bare-user) holding the old image's objects")
	cmd.Flags().StringVar(&output, "output", "", "where to write the image (oci-archive:PATH)")
	cmd.Flags().StringVar(&source, "source", "", "the old image; required when the delta reuses its layers")
	return cmd
}
