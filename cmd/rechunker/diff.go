package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newDiffCmd is a placeholder until the diff command lands.
func newDiffCmd() *cobra.Command {
	return &cobra.Command{
		Use:  "diff",
		RunE: func(*cobra.Command, []string) error { return errors.New("diff: not implemented yet") },
	}
}
