package exporter

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/rechunk"
)

func previousOf(ref string, res *Result) rechunk.Previous {
	p := rechunk.Previous{Ref: ref}
	for _, l := range res.Layers {
		p.Layers = append(p.Layers, rechunk.PreviousLayer{Digest: l.Digest.String(), DiffID: l.DiffID.String(), Size: l.Size})
	}
	return p
}

func TestReproducible(t *testing.T) {
	for _, comp := range []string{CompressionGzip, CompressionZstd, CompressionZstdChunked, CompressionNone} {
		t.Run(comp, func(t *testing.T) {
			// Separate stores: nothing can be shared but the input.
			var digests []string
			for i := 0; i < 2; i++ {
				store := newStore(t)
				in := buildInput(t, store, sampleNodes())
				res, _ := exportOCI(t, in, store, Options{Compression: comp, Bootc: true})
				digests = append(digests, res.ManifestDigest.String())
				for _, l := range res.Layers {
					assert.Empty(t, l.Reused, "fresh store, nothing to reuse")
				}
			}
			assert.Equal(t, digests[0], digests[1])
		})
	}
}

// TestRebuildChangesOnlyAffectedLayers: a new config file changes the commit layer and
// the chunk holding /usr/etc, and nothing else; unchanged chunks are copied from the
// previous build without compression.
func TestRebuildChangesOnlyAffectedLayers(t *testing.T) {
	store := newStore(t)
	nodes := sampleNodes()
	in1 := buildInput(t, store, nodes)
	res1, dir1 := exportOCI(t, in1, store, Options{NoBlobCache: true})

	nodes2 := append(append([]node(nil), nodes...), node{path: "/usr/etc/new.conf", kind: 'f', mode: 0o644, data: "new=1\n"})
	in2 := buildInput(t, store, nodes2)
	res2, dir2 := exportOCI(t, in2, store, Options{
		NoBlobCache: true,
		Previous:    []rechunk.Previous{previousOf("oci:"+dir1+":latest", res1)},
	})
	require.Equal(t, len(res1.Layers), len(res2.Layers))
	plan := topLevelPlan(in2)
	for i, l := range res2.Layers {
		changed := i == 0 || (i > 0 && plan.Layers[i-1].Name == "files of usr")
		if changed {
			assert.NotEqual(t, res1.Layers[i].Digest, l.Digest, "layer %d (%s) must change", i, l.Name)
			assert.Empty(t, l.Reused)
		} else {
			assert.Equal(t, res1.Layers[i].Digest, l.Digest, "layer %d (%s) must not change", i, l.Name)
			assert.Equal(t, "previous-build", l.Reused, "layer %d (%s)", i, l.Name)
			// Same file system: the checked blob is linked, not copied.
			assert.True(t, sameFile(filepath.Join(dir1, "blobs/sha256", l.Digest.Encoded()),
				filepath.Join(dir2, "blobs/sha256", l.Digest.Encoded())), "layer %d (%s) linked", i, l.Name)
		}
	}
}

func TestBlobCacheReuse(t *testing.T) {
	store := newStore(t)
	in := buildInput(t, store, sampleNodes())
	res1, _ := exportOCI(t, in, store, Options{})
	res2, dir2 := exportOCI(t, in, store, Options{})
	assert.Equal(t, res1.ManifestDigest, res2.ManifestDigest)
	for _, l := range res2.Layers {
		assert.Equal(t, "cache", l.Reused, "layer %d", l.Index)
		assert.FileExists(t, filepath.Join(dir2, "blobs/sha256", l.Digest.Encoded()))
	}
	// Another level is another cache key.
	res3, _ := exportOCI(t, in, store, Options{Level: 1})
	assert.NotEqual(t, res1.Layers[1].Digest, res3.Layers[1].Digest)
	assert.Equal(t, res1.Layers[1].DiffID, res3.Layers[1].DiffID)
	assert.Empty(t, res3.Layers[1].Reused)
}

func TestOCIOutputKeepsOtherTags(t *testing.T) {
	store := newStore(t)
	in := buildInput(t, store, sampleNodes())
	dir := filepath.Join(t.TempDir(), "oci")
	for _, tag := range []string{"a", "b", "a"} {
		_, err := Export(context.Background(), in, store, topLevelPlan(in), Options{Output: "oci:" + dir + ":" + tag})
		require.NoError(t, err)
	}
	out := run(t, "skopeo", "inspect", "oci:"+dir+":b")
	assert.Contains(t, out, in.CommitSum.String())
	idx, err := os.ReadFile(filepath.Join(dir, "index.json"))
	require.NoError(t, err)
	assert.Contains(t, string(idx), `"org.opencontainers.image.ref.name":"a"`)
	assert.Contains(t, string(idx), `"org.opencontainers.image.ref.name":"b"`)
}

func TestBadInputs(t *testing.T) {
	store := newStore(t)
	in := buildInput(t, store, sampleNodes())
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "junk"), []byte("x"), 0o644))
	cases := []struct {
		name string
		o    Options
		want string
	}{
		{"format", Options{Output: "oci:" + t.TempDir(), FormatVersion: 3}, "format version 3"},
		{"compression", Options{Output: "oci:" + t.TempDir(), Compression: "xz"}, "unknown compression"},
		{"level", Options{Output: "oci:" + t.TempDir(), Level: 12}, "level 12"},
		{"no output", Options{}, "no output"},
		{"non-oci dir", Options{Output: "oci:" + dir}, "refusing"},
		{"bad transport", Options{Output: "nope:x"}, "output"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Export(context.Background(), in, store, topLevelPlan(in), c.o)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
		})
	}
	badPlans := []struct {
		name   string
		modify func(p *rechunk.Plan)
		want   string
	}{
		{"entry of another tree", func(p *rechunk.Plan) {
			f := *p.Layers[0].Files[0].File
			p.Layers[0].Files[0].File = &f
		}, p0(in) + " is not a file of the tree"},
		{"tree entry at a wrong path", func(p *rechunk.Plan) {
			p.Layers[0].Files[0].Name = "nonexistent"
		}, "lists " + p0(in) + " at " + topLevelPlan(in).Layers[0].Files[0].Dir + "nonexistent"},
		{"no tree entry", func(p *rechunk.Plan) { p.Layers[0].Files[0].File = nil }, "has no tree entry"},
		{"path in two layers", func(p *rechunk.Plan) {
			p.Layers[1].Files = append(p.Layers[1].Files, p.Layers[0].Files[0])
		}, "plan puts " + p0(in) + " in layers 0 and 1"},
		{"path twice in a layer", func(p *rechunk.Plan) {
			p.Layers[1].Files = append(p.Layers[1].Files, p.Layers[1].Files[0])
		}, "twice in layer 1"},
	}
	for _, c := range badPlans {
		t.Run(c.name, func(t *testing.T) {
			plan := topLevelPlan(in)
			c.modify(plan)
			out := filepath.Join(t.TempDir(), "oci")
			_, err := Export(context.Background(), in, store, plan, Options{Output: "oci:" + out})
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
			assert.NoFileExists(t, filepath.Join(out, "index.json"))
		})
	}
	t.Run("cancelled leaves no index", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		out := filepath.Join(t.TempDir(), "oci")
		_, err := Export(ctx, in, store, topLevelPlan(in), Options{Output: "oci:" + out})
		require.Error(t, err)
		assert.NoFileExists(t, filepath.Join(out, "index.json"))
	})
	t.Run("missing plan paths go to the commit layer", func(t *testing.T) {
		plan := topLevelPlan(in)
		plan.Layers = plan.Layers[:1]
		var warnings []string
		res, err := Export(context.Background(), in, store, plan, Options{Output: "oci:" + t.TempDir(),
			Warn: func(s string) { warnings = append(warnings, s) }})
		require.NoError(t, err)
		assert.Len(t, res.Layers, 2)
		assert.Contains(t, fmt.Sprint(warnings), "plan does not cover")
	})
}

// previousFromLayout reads a previous build the way build does: layers with their
// manifest annotations.
func previousFromLayout(t *testing.T, dir string, res *Result) rechunk.Previous {
	t.Helper()
	var man imgspecv1.Manifest
	readJSON(t, dir, res.ManifestDigest.String(), &man)
	p := previousOf("oci:"+dir+":latest", res)
	require.Len(t, man.Layers, len(p.Layers))
	for i := range p.Layers {
		p.Layers[i].Annotations = man.Layers[i].Annotations
	}
	return p
}

// TestPreviousBuildLies: a previous build is a claim. Whatever its annotations, config
// diff_ids, descriptor sizes or blobs say, the new image's layers are the ones this
// build would write without it (same diff_ids, blobs that hash and decompress to what the
// manifest and config say); honest previous layers are reused, lying ones are reported
// with the layer they were meant for and rebuilt from the store.
func TestPreviousBuildLies(t *testing.T) {
	nodes2 := append(sampleNodes(), node{path: "/usr/etc/new.conf", kind: 'f', mode: 0o644, data: "new=1\n"})
	cases := []struct {
		name  string
		lie   func(t *testing.T, p *rechunk.Previous, dir string)
		warns []string // each must appear in some warning
		reuse int      // chunk layers reused from the previous build, at least
	}{
		{name: "honest, keyed", reuse: 2},
		{name: "honest, without keys", reuse: 2, lie: func(t *testing.T, p *rechunk.Previous, _ string) {
			for i := range p.Layers {
				p.Layers[i].Annotations = nil
			}
		}},
		{name: "layer keys swapped", warns: []string{"layer-key annotation claims diff_id"}, lie: func(t *testing.T, p *rechunk.Previous, _ string) {
			a, b := p.Layers[1].Annotations[AnnLayerKey], p.Layers[2].Annotations[AnnLayerKey]
			p.Layers[1].Annotations = map[string]string{AnnLayerKey: b}
			p.Layers[2].Annotations = map[string]string{AnnLayerKey: a}
		}},
		{name: "diff_ids swapped", warns: []string{"not reusing"}, lie: func(t *testing.T, p *rechunk.Previous, _ string) {
			p.Layers[1].DiffID, p.Layers[2].DiffID = p.Layers[2].DiffID, p.Layers[1].DiffID
		}},
		{name: "diff_ids swapped, without keys", warns: []string{"does not hold this layer's content"}, lie: func(t *testing.T, p *rechunk.Previous, _ string) {
			p.Layers[1].DiffID, p.Layers[2].DiffID = p.Layers[2].DiffID, p.Layers[1].DiffID
			for i := range p.Layers {
				p.Layers[i].Annotations = nil
			}
		}},
		{name: "descriptor sizes 0 and -1", reuse: 2, lie: func(t *testing.T, p *rechunk.Previous, _ string) {
			for i := range p.Layers {
				p.Layers[i].Size = int64(i%2) - 1
			}
		}},
		{name: "blob corrupted", warns: []string{"not reusing layer 1 "}, reuse: 1, lie: func(t *testing.T, p *rechunk.Previous, dir string) {
			d, err := digest.Parse(p.Layers[1].Digest)
			require.NoError(t, err)
			flip(t, filepath.Join(dir, "blobs", "sha256", d.Encoded()))
		}},
	}
	refStore := newStore(t)
	want, _ := exportOCI(t, buildInput(t, refStore, nodes2), refStore, Options{NoBlobCache: true})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			store1 := newStore(t)
			res1, dir1 := exportOCI(t, buildInput(t, store1, sampleNodes()), store1, Options{})
			prev := previousFromLayout(t, dir1, res1)
			if c.lie != nil {
				c.lie(t, &prev, dir1)
			}
			// A fresh store, as on a CI machine that only has the previous image.
			store2 := newStore(t)
			var warns []string
			res2, dir2 := exportOCI(t, buildInput(t, store2, nodes2), store2, Options{NoBlobCache: true,
				Previous: []rechunk.Previous{prev}, Warn: func(s string) { warns = append(warns, s) }})
			reused := 0
			for i, l := range res2.Layers {
				assert.Equal(t, want.Layers[i].DiffID, l.DiffID, "layer %d", i)
				assert.Equal(t, want.Layers[i].TarSize, l.TarSize, "layer %d", i)
				checkBlobFile(t, dir2, l)
				if l.Reused == "previous-build" {
					reused++
				}
			}
			assert.GreaterOrEqual(t, reused, c.reuse, "warnings: %q", warns)
			for _, w := range c.warns {
				assert.True(t, slices.ContainsFunc(warns, func(s string) bool { return strings.Contains(s, w) }),
					"no warning says %q: %q", w, warns)
			}
			for _, w := range warns {
				assert.Regexp(t, `^layer [0-9]+ \(`, w, "a warning names the layer")
			}
			if c.warns == nil {
				assert.Empty(t, warns)
			}
		})
	}
}

// checkBlobFile checks that the blob of l in an OCI layout has l's size and digest and
// decompresses to l's diff_id.
func checkBlobFile(t *testing.T, dir string, l LayerResult) {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "blobs", "sha256", l.Digest.Encoded()))
	require.NoError(t, err)
	defer f.Close()
	comp, err := newCompressor(CompressionGzip, 0)
	require.NoError(t, err)
	n, err := checkBlob(context.Background(), f, io.Discard, l.Digest, l.DiffID, comp)
	require.NoError(t, err, "layer %d", l.Index)
	assert.Equal(t, l.Size, n, "layer %d: descriptor size", l.Index)
}

func TestParseLayerKey(t *testing.T) {
	k := strings.Repeat("ab", 32)
	cases := []struct {
		in   string
		ok   bool
		size int64
	}{
		{k + " 1024", true, 1024},
		{formatLayerKey(k, 7), true, 7},
		{k, false, 0},
		{k + " -1", false, 0},
		{k[:62] + " 5", false, 0},
		{strings.Repeat("zz", 32) + " 5", false, 0},
		{"", false, 0},
	}
	for _, c := range cases {
		key, size, ok := parseLayerKey(c.in)
		assert.Equal(t, c.ok, ok, "%q", c.in)
		if c.ok {
			assert.Equal(t, k, key)
			assert.Equal(t, c.size, size)
		}
	}
}

func flip(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	b[len(b)-1] ^= 0xff
	require.NoError(t, os.WriteFile(path, b, 0o644))
}

// p0 is the path of the first file of the first layer of topLevelPlan.
func p0(in *Input) string { return topLevelPlan(in).Layers[0].Files[0].Path() }
