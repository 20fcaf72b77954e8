package main

import "github.com/spf13/cobra"

// newComposeCmd provides `compose build-chunked-oci` with exactly the flags of
// `rpm-ostree compose build-chunked-oci`, so scripts written for rpm-ostree run unchanged.
func newComposeCmd() *cobra.Command {
	compose := &cobra.Command{
		Use:   "compose",
		Short: "rpm-ostree compatible entry points",
	}
	f := &buildFlags{}
	chunked := &cobra.Command{
		Use:   "build-chunked-oci (--from IMAGE | --rootfs DIR) --output IMAGE [flags]",
		Short: "Same as `rechunker build`, under rpm-ostree's name",
		Long: `build-chunked-oci is 'rechunker build' under the name and flags of
'rpm-ostree compose build-chunked-oci'. --from names an image in containers-storage (or
any TRANSPORT:REF); --bootc is accepted but not required; --format-version defaults to 2.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runBuild(cmd, f) },
	}
	f.register(chunked)
	compose.AddCommand(chunked)
	return compose
}
