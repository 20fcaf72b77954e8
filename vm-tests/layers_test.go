package vmtests

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestUnescapeRef(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		// The example in ostree-ext's refescape.rs documentation.
		{in: "registry_3A_quay_2E_io/coreos/fedora_3A_latest", want: "registry:quay.io/coreos/fedora:latest"},
		{in: "sha256_3A_0b5d930ffc92d444b0a7b39beed322945a3038603fbe2a56415a6d02d598df1f", want: "sha256:0b5d930ffc92d444b0a7b39beed322945a3038603fbe2a56415a6d02d598df1f"},
		{in: "a__b", want: "a_b"},
		{in: "x_2F_y", want: "x/y"},
		{in: "bad_3A", wantErr: true},
		{in: "bad_ZZ_", wantErr: true},
		{in: "bad.dot", wantErr: true},
	}
	for _, tc := range tests {
		got, err := UnescapeRef(tc.in)
		if tc.wantErr {
			assert.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got)
	}
}

func TestParseBlobRefs(t *testing.T) {
	// `ostree refs` lists every ref; only layer blob refs count.
	out := []byte(`ostree/container/image/docker_3A__2F__2F_quay_2E_io/fedora/fedora-bootc_3A_42
ostree/container/blob/sha256_3A_cb9b8a4ac4a8df62df79e6f0348a14b3ec239816d42985631c88e76d4e3ff815
ostree/container/blob/sha256_3A_0b5d930ffc92d444b0a7b39beed322945a3038603fbe2a56415a6d02d598df1f
ostree/1/1/0
`)
	got, err := ParseBlobRefs(out)
	require.NoError(t, err)
	assert.Equal(t, []string{
		"sha256:0b5d930ffc92d444b0a7b39beed322945a3038603fbe2a56415a6d02d598df1f",
		"sha256:cb9b8a4ac4a8df62df79e6f0348a14b3ec239816d42985631c88e76d4e3ff815",
	}, got)

	_, err = ParseBlobRefs([]byte("ostree/container/blob/sha256_3A\n"))
	assert.Error(t, err)
}

func TestNewLayersRealManifests(t *testing.T) {
	// Two consecutive real chunked Fedora CoreOS manifests; bootc's own test
	// of its manifest diff expects 4 added and 4 removed layers of 51.
	m1, err := ParseManifest(mustRead(t, "../../shared/fixtures/bootc/manifest1.json"))
	require.NoError(t, err)
	m2, err := ParseManifest(mustRead(t, "../../shared/fixtures/bootc/manifest2.json"))
	require.NoError(t, err)
	// Digests computed with sha256sum over the fixture files.
	assert.Equal(t, "sha256:57f2ac36928f482d6b16e75ecedabbca6b12505a0ed4c123c4ba1964b328860f", m1.Digest)
	assert.Equal(t, "sha256:b2895e76a0d6ee89bfa868c1e69beb71f9fd9336f8f0cbae92c47e9624300697", m2.Digest)
	assert.Len(t, m1.Layers, 51)

	added := NewLayers(m1, m2)
	assert.Len(t, added, 4)
	assert.Contains(t, Digests(added), "sha256:0b5d930ffc92d444b0a7b39beed322945a3038603fbe2a56415a6d02d598df1f")
	assert.Contains(t, Digests(added), "sha256:cb9b8a4ac4a8df62df79e6f0348a14b3ec239816d42985631c88e76d4e3ff815")
	removed := NewLayers(m2, m1)
	assert.Len(t, removed, 4)
	assert.Contains(t, Digests(removed), "sha256:0ff8b1fdd38e5cfb6390024de23ba4b947cd872055f62e70f2c21dad5c928925")
	assert.Empty(t, NewLayers(m1, m1))
	for _, l := range added {
		assert.Positive(t, l.Size, l.Digest)
	}
}

func TestParseManifestRejects(t *testing.T) {
	tests := map[string]string{
		"not JSON":  `nope`,
		"index":     `{"schemaVersion":2,"manifests":[{"digest":"sha256:00"}]}`,
		"no layers": `{"schemaVersion":2,"layers":[]}`,
		"schema 1":  `{"schemaVersion":1,"fsLayers":[{"blobSum":"sha256:00"}]}`,
	}
	for name, in := range tests {
		_, err := ParseManifest([]byte(in))
		assert.Error(t, err, name)
	}
}

func TestParseLayerDiff(t *testing.T) {
	a := "sha256:" + "aa" + "0b5d930ffc92d444b0a7b39beed322945a3038603fbe2a56415a6d02d598"
	b := "sha256:" + "bb" + "0b5d930ffc92d444b0a7b39beed322945a3038603fbe2a56415a6d02d598"
	// Shaped like bootc.DiffReport, which `rechunker diff --json` prints.
	report := `{"layers_total":3,"layers_fetched":2,"bytes_total":15,"bytes_fetched":15,
		"fetched":[{"index":0,"digest":"` + b + `","size":12,"components":[]},{"index":2,"digest":"` + a + `","size":3,"components":["containers"]}],
		"reused":[{"index":1,"digest":"sha256:cc","size":9,"components":["bash"],"reused_by":"digest"}],
		"removed":[{"index":0,"digest":"sha256:dd","size":11,"components":[]}],"same_image":false}`
	tests := []struct {
		name    string
		in      string
		fetched []string
		reused  []string
		wantErr string
	}{
		{name: "report", in: report, fetched: []string{a, b}, reused: []string{"sha256:cc"}},
		{name: "nothing fetched", in: `{"layers_fetched":0,"fetched":[],"reused":[],"removed":[],"same_image":true}`, fetched: []string{}, reused: []string{}},
		{name: "no fetched key", in: `{"layers":[]}`, wantErr: `no "fetched"`},
		{name: "count mismatch", in: `{"layers_fetched":2,"fetched":[{"digest":"` + a + `"}]}`, wantErr: "layers_fetched 2 but 1"},
		{name: "bad digest", in: `{"fetched":[{"digest":"abc"}]}`, wantErr: "is not a sha256 digest"},
		{name: "not JSON", in: `diff: not implemented yet`, wantErr: "parse rechunker diff JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := ParseLayerDiff([]byte(tc.in))
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.fetched, Digests(d.Fetched))
			assert.Equal(t, tc.reused, Digests(d.Reused))
		})
	}
}

func TestSubtract(t *testing.T) {
	assert.Equal(t, []string{"c", "d"}, Subtract([]string{"d", "a", "c"}, []string{"a", "b"}))
	assert.Nil(t, Subtract([]string{"a"}, []string{"a"}))
}
