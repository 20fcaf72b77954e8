package bootc

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"testing"

	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/bootc/bootctest"
)

func TestInspectBoundImages(t *testing.T) {
	img := bootctest.Base()
	img.Files = append(img.Files,
		bootctest.File{Path: "/usr/share/containers/systemd/db.image", Data: "[Unit]\nDescription=db\n[Image]\nImage=quay.io/example/db:1\n", Chunk: 3},
		bootctest.File{Path: "/usr/lib/bootc/bound-images.d/db.image", Target: "/usr/share/containers/systemd/db.image", Chunk: 3},
		bootctest.File{Path: "/usr/lib/bootc/bound-images.d/broken.image", Target: "/nowhere.image", Chunk: 3},
	)
	unit := "[Container]\nImage=registry.example.com/web:2\nExec=/bin/web\n"
	img.Derived = [][]bootctest.Entry{{
		{Hdr: bootctest.Hdr("etc/containers/systemd/web.container", tar.TypeReg, 0o644, 0), Data: []byte(unit)},
		{Hdr: func() tar.Header {
			h := bootctest.Hdr("usr/lib/bootc/bound-images.d/web.container", tar.TypeSymlink, 0o777, 0)
			h.Linkname = "/etc/containers/systemd/web.container"
			return h
		}()},
	}}
	img.Labels = map[string]string{LabelPlan: `{"version":1,"layers":[{"digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","components":["x"]}]}`}
	b := img.Build(t)
	src := bootctest.Open(t, b.Ref)
	r, err := Inspect(context.Background(), src, InspectOptions{BoundImages: true, Verify: Options{TempDir: t.TempDir()}})
	require.NoError(t, err)
	require.NotNil(t, r.Verify)
	assert.True(t, r.Verify.OK, "%v", r.Verify.Failure)
	require.Len(t, r.BoundImages, 3)
	assert.Equal(t, "broken.image", r.BoundImages[0].Unit)
	assert.Contains(t, r.BoundImages[0].Error, "does not exist")
	assert.Equal(t, BoundImage{Unit: "db.image", Path: "/usr/share/containers/systemd/db.image", Image: "quay.io/example/db:1"}, r.BoundImages[1])
	assert.Equal(t, BoundImage{Unit: "web.container", Path: "/usr/etc/containers/systemd/web.container", Image: "registry.example.com/web:2"}, r.BoundImages[2])

	assert.Len(t, r.Layers, 5)
	assert.Equal(t, []string{"kernel"}, r.Layers[2].Components)
	assert.Equal(t, RoleDerived, r.Layers[4].Role)
	require.NotNil(t, r.Plan)
	assert.True(t, r.Plan.Parsed)
	assert.Contains(t, r.Plan.Summary, "layers[1]")

	// Without --bound-images nothing but manifest and config is read.
	r, err = Inspect(context.Background(), src, InspectOptions{})
	require.NoError(t, err)
	assert.Nil(t, r.BoundImages)
	assert.Nil(t, r.Verify)
}

func TestParsePlanLabel(t *testing.T) {
	assert.Nil(t, ParsePlanLabel(""))
	p := ParsePlanLabel("not json at all!")
	assert.False(t, p.Parsed)
	assert.Equal(t, 16, p.RawBytes)
	p = ParsePlanLabel(`{"builds":[{"layers":[{"diff_id":"sha256:1111111111111111111111111111111111111111111111111111111111111111","components":"a,b"}]}]}`)
	assert.True(t, p.Parsed)
	assert.Equal(t, []string{"a", "b"}, p.ComponentsFor("sha256:nope", "sha256:1111111111111111111111111111111111111111111111111111111111111111"))
}

// TestPlanLabelV1 feeds a label in rechunker's documented v1 format (base64 of gzip of
// JSON, rechunk/history.go) written here by hand, and checks that components are found
// by manifest index, e.g. when a registry dropped the ostree.components annotations.
func TestPlanLabelV1(t *testing.T) {
	js := `{"v":1,"n":3,"r":[3],"c":[{"n":"bash","d":"00","l":1,"h":1,"s":2},{"n":"kernel","d":"01","l":2,"p":{"/usr/lib/modules/6.1.0/vmlinuz":2},"s":1},{"n":"glibc","d":"02","l":1}]}`
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write([]byte(js))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	p := ParsePlanLabel(base64.StdEncoding.EncodeToString(buf.Bytes()))
	require.True(t, p.Parsed, p.Summary)
	assert.Equal(t, "base64 gzip JSON, rechunker plan v1: 3 chunk layers (1 reserved), 3 components, 2 with change history, 1 changed in this build", p.Summary)
	assert.Equal(t, []string{"bash", "glibc"}, p.ComponentsAt(1))
	assert.Equal(t, []string{"kernel"}, p.ComponentsAt(2))
	assert.Nil(t, p.ComponentsAt(3))
	assert.Equal(t, []string{"bash"}, p.ChangedThisBuild)

	// Diff falls back to the label when annotations are missing.
	img := bootctest.Base()
	img.Labels = map[string]string{LabelPlan: base64.StdEncoding.EncodeToString(buf.Bytes())}
	img.EditImage = func(m *imgspecv1.Manifest, c *imgspecv1.Image) {
		for i := range m.Layers {
			m.Layers[i].Annotations = nil
		}
	}
	old := bootctest.Base().Build(t)
	b := img.Build(t)
	r := Diff(context.Background(), bootctest.Open(t, old.Ref), bootctest.Open(t, b.Ref), DiffOptions{NoDiffID: true})
	require.Len(t, r.Reused, 4, "same blobs, only labels and annotations differ")
	assert.Equal(t, []string{"bash", "glibc"}, r.Reused[1].Components)
	assert.Equal(t, []string{"kernel"}, r.Reused[2].Components)
}
