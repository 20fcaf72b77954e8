package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ageStore sets every file of the store back by d, as if no build had used it since.
func ageStore(t *testing.T, store string, d time.Duration) {
	old := time.Now().Add(-d)
	require.NoError(t, filepath.Walk(store, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return err
		}
		return os.Chtimes(p, old, old)
	}))
}

func countFiles(t *testing.T, dir string) int {
	n := 0
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

func TestStorePrune(t *testing.T) {
	tmp := t.TempDir()
	store := filepath.Join(tmp, "store")
	src := writeOCI(t, filepath.Join(tmp, "src"), []hlayer{gzLayer(t, htar(t, append(baseEntries(), hfile("usr/share/big", strings.Repeat("x", 100000)))...))}, nil)
	build := func(out string) string {
		r := runBin(t, tmp, "build", "--bootc", "--json", "--store", store, "--from", src, "--output", "oci:"+filepath.Join(tmp, out)+":v1")
		require.Equal(t, 0, r.code, r)
		var s struct {
			ManifestDigest string `json:"manifest_digest"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &s))
		require.NotEmpty(t, s.ManifestDigest)
		return s.ManifestDigest
	}
	want := build("out1")
	objects := countFiles(t, filepath.Join(store, "objects"))
	require.Positive(t, objects)

	// Recently used: nothing goes.
	r := runBin(t, tmp, "store", "prune", "--store", store, "--json")
	require.Equal(t, 0, r.code, r)
	assert.Equal(t, objects, countFiles(t, filepath.Join(store, "objects")))

	// Everything unused for 60 days but the layer record, used yesterday: its content
	// objects stay, the rest goes (dry run first).
	ageStore(t, store, 60*24*time.Hour)
	records, err := filepath.Glob(filepath.Join(store, "layers", "*"))
	require.NoError(t, err)
	require.Len(t, records, 1)
	yesterday := time.Now().Add(-24 * time.Hour)
	require.NoError(t, os.Chtimes(records[0], yesterday, yesterday))
	r = runBin(t, tmp, "store", "prune", "--store", store, "--dry-run")
	require.Equal(t, 0, r.code, r)
	assert.Contains(t, r.stdout, "Would remove")
	assert.Equal(t, objects, countFiles(t, filepath.Join(store, "objects")), "dry run removes nothing")
	r = runBin(t, tmp, "store", "prune", "--store", store)
	require.Equal(t, 0, r.code, r)
	assert.Contains(t, r.stdout, "Removed")
	left := countFiles(t, filepath.Join(store, "objects"))
	assert.Less(t, left, objects, "unreferenced metadata objects were removed")
	assert.Positive(t, left, "the record's content objects stay")
	assert.Zero(t, countFiles(t, filepath.Join(store, "blobs")), "the unused blob cache is gone")
	assert.Equal(t, want, build("out2"), "a build after pruning gives the same image (from the kept record)")

	// All unused: the store empties, and the next build imports again.
	ageStore(t, store, 60*24*time.Hour)
	r = runBin(t, tmp, "store", "prune", "--store", store, "--older-than", "720h")
	require.Equal(t, 0, r.code, r)
	assert.Zero(t, countFiles(t, filepath.Join(store, "objects")))
	assert.Zero(t, countFiles(t, filepath.Join(store, "layers")))
	assert.Equal(t, want, build("out3"))

	r = runBin(t, tmp, "store", "prune", "--store", store, "--older-than", "-1h")
	assert.Equal(t, 2, r.code, r)
}
