package main

import (
	"archive/tar"
	"compress/gzip"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/ostree/sign"
)

// commitObjects returns the .commit and .commitmeta objects of an OCI layout's
// commit layer (layer 0 of its only image).
func commitObjects(t *testing.T, dir string) (commit, meta []byte) {
	blob := func(d string) string { return filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(d, "sha256:")) }
	var idx imgspecv1.Index
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &idx))
	var m imgspecv1.Manifest
	b, err = os.ReadFile(blob(idx.Manifests[len(idx.Manifests)-1].Digest.String()))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &m))
	f, err := os.Open(blob(m.Layers[0].Digest.String()))
	require.NoError(t, err)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	require.NoError(t, err)
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return commit, meta
		}
		require.NoError(t, err)
		switch {
		case strings.HasSuffix(h.Name, ".commit"):
			commit, err = io.ReadAll(tr)
		case strings.HasSuffix(h.Name, ".commitmeta"):
			meta, err = io.ReadAll(tr)
		}
		require.NoError(t, err)
	}
}

func TestBuildSignCommit(t *testing.T) {
	rootfs := buildRootfs(t)
	store := t.TempDir()
	keys := t.TempDir()
	var pubs []ed25519.PublicKey
	var args []string
	for i := range 2 {
		pub, priv, err := ed25519.GenerateKey(nil)
		require.NoError(t, err)
		pubs = append(pubs, pub)
		p := filepath.Join(keys, "k"+string(rune('0'+i)))
		require.NoError(t, os.WriteFile(p, []byte(base64.StdEncoding.EncodeToString(priv)+"\n"), 0o600))
		args = append(args, "--sign-commit", "ed25519="+p)
	}
	dir := filepath.Join(t.TempDir(), "signed")
	out, err := runCLI(t, append([]string{"build", "--bootc", "--rootfs", rootfs, "--store", store, "--output", "oci:" + dir + ":v1"}, args...)...)
	require.NoError(t, err, out)
	commit, meta := commitObjects(t, dir)
	require.NotEmpty(t, commit)
	require.NotEmpty(t, meta, "the commit layer carries the detached metadata")
	sigs, err := sign.Ed25519Signatures(meta)
	require.NoError(t, err)
	require.Len(t, sigs, 2)
	for i, pub := range pubs {
		assert.True(t, ed25519.Verify(pub, commit, sigs[i]), "signature %d verifies over the commit object", i)
	}
	vout, err := runCLI(t, "verify", "oci:"+dir+":v1")
	require.NoError(t, err, vout)
	assert.Contains(t, vout, "Signed:    2 ed25519 signature(s)")

	// verify --sign-key: the second key's public half is accepted, another key is not.
	pubFile := filepath.Join(keys, "pub")
	require.NoError(t, os.WriteFile(pubFile, []byte("# ours\n"+base64.StdEncoding.EncodeToString(pubs[1])+"\n"), 0o644))
	vout, err = runCLI(t, "verify", "--sign-key", "ed25519="+pubFile, "oci:"+dir+":v1")
	require.NoError(t, err, vout)
	other, _, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	otherFile := filepath.Join(keys, "other")
	require.NoError(t, os.WriteFile(otherFile, []byte(base64.StdEncoding.EncodeToString(other)), 0o644))
	vout, err = runCLI(t, "verify", "--sign-key", "ed25519="+otherFile, "oci:"+dir+":v1")
	var ee exitError
	require.ErrorAs(t, err, &ee, vout)
	assert.Equal(t, 1, ee.code)
	assert.Contains(t, vout, "has no ed25519 signature by the given key(s) (2 signatures)")
	_, err = runCLI(t, "verify", "--sign-key", "gpg="+otherFile, "oci:"+dir+":v1")
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 2, ee.code)

	// The same commit built again without keys carries no signature.
	plain := filepath.Join(t.TempDir(), "plain")
	out, err = runCLI(t, "build", "--rootfs", rootfs, "--store", store, "--output", "oci:"+plain+":v1")
	require.NoError(t, err, out)
	commit2, meta2 := commitObjects(t, plain)
	assert.Equal(t, commit, commit2)
	assert.Empty(t, meta2)

	// A bad key file is an error naming it.
	bad := filepath.Join(keys, "bad")
	require.NoError(t, os.WriteFile(bad, []byte("not a key"), 0o600))
	_, err = runCLI(t, "build", "--rootfs", rootfs, "--store", store, "--output", "oci:"+filepath.Join(t.TempDir(), "x"), "--sign-commit", "ed25519="+bad)
	require.Error(t, err)
	assert.Contains(t, err.Error(), bad)
}
