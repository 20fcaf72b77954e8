package exporter

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	digest "github.com/opencontainers/go-digest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/rechunk"
)

// TestPreviousInContainersStorage: a previous build in containers-storage, which keeps
// layers uncompressed, has no compressed blob to copy. Nothing is wrong, so the rebuild
// reports it in one line for all its layers, not one warning per layer.
func TestPreviousInContainersStorage(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	if os.Getuid() != 0 {
		t.Skip("containers-storage needs root")
	}
	tmp := t.TempDir()
	ref := "containers-storage:[vfs@" + filepath.Join(tmp, "root") + "+" + filepath.Join(tmp, "run") + "]localhost/rechunker-prev:latest"
	store1 := newStore(t)
	in1 := buildInput(t, store1, sampleNodes())
	res1, err := Export(context.Background(), in1, store1, topLevelPlan(in1), Options{Output: ref})
	require.NoError(t, err)

	store2 := newStore(t) // a fresh store: nothing to take from its blob cache
	var warns []string
	res2, _ := exportOCI(t, buildInput(t, store2, sampleNodes()), store2, Options{NoBlobCache: true,
		Previous: []rechunk.Previous{previousOf(ref, res1)}, Warn: func(s string) { warns = append(warns, s) }})
	require.Len(t, warns, 1, "one summary, not one warning per layer: %q", warns)
	assert.Equal(t, fmt.Sprintf("%d layers rebuilt from the store because the previous build's transport serves uncompressed blobs (e.g. containers-storage); the rebuilt blobs are identical to the previous build's", len(res1.Layers)), warns[0])
	for i, l := range res2.Layers {
		assert.Empty(t, l.Reused, "layer %d", i)
		assert.Equal(t, res1.Layers[i].Digest, l.Digest, "layer %d", i)
	}
}

// TestUncompressedTransportSummary: the layers counted once each, whatever the number of
// attempts; layers reused after all left out; the line says whether the rebuilt blobs
// are the previous ones.
func TestUncompressedTransportSummary(t *testing.T) {
	a, b, c := digest.FromString("a"), digest.FromString("b"), digest.FromString("c")
	built := []LayerResult{{Digest: a}, {Digest: b}, {Digest: c, Reused: "cache"}, {Digest: digest.FromString("x")}}
	const head = " rebuilt from the store because the previous build's transport serves uncompressed blobs (e.g. containers-storage)"
	cases := []struct {
		name string
		add  map[int]digest.Digest
		want string
	}{
		{"none", nil, ""},
		{"reused from the cache after all", map[int]digest.Digest{2: c}, ""},
		{"one, identical", map[int]digest.Digest{0: a}, "1 layer" + head + "; the rebuilt blobs are identical to the previous build's"},
		{"two, identical", map[int]digest.Digest{0: a, 1: b, 2: c}, "2 layers" + head + "; the rebuilt blobs are identical to the previous build's"},
		{"compressed differently", map[int]digest.Digest{3: c}, "1 layer" + head + "; same content, compressed differently from the previous build"},
		{"some compressed differently", map[int]digest.Digest{0: a, 1: b, 3: c}, "3 layers" + head + "; same content, 1 of them compressed differently from the previous build"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var u uncompressedTransport
			for i, d := range tc.add {
				u.add(i, d)
				u.add(i, d) // a layer tries its previous blob before and after compressing
			}
			assert.Equal(t, tc.want, u.summary(built))
		})
	}
}
