//go:build integration

package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.podman.io/storage/pkg/reexec"
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
	// The test binary runs in this package's directory; the module root is one up.
	cmd := exec.Command("go", "build", "-buildvcs=false", "-tags=containers_image_openpgp",
		"-o", rechunkerBin, "./cmd/rechunker")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "integration: build rechunker: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}
