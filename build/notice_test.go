package build

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/ostree"
)

// TestNoticeBaseline: a build into an output that already holds a chunked image says
// so in rpm-ostree's words (scripts grep them); the first build into it does not, nor
// does a build given its previous build explicitly, nor a quiet one.
func TestNoticeBaseline(t *testing.T) {
	rootfs := t.TempDir()
	for p, content := range map[string]string{
		"usr/bin/tool":    "tool",
		"usr/lib/libx.so": "library",
		"etc/os-release":  "ID=test\n",
	} {
		full := filepath.Join(rootfs, p)
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(t, os.WriteFile(full, []byte(content), 0o644))
	}
	store, err := ostree.OpenStore(t.TempDir())
	require.NoError(t, err)
	output := "oci:" + filepath.Join(t.TempDir(), "out") + ":latest"
	build := func(o Options) (notices, warns []string) {
		t.Helper()
		o.Rootfs, o.Output, o.Store, o.NoSELinux = rootfs, output, store, true
		o.Notice = func(m string) { notices = append(notices, m) }
		o.Warn = func(m string) { warns = append(warns, m) }
		_, err := Run(context.Background(), o)
		require.NoError(t, err)
		return notices, warns
	}

	notices, warns := build(Options{})
	assert.Empty(t, notices, "first build")
	assert.False(t, slices.Contains(warns, NoticeBaseline), "first build: %q", warns)

	notices, warns = build(Options{})
	assert.Equal(t, []string{"Found existing chunked image at target, will use as baseline"}, notices, "second build")
	assert.False(t, slices.Contains(warns, NoticeBaseline), "a notice is no warning: %q", warns)

	notices, _ = build(Options{Previous: []string{output}})
	assert.Empty(t, notices, "previous build given: no probe")

	notices, warns = build(Options{Quiet: true})
	assert.Empty(t, notices, "quiet")
	assert.False(t, slices.Contains(warns, NoticeBaseline), "quiet: %q", warns)

	// Without a Notice callback the line goes to Warn.
	var got []string
	o := Options{Rootfs: rootfs, Output: output, Store: store, NoSELinux: true, Warn: func(m string) { got = append(got, m) }}
	_, err = Run(context.Background(), o)
	require.NoError(t, err)
	assert.Contains(t, got, NoticeBaseline)
}
