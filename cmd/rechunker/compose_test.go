package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/build"
)

// TestBaselineNotice: like rpm-ostree, `compose build-chunked-oci` and `build` say
// "Found existing chunked image at target, will use as baseline" when --output already
// holds a chunked image, on stderr so that --json's stdout stays JSON; the first build
// into an output does not.
func TestBaselineNotice(t *testing.T) {
	const line = "Found existing chunked image at target, will use as baseline"
	require.Equal(t, line, build.NoticeBaseline)
	rootfs := buildRootfs(t)
	for _, verb := range [][]string{{"compose", "build-chunked-oci"}, {"build"}} {
		t.Run(verb[0], func(t *testing.T) {
			tmp := t.TempDir()
			args := append(append([]string{}, verb...), "--rootfs", rootfs, "--bootc", "--json",
				"--output", "oci:"+filepath.Join(tmp, "out")+":latest", "--store", filepath.Join(tmp, "store"))
			for i, want := range []bool{false, true} {
				r := runBin(t, tmp, args...)
				require.Equal(t, 0, r.code, "build %d: %s", i+1, r)
				assert.Equal(t, want, strings.Contains(r.stderr, line), "build %d: %s", i+1, r)
				assert.NotContains(t, r.stdout, line, "build %d", i+1)
				var sum map[string]any
				assert.NoError(t, json.Unmarshal([]byte(r.stdout), &sum), "build %d: stdout is JSON", i+1)
			}
		})
	}
}
