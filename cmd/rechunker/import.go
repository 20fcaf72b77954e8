package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newImportCmd is a placeholder until the import command lands.
func newImportCmd() *cobra.Command {
	return &cobra.Command{
		Use:  "import",
		RunE: func(*cobra.Command, []string) error { return errors.New("import: not implemented yet") },
	}
}
