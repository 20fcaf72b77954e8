package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newInspectCmd is a placeholder until the inspect command lands.
func newInspectCmd() *cobra.Command {
	return &cobra.Command{
		Use:  "inspect",
		RunE: func(*cobra.Command, []string) error { return errors.New("inspect: not implemented yet") },
	}
}
