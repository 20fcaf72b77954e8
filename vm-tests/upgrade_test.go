package vmtests

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseUpgradeOutputRecorded(t *testing.T) {
	tests := []struct {
		file string
		want UpgradeOutput
	}{
		{
			file: "bootc-upgrade-tty.txt",
			want: UpgradeOutput{
				HaveLayerCounts: true, LayersPresent: 2, LayersNeeded: 71, NeededSize: "1.5 GB",
				Fetched:      "1.39 GiB in 3 minutes (6.93 MiB/",
				QueuedImage:  "quay.io/kubealex/rhel-image-mode-demo:app",
				QueuedDigest: "sha256:4cf5180c3586eaf352661e05399ff23a9a2e021a98acefaabd83b0e991dd21b3",
				Version:      "10.20250116.0",
				HaveDiff:     true, DiffTotal: 73, DiffRemoved: 78, DiffAdded: 71, DiffAddedSize: "1.5 GB",
			},
		},
		{
			file: "bootc-switch-registry.txt",
			want: UpgradeOutput{
				HaveLayerCounts: true, LayersPresent: 0, LayersNeeded: 52, NeededSize: "817.9 MB",
				Fetched:      "780.03 MiB in 12 seconds (67.21 MiB/s)",
				QueuedImage:  "192.168.122.1:5000/bootc-43-upgrade",
				QueuedDigest: "sha256:b3b0d49d8a6b084aba298c172c7f4c94458ab167c73f0f874dbf47e54002674b",
				Version:      "42.20250623.3.1",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			got, err := ParseUpgradeOutput(string(readTestdata(t, tc.file)))
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestParseUpgradeOutputTerminalNoise(t *testing.T) {
	// The recorded switch output as a terminal receives it: progress frames
	// redrawn with carriage returns and colour escapes, padding spaces.
	text := "layers already present: 64; layers needed: 2 (1.2 MB)\r\x1b[2K" +
		"Fetching layers \x1b[32m██████████\x1b[0m 1/2\r\x1b[2KFetching layers ████ 2/2 \n" +
		"Fetched layers: 1.13 MiB in 1 second (1.13 MiB/s)          \n" +
		"\x1b[?25l  Deploying: done (3 seconds)\x1b[?25h\n" +
		"Queued for next boot: ostree-unverified-image:containers-storage:localhost/rechunker-vmtest:latest\n" +
		"  Version: v2\n" +
		"  Digest: sha256:" + strings.Repeat("ab", 32) + "\n"
	got, err := ParseUpgradeOutput(text)
	require.NoError(t, err)
	assert.True(t, got.HaveLayerCounts)
	assert.Equal(t, 64, got.LayersPresent)
	assert.Equal(t, 2, got.LayersNeeded)
	assert.Equal(t, "1.2 MB", got.NeededSize)
	assert.Equal(t, "1.13 MiB in 1 second (1.13 MiB/s)", got.Fetched)
	assert.Equal(t, "ostree-unverified-image:containers-storage:localhost/rechunker-vmtest:latest", got.QueuedImage)
	assert.Equal(t, "v2", got.Version)
	assert.Equal(t, "sha256:"+strings.Repeat("ab", 32), got.QueuedDigest)
}

func TestParseUpgradeOutputStates(t *testing.T) {
	tests := []struct {
		name      string
		text      string
		noUpdate  bool
		unchanged bool
		wantErr   bool
	}{
		// Message strings as bootc's crates/lib/src/cli.rs and deploy.rs print them.
		{name: "no update", text: "No update available.\n", noUpdate: true},
		{name: "no changes", text: "No changes in ostree-unverified-registry:quay.io/x/y:latest => sha256:00\n", noUpdate: true},
		{name: "staged unchanged", text: "Staged update present, not changed\n", unchanged: true},
		{name: "empty", text: "", wantErr: true},
		{name: "error text", text: "error: Upgrading: Creating importer: failed to invoke method OpenImage\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseUpgradeOutput(tc.text)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.noUpdate, got.NoUpdate)
			assert.Equal(t, tc.unchanged, got.Unchanged)
			assert.False(t, got.HaveLayerCounts)
		})
	}
}

// progressLine renders one ProgressBytes event of the "pulling" task with the
// members bootc's progress-v0 schema requires. No public recording of real
// --progress-fd output exists (see testdata/README.md), so these lines are
// built from bootc's schema and its deploy.rs: a finished layer is a subtask
// with bytes == bytesTotal and id = the first 21 hex digits of its digest.
func progressLine(cached, steps, total uint64, subtasks ...string) string {
	return fmt.Sprintf(`{"type":"ProgressBytes","task":"pulling","description":"Pulling Image: sha256:0f","id":"sha256:0f","bytesCached":0,"bytes":0,"bytesTotal":0,"stepsCached":%d,"steps":%d,"stepsTotal":%d,"subtasks":[%s]}`,
		cached, steps, total, strings.Join(subtasks, ","))
}

func subtask(kind, digest string, bytes, total uint64) string {
	id := ShortID(digest)
	return fmt.Sprintf(`{"subtask":%q,"description":"%s: %s","id":%q,"bytesCached":0,"bytes":%d,"bytesTotal":%d}`, kind, kind, id, id, bytes, total)
}

func TestParseProgress(t *testing.T) {
	d1 := "sha256:" + strings.Repeat("1", 64)
	d2 := "sha256:" + strings.Repeat("2", 64)
	lines := []string{
		`{"type":"Start","version":"0.1.0"}`,
		progressLine(63, 0, 2, subtask("ostree chunk", d1, 100, 4096)),
		progressLine(63, 1, 2, subtask("ostree chunk", d1, 4096, 4096)),
		progressLine(63, 1, 2, subtask("ostree chunk", d1, 4096, 4096), subtask("ostree chunk", d2, 10, 900)),
		progressLine(63, 2, 2, subtask("ostree chunk", d1, 4096, 4096), subtask("ostree chunk", d2, 900, 900)),
		`{"type":"ProgressSteps","task":"importing","description":"Importing Image","id":"sha256:0f","stepsCached":0,"steps":1,"stepsTotal":1,"subtasks":[{"subtask":"importing","description":"Importing Image","id":"importing","completed":true}]}`,
		// Other tasks (e.g. bound images) are not layer downloads.
		`{"type":"ProgressBytes","task":"other","description":"x","id":"x","bytesCached":0,"bytes":1,"bytesTotal":1,"stepsCached":0,"steps":0,"stepsTotal":0,"subtasks":[{"subtask":"layer","id":"ffffffffffffffffffff0","bytes":1,"bytesTotal":1}]}`,
		"",
	}
	p, err := ParseProgress(strings.NewReader(strings.Join(lines, "\n")))
	require.NoError(t, err)
	assert.Equal(t, "0.1.0", p.Version)
	assert.Equal(t, uint64(63), p.StepsCached)
	assert.Equal(t, uint64(2), p.StepsTotal)
	assert.Equal(t, []ProgressLayer{
		{Kind: "ostree chunk", ShortID: ShortID(d1), Bytes: 4096},
		{Kind: "ostree chunk", ShortID: ShortID(d2), Bytes: 900},
	}, p.Fetched)
}

func TestParseProgressErrors(t *testing.T) {
	_, err := ParseProgress(strings.NewReader("{\"type\":\"Start\",\"version\":\"0.1.0\"}\nnot json\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "line 2")

	p, err := ParseProgress(strings.NewReader(""))
	require.NoError(t, err, "an upgrade with nothing to fetch writes no pulling events")
	assert.Empty(t, p.Fetched)
}

func TestShortID(t *testing.T) {
	assert.Equal(t, "4cf5180c3586eaf352661", ShortID("sha256:4cf5180c3586eaf352661e05399ff23a9a2e021a98acefaabd83b0e991dd21b3"))
	assert.Len(t, ShortID("sha256:4cf5180c3586eaf352661e05399ff23a9a2e021a98acefaabd83b0e991dd21b3"), 21)
	assert.Equal(t, "abc", ShortID("sha256:abc"))
}
