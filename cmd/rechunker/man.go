package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// manDate is the date every man page's header carries. It is fixed so that the pages
// in docs/man/ depend only on the commands, not on when or where they were generated;
// change it when the pages change in a way worth dating.
var manDate = time.Date(2026, time.December, 1, 0, 0, 0, 0, time.UTC)

// manRegenerate is the command that rewrites docs/man/ (TestManPages checks it is current).
const manRegenerate = "go test ./cmd/rechunker/ -run TestManPages -update-man"

// genManPages writes one roff man page per command (rechunker.1, rechunker-build.1,
// ...) into dir, which must exist. Nothing in them depends on the time, the host or the
// version: the date is manDate and no "auto generated" history section is written.
func genManPages(dir string) error {
	root := newRootCmd()
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		c.DisableAutoGenTag = true
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	date := manDate
	header := &doc.GenManHeader{Date: &date, Source: "rechunker", Manual: "rechunker manual"}
	if err := doc.GenManTree(root, header, dir); err != nil {
		return fmt.Errorf("man pages: %w", err)
	}
	return nil
}
