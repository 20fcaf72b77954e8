package bootc

import (
	"archive/tar"
	"context"
	"testing"

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
