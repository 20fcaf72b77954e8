package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/rechunker-dev/rechunker/build"
	"github.com/rechunker-dev/rechunker/internal/fsutil"
	"github.com/rechunker-dev/rechunker/internal/units"
)

func newStoreCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Manage the object store",
	}
	cmd.AddCommand(newStorePruneCmd())
	return cmd
}

// pruneSummary is the --json output of store prune.
type pruneSummary struct {
	Store        string           `json:"store"`
	Cutoff       time.Time        `json:"cutoff"`
	DryRun       bool             `json:"dry_run"`
	Removed      map[string]int   `json:"removed_files"`
	RemovedBytes map[string]int64 `json:"removed_bytes"`
	Kept         int              `json:"objects_named_by_kept_caches"`
	Seconds      float64          `json:"seconds"`
}

func newStorePruneCmd() *cobra.Command {
	var (
		in        inputFlags
		olderThan time.Duration
		dryRun    bool
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "prune [--older-than DURATION] [--dry-run]",
		Short: "Remove what no build used recently from the store",
		Long: `Prune removes from the store the layer records, relabel index entries, derived
objects, cached blobs and objects that no build used within --older-than (default 30
days). Caches mark an entry used when a build reads it; the content objects a kept layer
record or relabel entry names stay, whatever their age, with the bases of derived ones, and nothing written within --older-than is removed,
so a build running meanwhile keeps what it wrote. Run it while no build uses the store,
though: a build replaying a record unused for the whole window could lose objects under
it (running that build again imports them anew). The next build that needs something
pruned imports or compresses it again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if olderThan <= 0 {
				return exitError{code: 2, err: fmt.Errorf("--older-than must be positive, got %s", olderThan)}
			}
			store, err := in.openStore()
			if err != nil {
				return err
			}
			start := time.Now()
			cutoff := start.Add(-olderThan)
			sum := pruneSummary{Store: store.Path(), Cutoff: cutoff.UTC(), DryRun: dryRun,
				Removed: map[string]int{}, RemovedBytes: map[string]int64{}}
			res, err := build.PruneStore(ctx, store, cutoff, dryRun)
			if err != nil {
				return err
			}
			for _, s := range res.Steps {
				sum.Removed[s.Name], sum.RemovedBytes[s.Name] = s.Stats.Files, s.Stats.Bytes
			}
			sum.Kept = res.Kept
			sum.Seconds = time.Since(start).Seconds()
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(sum)
			}
			verb := "Removed"
			if dryRun {
				verb = "Would remove"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s from %s (unused since %s):\n", verb, store.Path(), cutoff.UTC().Format(time.RFC3339))
			var total fsutil.PruneStats
			for _, s := range res.Steps {
				total.Add(s.Stats)
				fmt.Fprintf(cmd.OutOrStdout(), "  %-14s %8d files  %10s\n", s.Name, s.Stats.Files, units.Bytes(s.Stats.Bytes))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "  %-14s %8d files  %10s\n", "total", total.Files, units.Bytes(total.Bytes))
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&in.store, "store", "", "object store directory (default $XDG_CACHE_HOME/rechunker/store)")
	fs.DurationVar(&olderThan, "older-than", 30*24*time.Hour, "remove what no build used for this long")
	fs.BoolVar(&dryRun, "dry-run", false, "only report what would be removed")
	fs.BoolVar(&asJSON, "json", false, "print a JSON summary")
	return cmd
}
