package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/bootc/bootctest"
)

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestVerifyDiffInspectCLI(t *testing.T) {
	old := bootctest.Base().Build(t)
	img := bootctest.Base()
	img.Files[5].Data = "ID=test\nVERSION=2\n" // /usr/etc/os-release
	new := img.Build(t)

	out, err := runCLI(t, "verify", new.Ref)
	require.NoError(t, err, out)
	assert.Contains(t, out, "PASS")
	t.Log("\n" + out)
	assert.Contains(t, out, "(ostree commit)")

	out, err = runCLI(t, "verify", "--json", new.Ref)
	require.NoError(t, err)
	var rep struct {
		OK     bool   `json:"ok"`
		Commit string `json:"commit"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	assert.True(t, rep.OK)
	assert.Equal(t, new.CommitSum.String(), rep.Commit)

	// A corrupted chunk blob: exit status 1 and the reason on stdout.
	p := filepath.Join(new.Dir, "blobs", "sha256", new.Manifest.Layers[1].Digest.Encoded())
	data, err := os.ReadFile(p)
	require.NoError(t, err)
	data[len(data)-20] ^= 0x55
	require.NoError(t, os.WriteFile(p, data, 0o644))
	out, err = runCLI(t, "verify", new.Ref)
	var ee exitError
	require.True(t, errors.As(err, &ee), "err %v", err)
	assert.Equal(t, 1, ee.code)
	assert.Contains(t, out, "FAIL: blob: layer 1")

	out, err = runCLI(t, "diff", "--json", old.Ref, new.Ref)
	require.NoError(t, err)
	var d struct {
		LayersTotal   int   `json:"layers_total"`
		LayersFetched int   `json:"layers_fetched"`
		BytesTotal    int64 `json:"bytes_total"`
		BytesFetched  int64 `json:"bytes_fetched"`
		Fetched       []struct {
			Digest     string   `json:"digest"`
			Size       int64    `json:"size"`
			Components []string `json:"components"`
		} `json:"fetched"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &d))
	assert.Equal(t, 4, d.LayersTotal)
	assert.Equal(t, 2, d.LayersFetched)
	assert.Equal(t, []string{"rpmostree-unpackaged-content"}, d.Fetched[1].Components)
	assert.Equal(t, d.Fetched[0].Size+d.Fetched[1].Size, d.BytesFetched)

	out, err = runCLI(t, "diff", old.Ref, new.Ref)
	require.NoError(t, err)
	assert.Contains(t, out, "Downloads 2 of 4 layers")
	t.Log("\n" + out)
	assert.Contains(t, out, "rpmostree-unpackaged-content")

	out, err = runCLI(t, "inspect", old.Ref)
	require.NoError(t, err)
	assert.Contains(t, out, "ostree.final-diffid")
	t.Log("\n" + out)
	assert.Contains(t, out, "kernel")
}
