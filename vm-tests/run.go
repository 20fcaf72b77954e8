package vmtests

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"

	"github.com/rechunker-dev/rechunker/internal/testbin"
)

func lookPath(name string) (string, error) { return exec.LookPath(name) }

// Result is what a finished command printed.
type Result struct {
	Stdout []byte
	Stderr []byte
}

// Run runs c to completion. Stdout is captured; stderr is captured and, when
// log is not nil, also streamed to it (long builds and VM installs report
// progress there). A failure's error names the command and ends with the
// last lines of stderr.
func Run(ctx context.Context, c Cmd, log io.Writer) (Result, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, c.Name, c.Args...)
	cmd.Stdout = &stdout
	if log != nil {
		cmd.Stderr = io.MultiWriter(&stderr, log)
	} else {
		cmd.Stderr = &stderr
	}
	err := cmd.Run()
	res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	if err != nil {
		return res, fmt.Errorf("%s: %w%s", c, err, tail(stderr.Bytes(), 5))
	}
	return res, nil
}

// tail formats the last n non-empty lines of b for an error message.
func tail(b []byte, n int) string {
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return ""
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return ": " + strings.Join(lines, " | ")
}

// BuildRechunker builds the rechunker command into out, running the go tool in root
// (the module's root, or any directory inside it), with the build tags and cgo setting
// of the test binary that calls it: hack/test.sh's containers_image_openpgp without cgo,
// or whatever `go test -tags` the suite was run with.
func BuildRechunker(ctx context.Context, root, out string) error {
	return testbin.BuildIn(ctx, root, out)
}
