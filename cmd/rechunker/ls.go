package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newLsCmd is a placeholder until the ls command lands.
func newLsCmd() *cobra.Command {
	return &cobra.Command{
		Use:  "ls",
		RunE: func(*cobra.Command, []string) error { return errors.New("ls: not implemented yet") },
	}
}
