package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newComposeCmd is a placeholder until the compose command lands.
func newComposeCmd() *cobra.Command {
	return &cobra.Command{
		Use:  "compose",
		RunE: func(*cobra.Command, []string) error { return errors.New("compose: not implemented yet") },
	}
}
