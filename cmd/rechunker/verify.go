package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/rechunker-dev/rechunker/bootc"
	"github.com/rechunker-dev/rechunker/internal/imageio"
	"github.com/rechunker-dev/rechunker/internal/units"
	"github.com/rechunker-dev/rechunker/ostree/sign"
)

// imageReadFlags are the image access flags shared by verify, diff and inspect.
type imageReadFlags struct {
	tlsVerify bool
	cacheDir  string
	platform  platformFlag
}

func (f *imageReadFlags) add(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.tlsVerify, "tls-verify", true, "verify TLS certificates of docker:// registries")
	cmd.Flags().StringVar(&f.cacheDir, "blob-info-cache", "", "containers/image blob-info cache directory (default: a temp dir)")
	f.platform.register(cmd.Flags(), true)
}

// options returns how to open images and the platform asked for (zero: the host's).
func (f *imageReadFlags) options() (imageio.Options, imageio.Platform, error) {
	p, err := f.platform.resolve()
	if err != nil {
		return imageio.Options{}, p, err
	}
	return imageio.Options{CacheDir: f.cacheDir, InsecureSkipTLSVerify: !f.tlsVerify}.WithPlatform(p), p, nil
}

func writeReportJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newVerifyCmd() *cobra.Command {
	var (
		img      imageReadFlags
		asJSON   bool
		o        bootc.Options
		signKeys []string
	)
	cmd := &cobra.Command{
		Use:   "verify IMAGE",
		Short: "Check an image the way bootc imports it, plus bootc container lint checks",
		Long: `Verify reads every layer of IMAGE once, streaming, and applies the rules of bootc's
ostree-ext importer: bootable label, architecture, one history entry per layer, the
ostree.final-diffid split, the order and checksums of every ostree object, a complete
commit tree equal to ostree.commit, blob digests and diff_ids. Derived layers (an image
built FROM a chunked base) are applied as bootc does. The lints bootc container lint
treats as fatal (baseimage-root, api-base-directories, var-run, etc-usretc, kernel,
bootc-kargs) fail the image; other lint findings are warnings.
Exit status 1 when the image would be refused or is inconsistent.

IMAGE is TRANSPORT:REF (oci:DIR[:TAG], oci-archive:FILE, containers-storage:NAME,
docker://REF, ...) or a path to an OCI layout. --platform (or --arch) names the client:
the instance of an image index to verify and the architecture the image must have.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			for _, s := range signKeys {
				typ, path, ok := strings.Cut(s, "=")
				if !ok || typ != "ed25519" || path == "" {
					return exitError{code: 2, err: fmt.Errorf("--sign-key %q: want ed25519=PATH", s)}
				}
				keys, err := sign.LoadEd25519Public(path)
				if err != nil {
					return exitError{code: 2, err: fmt.Errorf("--sign-key: %w", err)}
				}
				o.SignKeys = append(o.SignKeys, keys...)
			}
			opts, p, err := img.options()
			if err != nil {
				return err
			}
			o.Arch = p.Architecture // empty: the host's
			src, err := imageio.Open(ctx, args[0], opts)
			if err != nil {
				return err
			}
			defer src.Close()
			r, err := bootc.Verify(ctx, src, o)
			if err != nil {
				return fmt.Errorf("verify %s: %w", args[0], err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				if err := writeReportJSON(out, r); err != nil {
					return err
				}
			} else {
				printVerify(out, args[0], r)
			}
			if !r.OK {
				return exitError{code: 1, err: r.Failure}
			}
			return nil
		},
	}
	img.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.Flags().BoolVar(&o.VarToFactory, "var-to-factory", false, "model hosts with ostree < 2024.3 (derived var/ goes to usr/share/factory/var)")
	cmd.Flags().StringVar(&o.TempDir, "tmpdir", "", "directory for the temporary metadata store (default $TMPDIR)")
	cmd.Flags().StringArrayVar(&signKeys, "sign-key", nil, "require a commit signature by a key in PATH (ed25519=PATH: base64 public keys, one per line, as ostree's keys files)")
	return cmd
}

func printVerify(w io.Writer, name string, r *bootc.Report) {
	fmt.Fprintf(w, "Image:     %s\n", name)
	fmt.Fprintf(w, "Manifest:  %s\n", r.ManifestDigest)
	fmt.Fprintf(w, "Config:    %s (%s)\n", r.ConfigDigest, r.Architecture)
	if r.Commit != "" {
		fmt.Fprintf(w, "Commit:    %s\n", r.Commit)
	}
	if r.Signatures > 0 {
		fmt.Fprintf(w, "Signed:    %d ed25519 signature(s)\n", r.Signatures)
	}
	if len(r.Layers) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "#\tROLE\tSIZE\tOBJECTS\tCONTENT\tSTATUS\tCOMPONENTS")
		for _, l := range r.Layers {
			status := "ok"
			switch {
			case r.Failure != nil && r.Failure.Layer == l.Index:
				status = "FAILED"
			case !l.Checked:
				status = "-"
			}
			objs := "-"
			if l.Role != bootc.RoleDerived {
				objs = fmt.Sprint(l.Objects)
			}
			content := "-"
			if l.Checked && l.Role != bootc.RoleDerived {
				content = units.Bytes(l.Bytes)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", l.Index, l.Role, units.Bytes(l.Size), objs, content, status,
				bootc.ComponentList(l.Role, l.Components, l.Components != nil, 60))
		}
		tw.Flush()
	}
	if t := r.Tree; t != nil {
		fmt.Fprintf(w, "\nTree:      %d directories, %d files, %d symlinks, %s\n", t.Dirs, t.Files, t.Symlinks, units.Bytes(t.Bytes))
	}
	if d := r.Derived; d != nil {
		fmt.Fprintf(w, "Derived:   %d layers: %d paths added, %d replaced, %d removed", d.Layers, d.Added, d.Replaced, d.Removed)
		if len(d.Filtered) > 0 {
			fmt.Fprintf(w, "; dropped by bootc: %v", d.Filtered)
		}
		fmt.Fprintln(w)
	}
	if len(r.Warnings) > 0 {
		fmt.Fprintf(w, "\nWarnings (%d):\n", len(r.Warnings))
		for _, p := range r.Warnings {
			fmt.Fprintf(w, "  - [%s] %s\n", p.Check, p.Message)
		}
	}
	fmt.Fprintln(w)
	if r.OK {
		fmt.Fprintln(w, "PASS: bootc would accept this image")
	} else {
		fmt.Fprintf(w, "FAIL: %v\n", r.Failure)
	}
}
