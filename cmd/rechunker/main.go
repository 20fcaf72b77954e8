// Command rechunker rewrites a container image as an ostree-native, chunked,
// bootc-compatible OCI image whose layers stay stable across releases.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rechunker-dev/rechunker/internal/gctune"
	"github.com/spf13/cobra"
	"go.podman.io/storage/pkg/reexec"
)

func main() {
	// containers-storage re-executes this binary to apply layers; that must run first.
	if reexec.Init() {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" {
		// A 300k-file image keeps 75-85 MB live: the limit holds its heap near 122 MiB
		// without collecting all the time while the tree is built (internal/gctune).
		gcCtx, stopGC := context.WithCancel(ctx)
		defer stopGC()
		go gctune.Run(gcCtx, gctune.Policy{GOGC: 100, Limit: 122 << 20, MinPercent: 30}, 100*time.Millisecond)
	}
	cmd, err := newRootCmd().ExecuteContextC(ctx)
	stop()
	if err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			// Status 1 from an exitError follows a report the command printed itself.
			if ee.code != 1 {
				fmt.Fprintln(os.Stderr, "rechunker:", ee.err)
			}
			if ee.code == 2 {
				fmt.Fprintf(os.Stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
			}
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "rechunker:", err)
		os.Exit(1)
	}
}

// exitError carries a specific exit status (e.g. verify failing is 1, usage is 2).
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "rechunker",
		Short:         "Rewrite container images as chunked, bootc-compatible ostree images",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	(&profileFlags{}).register(root)
	root.AddCommand(
		newImportCmd(),
		newLsCmd(),
		newPlanCmd(),
		newBuildCmd(),
		newComposeCmd(),
		newVerifyCmd(),
		newDiffCmd(),
		newDeltaCmd(),
		newInspectCmd(),
		newStoreCmd(),
		newVersionCmd(),
	)
	setVersionFlag(root)
	// Cobra adds help and completion when it runs; now, so that markUsageErrors sees them.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "help" {
			c.Args = knownHelpTopic
		}
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return exitError{code: 2, err: err} })
	markUsageErrors(root)
	return root
}

// markUsageErrors makes cobra's own rejections of a command line usage errors (status
// 2), like the commands' checks of flag values: wrong argument counts, and unknown
// subcommands of a command group, which cobra answers with help and status 0 (or, at
// the root, status 1). A group becomes runnable to check its arguments; without any it
// prints its help as before.
func markUsageErrors(c *cobra.Command) {
	switch {
	case c.Runnable() && c.Args != nil:
		check := c.Args
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				return exitError{code: 2, err: err}
			}
			return nil
		}
	case !c.Runnable() && c.HasSubCommands():
		c.Args = unknownSubcommand
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
		c.DisableFlagsInUseLine = true // "rechunker store" alone only prints help
		if c.SuggestionsMinimumDistance <= 0 {
			c.SuggestionsMinimumDistance = 2 // cobra's default, which only the root got
		}
	}
	for _, sub := range c.Commands() {
		markUsageErrors(sub)
	}
}

func unknownSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return exitError{code: 2, err: errors.New(msg)}
}

// knownHelpTopic rejects `rechunker help NAME` when NAME is no command: with the root
// runnable, cobra's help would print the root's help for it.
func knownHelpTopic(cmd *cobra.Command, args []string) error {
	if _, rest, err := cmd.Root().Find(args); err != nil || len(rest) > 0 {
		return fmt.Errorf("unknown help topic %q", strings.Join(args, " "))
	}
	return nil
}
