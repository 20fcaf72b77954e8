package main

import (
	"encoding/json"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReadVersion(t *testing.T) {
	yes, no := true, false
	goVer, platform := runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH
	vcs := []debug.BuildSetting{
		{Key: "-tags", Value: "containers_image_openpgp"},
		{Key: "vcs", Value: "git"},
		{Key: "vcs.revision", Value: "0123abcd"},
		{Key: "vcs.time", Value: "2026-01-02T03:04:05Z"},
		{Key: "vcs.modified", Value: "true"},
	}
	tests := []struct {
		name     string
		info     *debug.BuildInfo
		ok       bool
		override string
		want     versionInfo
		wantLine string
	}{
		{
			name:     "no build info",
			want:     versionInfo{Version: unknown, Revision: unknown, Time: unknown, GoVersion: goVer, Platform: platform},
			wantLine: "rechunker unknown, revision unknown, committed unknown, " + goVer + " " + platform,
		},
		{
			// hack/ scripts: -buildvcs=false, built from a checkout.
			name:     "checkout without vcs stamping",
			info:     &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}},
			ok:       true,
			want:     versionInfo{Version: unknown, Revision: unknown, Time: unknown, GoVersion: "go1.26.0", Platform: platform},
			wantLine: "rechunker unknown, revision unknown, committed unknown, go1.26.0 " + platform,
		},
		{
			name: "vcs stamped, modified tree",
			info: &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v0.3.1-0.20260102030405-0123abcd+dirty"}, Settings: vcs},
			ok:   true,
			want: versionInfo{Version: "v0.3.1-0.20260102030405-0123abcd+dirty", Revision: "0123abcd",
				Time: "2026-01-02T03:04:05Z", Modified: &yes, GoVersion: "go1.26.0", Platform: platform},
			wantLine: "rechunker v0.3.1-0.20260102030405-0123abcd+dirty, revision 0123abcd (modified), committed 2026-01-02T03:04:05Z, go1.26.0 " + platform,
		},
		{
			name: "clean tree",
			info: &debug.BuildInfo{Main: debug.Module{Version: "v1.0.0"}, Settings: []debug.BuildSetting{
				{Key: "vcs.revision", Value: "ffff"}, {Key: "vcs.modified", Value: "false"},
			}},
			ok:       true,
			want:     versionInfo{Version: "v1.0.0", Revision: "ffff", Time: unknown, Modified: &no, GoVersion: goVer, Platform: platform},
			wantLine: "rechunker v1.0.0, revision ffff, committed unknown, " + goVer + " " + platform,
		},
		{
			name:     "link-time override wins",
			info:     &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}},
			ok:       true,
			override: "v2.0.0",
			want:     versionInfo{Version: "v2.0.0", Revision: unknown, Time: unknown, GoVersion: goVer, Platform: platform},
			wantLine: "rechunker v2.0.0, revision unknown, committed unknown, " + goVer + " " + platform,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := readVersion(tt.info, tt.ok, tt.override)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.wantLine, got.String())
		})
	}
}

func TestVersionCommand(t *testing.T) {
	line, err := runCLI(t, "version")
	require.NoError(t, err)
	assert.Equal(t, currentVersion().String()+"\n", line)

	tests := []struct {
		name string
		args []string
	}{
		{"--version", []string{"--version"}},
		{"-v", []string{"-v"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runCLI(t, tt.args...)
			require.NoError(t, err)
			assert.Equal(t, line, out, "%v prints what `rechunker version` prints", tt.args)
		})
	}

	out, err := runCLI(t, "version", "--json")
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &got), out)
	for _, key := range []string{"version", "revision", "time", "modified", "go_version", "platform"} {
		assert.Contains(t, got, key)
	}
	assert.Equal(t, runtime.Version(), got["go_version"])
	assert.True(t, strings.HasPrefix(line, "rechunker "+got["version"].(string)+", "), line)
}
