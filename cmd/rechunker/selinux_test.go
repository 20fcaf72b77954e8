package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBuildLabelsFromImagePolicy builds a root filesystem that ships an SELinux policy
// and a dpkg database: every entry is labelled, nothing of the tree is copied into the
// store (relabelled files are read in place like the others), the planner reads the relabelled package
// database, and verify re-hashes every object of the written image.
func TestBuildLabelsFromImagePolicy(t *testing.T) {
	tmp := t.TempDir()
	root := filepath.Join(tmp, "root")
	files := map[string]string{
		"etc/selinux/config": "SELINUX=enforcing\nSELINUXTYPE=t\n",
		"etc/selinux/t/contexts/files/file_contexts": "/.*\tsystem_u:object_r:default_t:s0\n/usr/bin(/.*)?\tsystem_u:object_r:bin_t:s0\n" +
			"/etc(/.*)?\tsystem_u:object_r:etc_t:s0\n/var/lib/dpkg(/.*)?\tsystem_u:object_r:dpkg_var_lib_t:s0\n",
		"usr/bin/tool":                "#!/bin/sh\necho tool\n",
		"usr/lib/modules/6.1/vmlinuz": "kernel",
		"var/lib/dpkg/status":         "Package: tool\nStatus: install ok installed\nArchitecture: all\nVersion: 1\n\n",
		"var/lib/dpkg/info/tool.list": "/.\n/usr\n/usr/bin\n/usr/bin/tool\n",
	}
	for p, c := range files {
		full := filepath.Join(root, p)
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(t, os.WriteFile(full, []byte(c), 0o644))
	}
	addBootcRoot(t, root)
	store := filepath.Join(tmp, "store")
	out := "oci:" + filepath.Join(tmp, "out") + ":v1"
	r := runBin(t, tmp, "build", "--bootc", "--json", "--store", store, "--rootfs", root, "--output", out)
	require.Equal(t, 0, r.code, r)
	var sum struct {
		SELinux struct {
			Policy    string `json:"policy"`
			Labeled   int    `json:"labeled"`
			Rewritten int    `json:"rewritten_objects"`
		} `json:"selinux"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &sum), r.stdout)
	assert.Equal(t, "t", sum.SELinux.Policy)
	assert.Positive(t, sum.SELinux.Rewritten)

	// The rootfs was read in place: neither its files nor their relabelled forms are
	// in the store's directory.
	for _, pattern := range []string{"derived/*/*", "objects/*/*.file"} {
		found, err := filepath.Glob(filepath.Join(store, pattern))
		require.NoError(t, err)
		assert.Empty(t, found, "no %s in the store of an in-place build", pattern)
	}

	r = runBin(t, tmp, "verify", "--json", out)
	require.Equal(t, 0, r.code, r)
	assert.NotContains(t, r.stdout, `"check": "selinux"`, "labels agree with the image's policy")

	// Built without labels, the image ships a policy its files disagree with.
	unl := "oci:" + filepath.Join(tmp, "unlabelled") + ":v1"
	r = runBin(t, tmp, "build", "--bootc", "--no-selinux", "--store", store, "--rootfs", root, "--output", unl)
	require.Equal(t, 0, r.code, r)
	r = runBin(t, tmp, "verify", unl)
	require.Equal(t, 0, r.code, r)
	assert.Contains(t, r.stdout+r.stderr, `entries are labelled otherwise than the image's SELinux policy "t" says`)
	// The first five entries are quoted: /, then the bootc root (/ostree, /dev, ...).
	assert.Contains(t, r.stdout+r.stderr, "/ostree: no label, the policy says system_u:object_r:default_t:s0")
	r = runBin(t, tmp, "ls", "-R", "-X", "--store", store, out, "/")
	require.Equal(t, 0, r.code, r)
	assert.Contains(t, r.stdout, "b'system_u:object_r:bin_t:s0')] } /usr/bin/tool")
	assert.Contains(t, r.stdout, "b'system_u:object_r:etc_t:s0')] } /usr/etc/selinux/config", "labelled as /etc before the move")
	r = runBin(t, tmp, "plan", "--store", store, "--rootfs", root, "--json")
	require.Equal(t, 0, r.code, r)
	assert.Contains(t, r.stdout, `"tool"`, "the planner read the relabelled dpkg database")
}
