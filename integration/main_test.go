//go:build integration

package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.podman.io/storage/pkg/reexec"

	"github.com/rechunker-dev/rechunker/internal/testbin"
)

// rechunkerBin is the CLI under test, built once by TestMain (or taken from RECHUNKER_BIN).
// It is written only before any test runs.
var rechunkerBin string

func TestMain(m *testing.M) {
	if reexec.Init() {
		return
	}
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if bin := os.Getenv("RECHUNKER_BIN"); bin != "" {
		abs, err := filepath.Abs(bin)
		if err != nil {
			fmt.Fprintln(os.Stderr, "integration: RECHUNKER_BIN:", err)
			return 1
		}
		rechunkerBin = abs
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "rechunker-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	rechunkerBin = filepath.Join(dir, "rechunker")
	// Built with this test binary's tags (containers_image_openpgp,integration under
	// hack/test.sh) and cgo setting.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	err = testbin.Build(ctx, rechunkerBin)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	return m.Run()
}
