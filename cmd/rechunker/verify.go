package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newVerifyCmd is a placeholder until the verify command lands.
func newVerifyCmd() *cobra.Command {
	return &cobra.Command{
		Use:  "verify",
		RunE: func(*cobra.Command, []string) error { return errors.New("verify: not implemented yet") },
	}
}
