package build

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/rechunker-dev/rechunker/exporter"
	"github.com/rechunker-dev/rechunker/ostree"
)

// inPlaceTree writes a small root filesystem with what a store must handle: files
// larger than a read buffer, an empty file, hard links, symlinks and user xattrs.
func inPlaceTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	big := []byte(strings.Repeat("a shared library's bytes ", 20000)) // ~500 KB
	files := map[string][]byte{
		"usr/lib/libbig.so.1":   big,
		"usr/bin/tool":          []byte("#!/bin/sh\necho tool\n"),
		"usr/share/empty":       nil,
		"usr/lib/os-release":    []byte("ID=test\nVERSION_ID=1\n"),
		"etc/hostname":          []byte("host\n"),
		"usr/share/doc/x/NOTES": []byte("notes"),
	}
	for p, data := range files {
		full := filepath.Join(dir, p)
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(t, os.WriteFile(full, data, 0o644))
	}
	require.NoError(t, os.Link(filepath.Join(dir, "usr/bin/tool"), filepath.Join(dir, "usr/bin/tool2")))
	require.NoError(t, os.Symlink("libbig.so.1", filepath.Join(dir, "usr/lib/libbig.so")))
	require.NoError(t, os.Symlink("usr/lib", filepath.Join(dir, "lib")))
	if err := unix.Lsetxattr(filepath.Join(dir, "usr/lib/libbig.so.1"), "user.component", []byte("libbig"), 0); err != nil {
		t.Logf("no user xattrs on this file system (%v): the tree has none", err)
	}
	return dir
}

// runRootfs builds dir into a fresh store and output.
func runRootfs(t *testing.T, dir string, o Options) (*Result, string, error) {
	t.Helper()
	store, err := ostree.OpenStore(t.TempDir())
	require.NoError(t, err)
	layout := filepath.Join(t.TempDir(), "out")
	o.Rootfs, o.Output, o.Store, o.NoSELinux = dir, "oci:"+layout+":latest", store, true
	o.Warn = func(string) {}
	res, err := Run(context.Background(), o)
	return res, layout, err
}

// TestRootfsInPlaceMatchesCopy: reading a rootfs in place is a disk budget, not a
// different image: the copying build gives the same manifest.
func TestRootfsInPlaceMatchesCopy(t *testing.T) {
	dir := inPlaceTree(t)
	for _, version := range []int{1, 2} {
		inPlace, _, err := runRootfs(t, dir, Options{FormatVersion: version})
		require.NoError(t, err)
		copied, _, err := runRootfs(t, dir, Options{FormatVersion: version, CopyRootfs: true})
		require.NoError(t, err)
		assert.Equal(t, copied.ManifestDigest, inPlace.ManifestDigest, "format v%d", version)
	}
}

// changeAtStart edits a source file when the export starts, after the import hashed it.
type changeAtStart struct {
	change func() error
	err    error
}

func (c *changeAtStart) Start(int, int64)               { c.err = c.change() }
func (c *changeAtStart) Bytes(int64)                    {}
func (c *changeAtStart) LayerDone(exporter.LayerResult) {}
func (c *changeAtStart) Phase(string)                   {}

// TestRootfsChangedBeforeExport: a file changed between import and export fails the
// build with an error naming it, and leaves no image at the output.
func TestRootfsChangedBeforeExport(t *testing.T) {
	tests := []struct {
		name, file string
		change     func(path string) error
		want       string
	}{
		{"appended", "usr/lib/libbig.so.1", func(p string) error {
			f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			_, err = f.WriteString("patched")
			return errors.Join(err, f.Close())
		}, "changed after it was imported"},
		{"removed", "usr/bin/tool", os.Remove, "no such file"},
		{"rewritten in place", "usr/lib/os-release", func(p string) error {
			return os.WriteFile(p, []byte("ID=evil\nVERSION_ID=2\n"), 0o644)
		}, "changed after it was imported"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := inPlaceTree(t)
			path := filepath.Join(dir, tc.file)
			hook := &changeAtStart{change: func() error { return tc.change(path) }}
			_, layout, err := runRootfs(t, dir, Options{Progress: hook})
			require.NoError(t, hook.err)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), path)
			t.Log(err)
			_, statErr := os.Stat(filepath.Join(layout, "index.json"))
			assert.ErrorIs(t, statErr, os.ErrNotExist, "no image at the output")
		})
	}
}

// TestTransientStore: a transient build writes the same image and leaves none of the
// input's content objects in the store.
func TestTransientStore(t *testing.T) {
	dir := inPlaceTree(t)
	want, _, err := runRootfs(t, dir, Options{})
	require.NoError(t, err)
	// An image input is what a transient store is for: copy the tree into the store
	// like an image's layers would be.
	store, err := ostree.OpenStore(t.TempDir())
	require.NoError(t, err)
	layout := filepath.Join(t.TempDir(), "out")
	res, err := Run(context.Background(), Options{Rootfs: dir, CopyRootfs: true, TransientStore: true,
		Output: "oci:" + layout + ":latest", Store: store, NoSELinux: true, Warn: func(string) {}})
	require.NoError(t, err)
	assert.Equal(t, want.ManifestDigest, res.ManifestDigest)
	objects, err := filepath.Glob(filepath.Join(store.Root(), "objects", "*", "*.file*"))
	require.NoError(t, err)
	assert.Empty(t, objects, "no content object outlives a transient build")
}

// uncompressedImage builds dir into an oci: layout with uncompressed layers (the kind
// of image `podman save --format oci-dir` or `skopeo copy --dest-decompress` writes),
// whose blobs a build reads in place, and returns its reference.
func uncompressedImage(t *testing.T, dir string) string {
	t.Helper()
	_, layout, err := runRootfs(t, dir, Options{Plain: true, Compression: "none"})
	require.NoError(t, err)
	return "oci:" + layout + ":latest"
}

// runImage builds the image ref into a fresh store and output.
func runImage(t *testing.T, ref string, o Options) (*Result, string, error) {
	t.Helper()
	store, err := ostree.OpenStore(t.TempDir())
	require.NoError(t, err)
	layout := filepath.Join(t.TempDir(), "out")
	o.From, o.Output, o.Store, o.NoSELinux = ref, "oci:"+layout+":latest", store, true
	o.Warn = func(string) {}
	res, err := Run(context.Background(), o)
	return res, layout, err
}

// TestImageBlobsInPlaceMatchesCopy: reading an oci: layout's uncompressed blobs in
// place gives the image a copying build gives, and keeps none of the files in the store.
func TestImageBlobsInPlaceMatchesCopy(t *testing.T) {
	ref := uncompressedImage(t, inPlaceTree(t))
	for _, version := range []int{1, 2} {
		inPlace, _, err := runImage(t, ref, Options{FormatVersion: version})
		require.NoError(t, err)
		copied, _, err := runImage(t, ref, Options{FormatVersion: version, CopyRootfs: true})
		require.NoError(t, err)
		assert.Equal(t, copied.ManifestDigest, inPlace.ManifestDigest, "format v%d", version)
	}
}

// TestImageBlobChangedBeforeExport: a layer blob edited after the import (its files are
// read from it in place) fails the build with an error naming it, and no output.
func TestImageBlobChangedBeforeExport(t *testing.T) {
	ref := uncompressedImage(t, inPlaceTree(t))
	layout := strings.TrimSuffix(strings.TrimPrefix(ref, "oci:"), ":latest")
	blobs, err := filepath.Glob(filepath.Join(layout, "blobs", "sha256", "*"))
	require.NoError(t, err)
	var largest string
	var size int64
	for _, b := range blobs {
		if fi, err := os.Stat(b); err == nil && fi.Size() > size {
			largest, size = b, fi.Size()
		}
	}
	tests := []struct {
		name   string
		change func(p string) error
		want   string
	}{
		{"truncated", func(p string) error { return os.Truncate(p, size/2) }, "changed after it was imported (size"},
		{"overwritten, mtime kept", func(p string) error {
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			_, err = f.WriteAt(make([]byte, size-4096), 2048)
			if err = errors.Join(err, f.Close()); err != nil {
				return err
			}
			return os.Chtimes(p, fi.ModTime(), fi.ModTime())
		}, "no longer hashes to"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Each case edits its own copy of the layout.
			dst := filepath.Join(t.TempDir(), "in")
			require.NoError(t, os.CopyFS(dst, os.DirFS(layout)))
			blob := filepath.Join(dst, strings.TrimPrefix(largest, layout))
			hook := &changeAtStart{change: func() error { return tc.change(blob) }}
			_, out, err := runImage(t, "oci:"+dst+":latest", Options{Progress: hook})
			require.NoError(t, hook.err)
			require.Error(t, err)
			t.Log(err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), filepath.Base(blob), "the error names the blob")
			_, statErr := os.Stat(filepath.Join(out, "index.json"))
			assert.ErrorIs(t, statErr, os.ErrNotExist, "no image at the output")
		})
	}
}
