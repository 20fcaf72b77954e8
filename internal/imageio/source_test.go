package imageio

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"testing"
	"testing/iotest"

	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParsePlatform(t *testing.T) {
	tests := []struct {
		in      string
		want    Platform
		wantErr string
	}{
		{in: "linux/amd64", want: Platform{OS: "linux", Architecture: "amd64"}},
		{in: "linux/arm64/v8", want: Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}},
		{in: "", wantErr: "want OS/ARCH[/VARIANT]"},
		{in: "arm64", wantErr: "want OS/ARCH[/VARIANT]"},
		{in: "linux/arm/v7/extra", wantErr: "want OS/ARCH[/VARIANT]"},
		{in: "linux/", wantErr: "empty or padded part"},
		{in: "/amd64", wantErr: "empty or padded part"},
		{in: "linux/arm64/", wantErr: "empty or padded part"},
		{in: "linux//v8", wantErr: "empty or padded part"},
		{in: "linux/ amd64", wantErr: "empty or padded part"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParsePlatform(tc.in)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				assert.Contains(t, err.Error(), `"`+tc.in+`"`, "the error names the input")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.in, got.String())
		})
	}
}

func TestPlatformMatches(t *testing.T) {
	tests := []struct {
		a, b Platform
		want bool
	}{
		{Platform{"linux", "arm64", ""}, Platform{"linux", "arm64", "v8"}, true},
		{Platform{"linux", "arm", "v7"}, Platform{"linux", "arm", "v6"}, false},
		{Platform{"linux", "amd64", ""}, Platform{"linux", "arm64", ""}, false},
		{Platform{"linux", "amd64", ""}, Platform{"windows", "amd64", ""}, false},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, tc.a.Matches(tc.b), "%s vs %s", tc.a, tc.b)
		assert.Equal(t, tc.want, tc.b.Matches(tc.a), "%s vs %s", tc.b, tc.a)
	}
}

// otherArch is an architecture that is not the host's, for two-platform indexes.
func otherArch() string {
	if runtime.GOARCH == "arm64" {
		return "amd64"
	}
	return "arm64"
}

func linux(arch string) imgspecv1.Platform {
	return imgspecv1.Platform{OS: "linux", Architecture: arch}
}

func openTest(t *testing.T, ref string, o Options) (*Source, error) {
	t.Helper()
	o.CacheDir = t.TempDir()
	src, err := Open(context.Background(), ref, o)
	if err == nil {
		t.Cleanup(func() { src.Close() })
	}
	return src, err
}

func TestOpenIndex(t *testing.T) {
	host, other := runtime.GOARCH, otherArch()
	tests := []struct {
		name     string
		platform string   // --platform; empty: the host
		archive  bool     // open the layout as an oci-archive
		wantArch string   // the instance opened
		wantErr  []string // substrings of Open's error instead
	}{
		{name: "host by default", wantArch: host},
		{name: "host explicitly", platform: "linux/" + host, wantArch: host},
		{name: "other platform", platform: "linux/" + other, wantArch: other},
		{name: "oci-archive, other platform", platform: "linux/" + other, archive: true, wantArch: other},
		{name: "platform the index lacks", platform: "linux/s390x",
			wantErr: []string{"has no image for linux/s390x", "it offers linux/" + host + ", linux/" + other}},
		{name: "OS the index lacks", platform: "freebsd/" + host,
			wantErr: []string{"has no image for freebsd/" + host, "linux/" + host, "linux/" + other}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLayout(t)
			hostM := l.image(testImage{platform: linux(host), files: map[string]string{"host": "host only"}})
			otherM := l.image(testImage{platform: linux(other), files: map[string]string{"other": "other only"}})
			idx := l.index(hostM, otherM)
			ref := l.tag(idx)
			if tc.archive {
				ref = l.archive()
			}
			var o Options
			if tc.platform != "" {
				p, err := ParsePlatform(tc.platform)
				require.NoError(t, err)
				o = o.WithPlatform(p)
			}
			src, err := openTest(t, ref, o)
			if tc.wantErr != nil {
				require.Error(t, err)
				t.Log(err)
				for _, w := range tc.wantErr {
					assert.Contains(t, err.Error(), w)
				}
				assert.Contains(t, err.Error(), idx.Digest.String(), "the error names the index")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, Platform{OS: "linux", Architecture: tc.wantArch}, src.Platform)
			assert.Equal(t, idx.Digest, src.IndexDigest)
			want := hostM
			if tc.wantArch == other {
				want = otherM
			}
			assert.Equal(t, want.Digest, src.Digest)
			require.Len(t, src.Layers, 1)
		})
	}
}

func TestOpenPlatformChecks(t *testing.T) {
	host, other := runtime.GOARCH, otherArch()
	tests := []struct {
		name     string
		ref      func(l *testLayout) string
		platform Platform
		wantErr  []string
	}{
		{
			name: "single image of another platform, no request",
			ref: func(l *testLayout) string {
				return l.tag(l.image(testImage{platform: linux(other), files: map[string]string{"a": "a"}}))
			},
		},
		{
			name: "single image of another platform than requested",
			ref: func(l *testLayout) string {
				return l.tag(l.image(testImage{platform: linux(other), files: map[string]string{"a": "a"}}))
			},
			platform: Platform{OS: "linux", Architecture: host},
			wantErr:  []string{"image is linux/" + other + ", not the requested linux/" + host},
		},
		{
			name: "variant only compared when both name one",
			ref: func(l *testLayout) string {
				p := linux(host)
				p.Variant = "v1"
				return l.tag(l.image(testImage{platform: p, files: map[string]string{"a": "a"}}))
			},
			platform: Platform{OS: "linux", Architecture: host},
		},
		{
			name: "index entry lies about its instance",
			ref: func(l *testLayout) string {
				m := l.image(testImage{platform: linux(other), files: map[string]string{"a": "a"}})
				m.Platform = &imgspecv1.Platform{OS: "linux", Architecture: host}
				return l.tag(l.index(m))
			},
			wantErr: []string{"as linux/" + host + ", but its config says linux/" + other},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := openTest(t, tc.ref(newLayout(t)), Options{}.WithPlatform(tc.platform))
			if tc.wantErr == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			t.Log(err)
			for _, w := range tc.wantErr {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestOpenRejectsInconsistentImages(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(m *imgspecv1.Manifest, c *imgspecv1.Image)
		wantErr []string // nil: Open succeeds
	}{
		{name: "consistent"},
		{
			name:    "no diff_ids",
			edit:    func(_ *imgspecv1.Manifest, c *imgspecv1.Image) { c.RootFS.DiffIDs = nil },
			wantErr: []string{"lists 0 diff_ids for 1 manifest layers"},
		},
		{
			name: "more diff_ids than layers",
			edit: func(_ *imgspecv1.Manifest, c *imgspecv1.Image) {
				c.RootFS.DiffIDs = append(c.RootFS.DiffIDs, digest.FromString("extra"))
			},
			wantErr: []string{"lists 2 diff_ids for 1 manifest layers"},
		},
		{
			name: "zero layers",
			edit: func(m *imgspecv1.Manifest, c *imgspecv1.Image) {
				m.Layers, c.RootFS.DiffIDs = nil, nil
			},
			wantErr: []string{"no layers: nothing to boot"},
		},
		{
			name:    "layer size 0",
			edit:    func(m *imgspecv1.Manifest, _ *imgspecv1.Image) { m.Layers[0].Size = 0 },
			wantErr: []string{"layer 0 (sha256:", "says it has 0 bytes"},
		},
		{
			name:    "layer size -1",
			edit:    func(m *imgspecv1.Manifest, _ *imgspecv1.Image) { m.Layers[0].Size = -1 },
			wantErr: []string{"layer 0 (sha256:", "negative size (-1)"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLayout(t)
			ref := l.tag(l.image(testImage{platform: linux(runtime.GOARCH), files: map[string]string{"a": "a"}, edit: tc.edit}))
			_, err := openTest(t, ref, Options{})
			if tc.wantErr == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			t.Log(err)
			for _, w := range tc.wantErr {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

// TestLayerSizeChecked opens images whose manifest declares another layer size than the
// blob has; every way of reading the layer to its end fails, naming layer and digest.
func TestLayerSizeChecked(t *testing.T) {
	readers := map[string]func(s *Source) (io.ReadCloser, error){
		"OpenLayerBlob": func(s *Source) (io.ReadCloser, error) {
			rc, _, err := s.OpenLayerBlob(context.Background(), 0)
			return rc, err
		},
		"OpenLayerVerified": func(s *Source) (io.ReadCloser, error) { return s.OpenLayerVerified(context.Background(), 0) },
	}
	tests := []struct {
		name    string
		delta   int64 // added to the true size in the manifest
		wantErr string
	}{
		{name: "exact", delta: 0},
		{name: "declared larger", delta: 1, wantErr: "blob ends after"},
		{name: "declared much larger", delta: 1 << 20, wantErr: "blob ends after"},
		{name: "declared smaller", delta: -1, wantErr: "blob is longer than"},
		{name: "declared much smaller", delta: -100, wantErr: "blob is longer than"},
	}
	for _, tc := range tests {
		for rname, open := range readers {
			t.Run(tc.name+"/"+rname, func(t *testing.T) {
				l := newLayout(t)
				var layer imgspecv1.Descriptor
				ref := l.tag(l.image(testImage{platform: linux(runtime.GOARCH), files: map[string]string{"f": string(bytes.Repeat([]byte("x"), 5000))},
					edit: func(m *imgspecv1.Manifest, _ *imgspecv1.Image) {
						m.Layers[0].Size += tc.delta
						layer = m.Layers[0]
					}}))
				src, err := openTest(t, ref, Options{})
				require.NoError(t, err)
				rc, err := open(src)
				if err == nil {
					// Decompressors read ahead when opened: a short blob may fail there.
					_, err = io.Copy(io.Discard, rc)
					rc.Close()
				}
				if tc.wantErr == "" {
					require.NoError(t, err)
					return
				}
				require.Error(t, err)
				t.Log(err)
				assert.Contains(t, err.Error(), tc.wantErr)
				assert.Contains(t, err.Error(), "layer 0 ("+layer.Digest.String()+")")
			})
		}
	}
}

func TestSizedReader(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 100)
	d := digest.FromBytes(data)
	tests := []struct {
		name    string
		want    int64
		oneByte bool
		wantErr string
		wantN   int64 // bytes passed on
	}{
		{name: "exact", want: 1000, wantN: 1000},
		{name: "exact, one byte at a time", want: 1000, oneByte: true, wantN: 1000},
		{name: "short", want: 1001, wantErr: "blob ends after 1000 bytes, the manifest declares 1001", wantN: 1000},
		{name: "long", want: 999, wantErr: "longer than the 999 bytes", wantN: 999},
		{name: "long, one byte at a time", want: 10, oneByte: true, wantErr: "longer than the 10 bytes", wantN: 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r io.Reader = bytes.NewReader(data)
			if tc.oneByte {
				r = iotest.OneByteReader(r)
			}
			sr := &sizedReader{ReadCloser: io.NopCloser(r), index: 3, digest: d, want: tc.want}
			n, err := io.Copy(io.Discard, sr)
			assert.Equal(t, tc.wantN, n, "extra bytes are not passed on")
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantErr)
			assert.Contains(t, err.Error(), "layer 3 ("+d.String()+")")
			_, again := sr.Read(make([]byte, 10))
			assert.Equal(t, err, again, "the error sticks")
		})
	}
}
