// Package testbin builds the rechunker command for tests that drive the real binary.
//
// The command is built with the build tags and the cgo setting of the test binary that
// asks for it, read from the test binary's own build information. A test run with
// `go test -tags X` (or GOFLAGS=-tags=X) therefore tests a CLI built with X, and
// packages such as containers/storage, whose files are selected by tags and by cgo,
// are compiled the same way in both.
package testbin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
)

// Package is the import path built: module-relative, so the go tool finds it from any
// directory inside the module.
const Package = "github.com/rechunker-dev/rechunker/cmd/rechunker"

// Build builds the rechunker command into out, running the go tool in the current
// directory (a test's package directory, which is inside the module).
func Build(ctx context.Context, out string) error {
	return BuildIn(ctx, "", out)
}

// BuildIn is Build with the go tool run in dir, any directory inside the module.
func BuildIn(ctx context.Context, dir, out string) error {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return errors.New("build rechunker: this binary carries no build information to take tags from")
	}
	inv := invocation(info, out)
	cmd := exec.CommandContext(ctx, goTool(), inv.args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), inv.env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s into %s (go %s %s): %w\n%s",
			Package, out, strings.Join(inv.env, " "), strings.Join(inv.args, " "), err, b)
	}
	return nil
}

// goInvocation is the arguments and extra environment of one go build.
type goInvocation struct {
	args []string
	env  []string
}

// invocation derives the go build of the command from the build settings of info.
// The tags are always given, even when empty: an explicit -tags overrides one in
// GOFLAGS, which may differ from what the test binary was built with. VCS stamping
// is off because a test's working directory need not be a usable checkout.
func invocation(info *debug.BuildInfo, out string) goInvocation {
	var tags, cgo string
	for _, s := range info.Settings {
		switch s.Key {
		case "-tags":
			tags = s.Value
		case "CGO_ENABLED":
			cgo = s.Value
		}
	}
	inv := goInvocation{args: []string{"build", "-buildvcs=false", "-tags=" + tags, "-o", out, Package}}
	if cgo != "" {
		inv.env = []string{"CGO_ENABLED=" + cgo}
	}
	return inv
}

// goTool is the go command of the toolchain that built this binary, so that the CLI is
// compiled by the same Go version; PATH's go when that toolchain is not on this machine.
func goTool() string {
	// runtime.GOROOT is deprecated for binaries copied elsewhere; a test binary runs
	// where it was built, so its toolchain root is meaningful here.
	p := filepath.Join(runtime.GOROOT(), "bin", "go") //lint:ignore SA1019 see above
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return "go"
}

// Path builds the command into the test's temporary directory and returns its path.
// For a package whose tests all run the binary, Binary builds it once instead.
func Path(t testing.TB) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "rechunker")
	if err := Build(t.Context(), out); err != nil {
		t.Fatal(err)
	}
	return out
}

// Binary is the command built at most once per test process, for packages with many
// tests that run it (a build costs seconds of linking). The zero value is ready to use.
// The test package owns it and calls Close from TestMain after the tests have run.
type Binary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Path returns the built command, building it on first use. A failed build fails this
// test and every later one with the same error instead of building again.
func (b *Binary) Path(t testing.TB) string {
	t.Helper()
	b.once.Do(func() { b.err = b.build(t.Context()) })
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

func (b *Binary) build(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "rechunker-bin-")
	if err != nil {
		return fmt.Errorf("build rechunker: %w", err)
	}
	b.dir = dir
	b.path = filepath.Join(dir, "rechunker")
	return Build(ctx, b.path)
}

// Close removes the built command, if any.
func (b *Binary) Close() error {
	if b.dir == "" {
		return nil
	}
	return os.RemoveAll(b.dir)
}
