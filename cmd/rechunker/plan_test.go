package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPlanCommand(t *testing.T) {
	rootfs := t.TempDir()
	for p, content := range map[string]string{
		"usr/bin/tool":                "tool",
		"etc/hostname":                "box\n",
		"usr/share/big/blob":          strings.Repeat("x", 2<<20),
		"var/lib/dpkg/status":         "Package: tool\nStatus: install ok installed\nArchitecture: amd64\n\n",
		"var/lib/dpkg/info/tool.list": "/usr\n/usr/bin\n/usr/bin/tool\n",
	} {
		full := filepath.Join(rootfs, p)
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(t, os.WriteFile(full, []byte(content), 0o644))
	}
	store := t.TempDir()
	out, err := runCLI(t, "plan", "--store", store, "--rootfs", rootfs, "--max-layers", "8")
	require.NoError(t, err)
	assert.Contains(t, out, "LAYER")
	assert.Contains(t, out, "package database: changes whenever any package does")
	assert.Contains(t, out, "chunk layers (+1 commit layer)")

	out, err = runCLI(t, "plan", "--store", store, "--rootfs", rootfs, "--json")
	require.NoError(t, err)
	var p planJSON
	require.NoError(t, json.Unmarshal([]byte(out), &p))
	owner := map[string][]string{}
	for _, l := range p.Layers {
		for _, f := range l.Files {
			owner[f] = l.Components
		}
	}
	assert.Equal(t, []string{"tool"}, owner["/usr/bin/tool"])
	assert.Equal(t, []string{"file:/usr/share/big/blob"}, owner["/usr/share/big/blob"])
	assert.Equal(t, []string{"rechunker/unclaimed"}, owner["/usr/etc/hostname"])
	assert.NotEmpty(t, p.Labels["dev.rechunker.plan"])

	_, err = runCLI(t, "plan", "--store", store, "--rootfs", rootfs, "--max-layers", "2")
	require.ErrorContains(t, err, "at least 4 layers")

	out, err = runCLI(t, "plan", "--store", store, "--rootfs", rootfs, "--explain", "/usr/bin/tool", "--explain", "etc/hostname")
	require.NoError(t, err)
	assert.Contains(t, out, "/usr/bin/tool\n  layer ")
	assert.Contains(t, out, "components: tool\n")
	assert.Contains(t, out, "part, if its package is split: stable", "a 0644 file outside the volatile patterns")
	assert.Contains(t, out, "/usr/etc/hostname\n", "/etc is looked up as /usr/etc")
	assert.Contains(t, out, "components: rechunker/unclaimed")
	_, err = runCLI(t, "plan", "--store", store, "--rootfs", rootfs, "--explain", "/no/such/file")
	require.ErrorContains(t, err, "/no/such/file is not a file or symlink of the tree")
}
