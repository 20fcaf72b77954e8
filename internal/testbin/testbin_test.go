package testbin

import (
	"debug/buildinfo"
	"path/filepath"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestInvocation(t *testing.T) {
	setting := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	tests := []struct {
		name     string
		settings []debug.BuildSetting
		wantArgs []string
		wantEnv  []string
	}{
		{
			name:     "tags and cgo off",
			settings: setting("-buildmode", "exe", "-tags", "containers_image_openpgp", "CGO_ENABLED", "0", "GOOS", "linux"),
			wantArgs: []string{"build", "-buildvcs=false", "-tags=containers_image_openpgp", "-o", "/o/rechunker", Package},
			wantEnv:  []string{"CGO_ENABLED=0"},
		},
		{
			name:     "several tags, cgo on",
			settings: setting("-tags", "containers_image_openpgp,integration", "CGO_ENABLED", "1"),
			wantArgs: []string{"build", "-buildvcs=false", "-tags=containers_image_openpgp,integration", "-o", "/o/rechunker", Package},
			wantEnv:  []string{"CGO_ENABLED=1"},
		},
		{
			// No tags recorded: an explicit empty -tags keeps GOFLAGS' tags out.
			name:     "no tags",
			settings: setting("CGO_ENABLED", "1"),
			wantArgs: []string{"build", "-buildvcs=false", "-tags=", "-o", "/o/rechunker", Package},
			wantEnv:  []string{"CGO_ENABLED=1"},
		},
		{
			// No cgo setting recorded: the environment decides, as it did for the test.
			name:     "no settings",
			wantArgs: []string{"build", "-buildvcs=false", "-tags=", "-o", "/o/rechunker", Package},
		},
		{
			name:     "vcs and ldflags settings are not copied",
			settings: setting("-ldflags", "-X main.version=1", "vcs.revision", "abc", "-tags", "a"),
			wantArgs: []string{"build", "-buildvcs=false", "-tags=a", "-o", "/o/rechunker", Package},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := invocation(&debug.BuildInfo{Settings: tt.settings}, "/o/rechunker")
			assert.Equal(t, tt.wantArgs, inv.args)
			assert.Equal(t, tt.wantEnv, inv.env)
		})
	}
}

// TestBuildKeepsSettings builds the real command and reads back from it the settings
// that must match this test binary's.
func TestBuildKeepsSettings(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command (seconds of linking)")
	}
	self, ok := debug.ReadBuildInfo()
	require.True(t, ok)
	out := filepath.Join(t.TempDir(), "rechunker")
	require.NoError(t, Build(t.Context(), out))
	built, err := buildinfo.ReadFile(out)
	require.NoError(t, err, "read build info of %s", out)
	for _, key := range []string{"-tags", "CGO_ENABLED"} {
		assert.Equal(t, settingOf(self, key), settingOf(built, key), "build setting %s", key)
	}
	assert.Equal(t, Package, built.Path)
}

func settingOf(info *debug.BuildInfo, key string) string {
	for _, s := range info.Settings {
		if s.Key == key {
			return s.Value
		}
	}
	return ""
}
