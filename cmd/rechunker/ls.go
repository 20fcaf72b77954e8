package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/rechunker-dev/rechunker/ostree"
)

func newLsCmd() *cobra.Command {
	var f inputFlags
	var o ostree.LsOptions
	cmd := &cobra.Command{
		Use:   "ls [-R] [-X] (SOURCE | --rootfs DIR) [PATH]",
		Short: "List the commit an image or rootfs imports as, like ostree ls -C",
		Long: `ls imports SOURCE (or --rootfs DIR) as import does and lists PATH (default /) of the
resulting commit, byte for byte as ` + "`ostree ls -C`" + ` (-R: ` + "`ostree ls -RC`" + `) prints it.`,
		Args: cobra.RangeArgs(0, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			from, p := "", "/"
			switch {
			case f.rootfs != "" && len(args) == 2:
				return exitError{code: 2, err: errors.New("with --rootfs, give at most a PATH")}
			case f.rootfs != "" && len(args) == 1:
				p = args[0]
			case len(args) >= 1:
				from = args[0]
				if len(args) == 2 {
					p = args[1]
				}
			}
			in, _, err := f.load(cmd.Context(), from)
			if err != nil {
				return err
			}
			defer in.Close()
			o.Checksums = true
			return ostree.FormatLsOptions(cmd.OutOrStdout(), in.Tree, p, o)
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().BoolVarP(&o.Recursive, "recursive", "R", false, "list directories recursively")
	cmd.Flags().BoolVarP(&o.Xattrs, "xattrs", "X", false, "show xattrs")
	return cmd
}
