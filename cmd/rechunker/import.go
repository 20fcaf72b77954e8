package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rechunker-dev/rechunker/build"
	"github.com/rechunker-dev/rechunker/internal/imageio"
	"github.com/rechunker-dev/rechunker/internal/source"
	"github.com/rechunker-dev/rechunker/ostree"
)

// inputFlags are the flags of commands that load a build input (an image or a rootfs).
type inputFlags struct {
	store     string
	rootfs    string
	noCache   bool
	insecure  bool
	noSELinux bool
	platform  platformFlag
	// keep: the store must hold the commit's files after the command (import), so a
	// --rootfs directory is copied into it rather than read in place.
	keep bool
}

func (f *inputFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.store, "store", "", "object store directory (default $XDG_CACHE_HOME/rechunker/store)")
	fs.StringVar(&f.rootfs, "rootfs", "", "load this root filesystem directory instead of an image")
	fs.BoolVar(&f.noCache, "no-layer-cache", false, "neither use nor write the store's layer records")
	fs.BoolVar(&f.insecure, "insecure", false, "skip TLS verification for docker:// sources")
	fs.BoolVar(&f.noSELinux, "no-selinux", false, "keep the input's xattrs instead of labelling it from the SELinux policy it contains")
	f.platform.register(fs, false)
}

// imageOptions returns how to open the input and previous builds.
func (f *inputFlags) imageOptions() (imageio.Options, error) {
	p, err := f.platform.resolve()
	if err != nil {
		return imageio.Options{}, err
	}
	return imageio.Options{InsecureSkipTLSVerify: f.insecure}.WithPlatform(p), nil
}

// openStore opens --store, or the default store.
func (f *inputFlags) openStore() (*ostree.Store, error) {
	dir := f.store
	if dir == "" {
		var err error
		if dir, err = ostree.DefaultStoreDir(); err != nil {
			return nil, err
		}
	}
	return ostree.OpenStore(dir)
}

// load loads the image from (or --rootfs) into the store, warning on stderr.
func (f *inputFlags) load(ctx context.Context, from string) (*source.Input, *ostree.Store, error) {
	if (from == "") == (f.rootfs == "") {
		return nil, nil, exitError{code: 2, err: errors.New("give exactly one of SOURCE (an image, TRANSPORT:REF) and --rootfs DIR")}
	}
	opts, err := f.imageOptions()
	if err != nil {
		return nil, nil, err
	}
	store, err := f.openStore()
	if err != nil {
		return nil, nil, err
	}
	in, err := source.Load(ctx, from, f.rootfs, source.Options{
		Store:      store,
		Image:      opts,
		Warn:       func(m string) { fmt.Fprintln(os.Stderr, "rechunker: warning:", m) },
		NoCache:    f.noCache,
		NoSELinux:  f.noSELinux,
		CopyRootfs: f.keep,
	})
	if err != nil {
		return nil, nil, err
	}
	if f.rootfs != "" {
		build.SetPlatform(&in.Config, opts.Platform())
	}
	return in, store, nil
}

// importSummary is the --json output of import.
type importSummary struct {
	Ref          string  `json:"ref"`
	Commit       string  `json:"commit"`
	Timestamp    uint64  `json:"timestamp"`
	Files        int     `json:"files"`
	Symlinks     int     `json:"symlinks"`
	Dirs         int     `json:"dirs"`
	Bytes        int64   `json:"bytes"`
	Layers       int     `json:"layers"`
	CachedLayers int     `json:"cached_layers"`
	Seconds      float64 `json:"seconds"`
}

func newImportCmd() *cobra.Command {
	f := inputFlags{keep: true}
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "import [SOURCE] [--rootfs DIR] [--store DIR] [--json]",
		Short: "Import an image or root filesystem into the store as an ostree commit",
		Long: `Import applies the image's layers (or reads --rootfs DIR), postprocesses the tree as
rpm-ostree does (/sysroot emptied, /etc moved to /usr/etc) and writes the commit to the
store. It prints the commit checksum. Layers already imported once are replayed from the
store without reading their blobs.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			start := time.Now()
			from := ""
			if len(args) == 1 {
				from = args[0]
			}
			in, _, err := f.load(cmd.Context(), from)
			if err != nil {
				return err
			}
			if !asJSON {
				fmt.Fprintln(cmd.OutOrStdout(), in.CommitSum)
				return nil
			}
			st := in.Tree.Stats()
			sum := importSummary{
				Ref: in.Ref, Commit: in.CommitSum.String(), Timestamp: in.Commit.Timestamp,
				Files: st.Files, Symlinks: st.Symlinks, Dirs: st.Dirs, Bytes: st.Bytes,
				Layers: len(in.Layers), Seconds: time.Since(start).Seconds(),
			}
			for _, l := range in.Layers {
				if l.Cached {
					sum.CachedLayers++
				}
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(sum)
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON summary instead of the checksum")
	return cmd
}
