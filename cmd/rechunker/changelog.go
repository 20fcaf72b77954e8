package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/rechunker-dev/rechunker/internal/imageio"
	"github.com/rechunker-dev/rechunker/internal/source"
	"github.com/rechunker-dev/rechunker/ostree"
	"github.com/rechunker-dev/rechunker/rechunk"
)

// Changelog formats of diff --changelog.
const (
	changelogText     = "text"
	changelogMarkdown = "markdown"
	changelogJSON     = "json"
)

// imagePackages imports an image into the store (its layers are read once; a store that
// already holds them reads nothing) and lists the packages of its package databases.
// Manifests and labels do not record versions, so the databases are the source.
func imagePackages(ctx context.Context, store *ostree.Store, ref string, opts imageio.Options) ([]rechunk.Package, error) {
	in, err := source.Load(ctx, ref, "", source.Options{
		Store: store, Image: opts, NoSELinux: true,
		Warn: func(m string) { fmt.Fprintln(os.Stderr, "rechunker: warning:", m) },
	})
	if err != nil {
		return nil, err
	}
	defer in.Close()
	pkgs, err := rechunk.Packages(ctx, in.Tree, store, func(m string) { fmt.Fprintln(os.Stderr, "rechunker: warning:", m) })
	if err != nil {
		return nil, fmt.Errorf("list packages of %s: %w", ref, err)
	}
	return pkgs, nil
}

// imageChangelog compares the package databases of two images.
func imageChangelog(ctx context.Context, storeDir, oldRef, newRef string, opts imageio.Options) (rechunk.Changelog, error) {
	if storeDir == "" {
		var err error
		if storeDir, err = ostree.DefaultStoreDir(); err != nil {
			return rechunk.Changelog{}, err
		}
	}
	store, err := ostree.OpenStore(storeDir)
	if err != nil {
		return rechunk.Changelog{}, err
	}
	old, err := imagePackages(ctx, store, oldRef, opts)
	if err != nil {
		return rechunk.Changelog{}, err
	}
	new, err := imagePackages(ctx, store, newRef, opts)
	if err != nil {
		return rechunk.Changelog{}, err
	}
	return rechunk.ComparePackages(old, new), nil
}

// checkChangelogFormat refuses a --changelog format before any image is read.
func checkChangelogFormat(f string) error {
	switch f {
	case changelogText, changelogMarkdown, changelogJSON:
		return nil
	}
	return exitError{code: 2, err: fmt.Errorf("--changelog=%s: want text, markdown or json", f)}
}

// printChangelog writes c as text (a table) or markdown (a release-notes section).
func printChangelog(w io.Writer, format, oldName, newName string, c rechunk.Changelog) error {
	switch format {
	case changelogJSON:
		return writeReportJSON(w, c)
	case changelogMarkdown:
		fmt.Fprintf(w, "## Package changes\n\nFrom `%s` to `%s`: %d changed, %d added, %d removed.\n", oldName, newName,
			len(c.Changed), len(c.Added), len(c.Removed))
		section := func(title string, l []rechunk.PackageChange, row func(rechunk.PackageChange) string, head string) {
			if len(l) == 0 {
				return
			}
			fmt.Fprintf(w, "\n### %s\n\n%s\n", title, head)
			for _, ch := range l {
				fmt.Fprintln(w, row(ch))
			}
		}
		section("Changed", c.Changed, func(ch rechunk.PackageChange) string {
			return fmt.Sprintf("| %s | %s | %s | %s |", mdCell(ch.Name), mdCell(ch.Arch), mdCell(ch.Old), mdCell(ch.New))
		}, "| Package | Arch | Old | New |\n|---|---|---|---|")
		section("Added", c.Added, func(ch rechunk.PackageChange) string {
			return fmt.Sprintf("| %s | %s | %s |", mdCell(ch.Name), mdCell(ch.Arch), mdCell(ch.New))
		}, "| Package | Arch | Version |\n|---|---|---|")
		section("Removed", c.Removed, func(ch rechunk.PackageChange) string {
			return fmt.Sprintf("| %s | %s | %s |", mdCell(ch.Name), mdCell(ch.Arch), mdCell(ch.Old))
		}, "| Package | Arch | Version |\n|---|---|---|")
		return nil
	case changelogText:
		fmt.Fprintf(w, "Packages %s\n      -> %s: %d changed, %d added, %d removed\n", oldName, newName,
			len(c.Changed), len(c.Added), len(c.Removed))
		if len(c.Changed)+len(c.Added)+len(c.Removed) == 0 {
			return nil
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "\nCHANGE\tPACKAGE\tARCH\tOLD\tNEW")
		for _, l := range []struct {
			what string
			l    []rechunk.PackageChange
		}{{"changed", c.Changed}, {"added", c.Added}, {"removed", c.Removed}} {
			for _, ch := range l.l {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", l.what, ch.Name, ch.Arch, dash(ch.Old), dash(ch.New))
			}
		}
		return tw.Flush()
	}
	return checkChangelogFormat(format)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// mdCell keeps a value from breaking a markdown table.
func mdCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}
