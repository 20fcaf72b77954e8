package vmtests

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
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

// BuildRechunker builds ./cmd/rechunker of the module at root into out the way
// hack/test.sh does (no cgo, so no C headers for storage drivers are needed;
// the pure-Go OpenPGP backend of containers/image).
func BuildRechunker(ctx context.Context, root, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-buildvcs=false", "-tags=containers_image_openpgp",
		"-o", out, "./cmd/rechunker")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build rechunker in %s: %w%s", root, err, tail(b, 5))
	}
	return nil
}
