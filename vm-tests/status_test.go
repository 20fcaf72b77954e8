package vmtests

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

func TestParseHostStatusRecorded(t *testing.T) {
	tests := []struct {
		file           string
		apiVersion     string
		wantBootedErr  error
		bootedDigest   string
		bootedVersion  string
		bootedImage    string
		stagedDigest   string // "" when nothing is staged
		rollbackDigest string // "" when there is no rollback
		cachedUpdate   string // booted.cachedUpdate digest, "" when absent
	}{
		{
			file:          "bootc-status-v1-null.json",
			apiVersion:    "org.containers.bootc/v1",
			wantBootedErr: ErrNotBooted,
		},
		{
			file:           "bootc-status-v1alpha1-booted-rollback.json",
			apiVersion:     "org.containers.bootc/v1alpha1",
			bootedDigest:   "sha256:806d77394f96e47cf99b1233561ce970c94521244a2d8f2affa12c3261961223",
			bootedVersion:  "stream9.20231213.0",
			bootedImage:    "192.168.124.1:5000/bootc-insights:latest",
			rollbackDigest: "sha256:92e476435ced1c148350c660b09c744717defbd300a15d33deda5b50ad6b21a0",
		},
		{
			file:          "bootc-status-v1alpha1-staged-cachedupdate.json",
			apiVersion:    "org.containers.bootc/v1alpha1",
			bootedDigest:  "sha256:5398062d64b501e18b986b43a4f4108cb879fd29d436d793c0bf6947a83ed09e",
			bootedVersion: "9.20240325.0",
			bootedImage:   "192.168.122.1:5000/bootc-insights:latest",
			stagedDigest:  "sha256:654275229d342b2836dcb8e5b851bbb1461b664a9fb9b8c934011e1abf15d778",
			cachedUpdate:  "sha256:654275229d342b2836dcb8e5b851bbb1461b664a9fb9b8c934011e1abf15d778",
		},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			hs, err := ParseHostStatus(readTestdata(t, tc.file))
			require.NoError(t, err)
			assert.Equal(t, tc.apiVersion, hs.APIVersion)

			booted, err := hs.Booted()
			if tc.wantBootedErr != nil {
				require.ErrorIs(t, err, tc.wantBootedErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.bootedDigest, booted.ImageDigest, "booted digest")
			assert.Equal(t, tc.bootedVersion, booted.VersionString(), "booted version")
			assert.Equal(t, tc.bootedImage, booted.Image.Image, "booted image")
			assert.Equal(t, "registry", booted.Image.Transport)

			if tc.stagedDigest == "" {
				assert.Nil(t, hs.Status.Staged, "staged")
			} else {
				require.NotNil(t, hs.Status.Staged)
				assert.Equal(t, tc.stagedDigest, hs.Status.Staged.Image.ImageDigest, "staged digest")
			}
			if tc.rollbackDigest == "" {
				assert.Nil(t, hs.Status.Rollback, "rollback")
			} else {
				require.NotNil(t, hs.Status.Rollback)
				assert.Equal(t, tc.rollbackDigest, hs.Status.Rollback.Image.ImageDigest, "rollback digest")
			}
			if tc.cachedUpdate == "" {
				assert.Nil(t, hs.Status.Booted.CachedUpdate)
			} else {
				require.NotNil(t, hs.Status.Booted.CachedUpdate)
				assert.Equal(t, tc.cachedUpdate, hs.Status.Booted.CachedUpdate.ImageDigest)
			}
			require.NotNil(t, hs.Status.Booted.Ostree)
			assert.Len(t, hs.Status.Booted.Ostree.Checksum, 64, "ostree commit checksum")
		})
	}
}

func TestParseHostStatusRejects(t *testing.T) {
	tests := []struct {
		name, input, wantErr string
	}{
		{"empty", ``, "EOF"},
		{"not JSON", `error: Status: not booted`, "invalid character"},
		{"other kind", `{"apiVersion":"org.containers.bootc/v1","kind":"Pod"}`, `kind "Pod"`},
		{"other API", `{"apiVersion":"v1","kind":"BootcHost"}`, `apiVersion "v1"`},
		{"rpm-ostree status", string(mustRead(t, "../../shared/fixtures/rpm-ostree/workstation-status.json")), `kind ""`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseHostStatus([]byte(tc.input))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantErr)
		})
	}
}

// mustRead reads a file outside testdata (the team's shared fixtures); a
// missing shared/ checkout skips the calling test instead of failing it.
func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		t.Skipf("shared fixture %s not present", path)
	}
	require.NoError(t, err)
	return b
}

func TestBootedWithoutDigest(t *testing.T) {
	hs, err := ParseHostStatus([]byte(`{"apiVersion":"org.containers.bootc/v1","kind":"BootcHost",
		"status":{"booted":{"image":{"image":{"image":"x","transport":"registry"},"imageDigest":""}}}}`))
	require.NoError(t, err)
	_, err = hs.Booted()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no imageDigest")
}

func TestParseSystemState(t *testing.T) {
	tests := []struct {
		out  string
		want SystemState
		ok   bool
	}{
		{"running\n", "running", true},
		{"degraded\n", "degraded", true},
		{"starting\n", "starting", false},
		{"maintenance\n", "maintenance", false},
		{"", "", false},
		// A login banner or warning before the state word does not matter.
		{"Warning: something\ndegraded\n", "degraded", true},
	}
	for _, tc := range tests {
		got, ok := ParseSystemState([]byte(tc.out))
		assert.Equal(t, tc.want, got, "%q", tc.out)
		assert.Equal(t, tc.ok, ok, "%q", tc.out)
	}
}
