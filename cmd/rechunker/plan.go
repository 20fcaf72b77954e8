package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newPlanCmd is a placeholder until the plan command lands.
func newPlanCmd() *cobra.Command {
	return &cobra.Command{
		Use:  "plan",
		RunE: func(*cobra.Command, []string) error { return errors.New("plan: not implemented yet") },
	}
}
