package delta

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	tarpatch "github.com/containers/tar-diff/pkg/tar-patch"
	"github.com/klauspost/compress/gzip"
	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/rechunker-dev/rechunker/internal/fsutil"
	"github.com/rechunker-dev/rechunker/internal/imageio"
)

// ApplyOptions configure Apply.
type ApplyOptions struct {
	Image imageio.Options
	// Source is the source image's reference. When set, its manifest digest must be
	// the one the delta was made from, and the target layers the delta reuses are
	// copied from it; without it a delta that reuses layers cannot be applied.
	Source string
	// Repo is an ostree repository (bare or bare-user: objects/XX/YYY.file hold the
	// files' contents) whose objects stand in for the root's sysroot/ostree/repo/objects,
	// e.g. a booted host's /sysroot/ostree/repo. With it root may be "" when every file
	// the delta reads is an ostree object (Options.SourcePrefixes = ObjectsPrefix).
	Repo string
	// Jobs is how many layers are rebuilt at once; 0 means 2.
	Jobs int
}

// ObjectsPrefix is where a chunked (ostree-ext) image's layers hold the ostree objects.
const ObjectsPrefix = "sysroot/ostree/repo/objects/"

// Apply rebuilds the target image of the delta at deltaFile from the source image's
// files under root (the source image unpacked) and writes it as an OCI archive at
// output (a path, or oci-archive:PATH). Rebuilt layers are gzip-compressed, so their
// digests differ from the target's while their diff_ids, checked against the target
// config, are equal. On error no output is left.
func Apply(ctx context.Context, deltaFile, root, output string, o ApplyOptions) error {
	output = strings.TrimPrefix(output, "oci-archive:")
	f, err := os.Open(deltaFile)
	if err != nil {
		return fmt.Errorf("opening delta: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("opening delta: %w", err)
	}
	a, err := ParseArtifact(f, fi.Size())
	if err != nil {
		return fmt.Errorf("delta %s: %w", deltaFile, err)
	}
	ap := &applier{a: a, o: o}
	if ap.root, err = openRoot(root, "source root"); err != nil {
		return err
	}
	defer closeRoot(ap.root)
	if ap.repo, err = openRoot(o.Repo, "ostree repository"); err != nil {
		return err
	}
	defer closeRoot(ap.repo)
	if ap.root == nil && ap.repo == nil {
		return errors.New("no source files: give the source root or an ostree repository")
	}
	if err := ap.openSource(ctx); err != nil {
		return err
	}
	defer ap.closeSource()
	return ap.write(ctx, output)
}

// applier holds one Apply's artifact, source root and optional source image.
type applier struct {
	a      *Artifact
	root   *os.Root // nil: no root, only repo
	repo   *os.Root // nil: objects are read from root
	o      ApplyOptions
	src    *imageio.Source
	layout string
}

func (ap *applier) openSource(ctx context.Context) error {
	if ap.o.Source == "" {
		for i, l := range ap.a.Target.Layers {
			if ap.a.Reused[l.Digest] {
				return fmt.Errorf("target layer %d (%s) is reused from the source image: give the source image (--source)", i, l.Digest)
			}
		}
		return nil
	}
	src, err := imageio.Open(ctx, ap.o.Source, ap.o.Image)
	if err != nil {
		return fmt.Errorf("opening source image %s: %w", ap.o.Source, err)
	}
	ap.src = src
	if src.Digest != ap.a.Source {
		return fmt.Errorf("the delta was made for source image %s, %s is %s", ap.a.Source, ap.o.Source, src.Digest)
	}
	return nil
}

func (ap *applier) closeSource() {
	if ap.src != nil {
		ap.src.Close()
	}
}

// write builds the image as an OCI layout in a temporary directory next to output,
// then tars it into a temporary file there and renames that to output.
func (ap *applier) write(ctx context.Context, output string) error {
	dir := filepath.Dir(output)
	layout, err := os.MkdirTemp(dir, ".delta-apply-")
	if err != nil {
		return fmt.Errorf("creating work directory for %s: %w", output, err)
	}
	defer os.RemoveAll(layout)
	ap.layout = layout
	if err := os.MkdirAll(filepath.Join(layout, "blobs", "sha256"), 0o755); err != nil {
		return err
	}
	descs, err := ap.layers(ctx)
	if err != nil {
		return err
	}
	if err := ap.writeLayout(descs); err != nil {
		return fmt.Errorf("writing image layout: %w", err)
	}
	tmp, err := tarDir(ctx, layout, dir)
	if err != nil {
		return fmt.Errorf("writing %s: %w", output, err)
	}
	if err := fsutil.Publish(tmp, output); err != nil {
		return fmt.Errorf("writing %s: %w", output, err)
	}
	return nil
}

// layers writes every target layer's blob into the layout and returns their descriptors.
func (ap *applier) layers(ctx context.Context) ([]imgspecv1.Descriptor, error) {
	tl := ap.a.Target.Layers
	descs := make([]imgspecv1.Descriptor, len(tl))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs(ap.o.Jobs))
	for i := range tl {
		g.Go(func() error {
			d, err := ap.layer(gctx, i)
			if err != nil {
				return fmt.Errorf("target layer %d (%s): %w", i, tl[i].Digest, err)
			}
			d.Annotations = tl[i].Annotations
			descs[i] = d
			return nil
		})
	}
	return descs, g.Wait()
}

func (ap *applier) layer(ctx context.Context, i int) (imgspecv1.Descriptor, error) {
	t := ap.a.Target.Layers[i]
	if d, ok := ap.a.Layers[t.Digest]; ok {
		if IsDelta(d) {
			return ap.patch(ctx, i, d)
		}
		r, err := ap.a.Blob(d)
		if err != nil {
			return imgspecv1.Descriptor{}, err
		}
		return ap.copyBlob(ctx, r, t)
	}
	return ap.reuse(ctx, i)
}

// reuse copies the source image's layer with the target layer's diff_id.
func (ap *applier) reuse(ctx context.Context, i int) (imgspecv1.Descriptor, error) {
	want := ap.a.Config.RootFS.DiffIDs[i]
	for j, l := range ap.src.Layers {
		if l.DiffID != want {
			continue
		}
		rc, _, err := ap.src.OpenLayerBlob(ctx, j)
		if err != nil {
			return imgspecv1.Descriptor{}, fmt.Errorf("reading source layer %d: %w", j, err)
		}
		defer rc.Close()
		d := ap.src.LayerBlobDigest(j)
		vr := &verifyReader{r: rc, want: d, v: d.Verifier()}
		return ap.copyBlob(ctx, vr, imgspecv1.Descriptor{MediaType: l.MediaType, Digest: d})
	}
	return imgspecv1.Descriptor{}, fmt.Errorf("source image %s has no layer with diff_id %s", ap.o.Source, want)
}

// copyBlob writes r (a verified reader of the blob desc) into the layout.
func (ap *applier) copyBlob(ctx context.Context, r io.Reader, desc imgspecv1.Descriptor) (imgspecv1.Descriptor, error) {
	path := filepath.Join(ap.layout, "blobs", "sha256", desc.Digest.Encoded())
	f, err := os.CreateTemp(filepath.Dir(path), ".blob-")
	if err != nil {
		return desc, err
	}
	defer os.Remove(f.Name())
	n, err := io.Copy(f, fsutil.ContextReader(ctx, r))
	if err == nil {
		err = f.Close()
	} else {
		f.Close()
	}
	if err != nil {
		return desc, err
	}
	desc.Size = n
	return desc, os.Rename(f.Name(), path)
}

// patch rebuilds target layer i from its tar-diff and the root, gzips it, and checks
// the rebuilt tar's diff_id against the target config.
func (ap *applier) patch(ctx context.Context, i int, d imgspecv1.Descriptor) (imgspecv1.Descriptor, error) {
	// The delta is read twice, the first time only to check its digest: a corrupted
	// delta is then reported as such rather than as whatever the decoder makes of it.
	if err := ap.checkBlob(d); err != nil {
		return imgspecv1.Descriptor{}, err
	}
	dr, err := ap.a.Blob(d)
	if err != nil {
		return imgspecv1.Descriptor{}, err
	}
	f, err := os.CreateTemp(filepath.Join(ap.layout, "blobs", "sha256"), ".layer-")
	if err != nil {
		return imgspecv1.Descriptor{}, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	blobD, diffD := digest.SHA256.Digester(), digest.SHA256.Digester()
	zw := gzip.NewWriter(io.MultiWriter(f, blobD.Hash()))
	ds := &rootSource{root: ap.root, repo: ap.repo}
	defer ds.Close()
	err = tarpatch.Apply(fsutil.ContextReader(ctx, dr), ds, io.MultiWriter(zw, diffD.Hash()))
	if err != nil {
		return imgspecv1.Descriptor{}, fmt.Errorf("applying tar-diff %s: %w", d.Digest, err)
	}
	if want := ap.a.Config.RootFS.DiffIDs[i]; diffD.Digest() != want {
		return imgspecv1.Descriptor{}, fmt.Errorf("rebuilt layer has diff_id %s, the target config says %s: the root is not the delta's source image", diffD.Digest(), want)
	}
	if err := zw.Close(); err != nil {
		return imgspecv1.Descriptor{}, err
	}
	n, err := f.Seek(0, io.SeekCurrent)
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		return imgspecv1.Descriptor{}, err
	}
	desc := imgspecv1.Descriptor{MediaType: imgspecv1.MediaTypeImageLayerGzip, Digest: blobD.Digest(), Size: n}
	return desc, os.Rename(f.Name(), filepath.Join(ap.layout, "blobs", "sha256", desc.Digest.Encoded()))
}

func (ap *applier) checkBlob(d imgspecv1.Descriptor) error {
	r, err := ap.a.Blob(d)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, r)
	return err
}

// openRoot opens dir as an os.Root; "" gives nil.
func openRoot(dir, what string) (*os.Root, error) {
	if dir == "" {
		return nil, nil
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", what, err)
	}
	return r, nil
}

func closeRoot(r *os.Root) {
	if r != nil {
		r.Close()
	}
}

// rootSource is tar-patch's data source over the source root, with the ostree objects
// read from repo when there is one. os.Root keeps every name the delta opens inside
// the root or repository, through symlinks too: the delta is not trusted.
type rootSource struct {
	root, repo *os.Root
	f          *os.File
	name       string
}

func (s *rootSource) SetCurrentFile(name string) error {
	s.Close()
	dir, rel := s.root, name
	if obj, ok := strings.CutPrefix(name, ObjectsPrefix); ok && s.repo != nil {
		dir, rel = s.repo, "objects/"+obj
	}
	if dir == nil {
		return fmt.Errorf("source file %s: not an ostree object, and no source root was given", name)
	}
	f, err := dir.Open(rel)
	if err != nil {
		return fmt.Errorf("source file %s: %w", name, err)
	}
	s.f, s.name = f, name
	return nil
}

func (s *rootSource) Read(p []byte) (int, error) {
	if s.f == nil {
		return 0, errors.New("tar-diff reads before naming a source file")
	}
	n, err := s.f.Read(p)
	if err == io.EOF {
		// tar-patch reads exact lengths: an end of file is always a source that differs.
		err = fmt.Errorf("source file %s is shorter than the delta expects", s.name)
	}
	return n, err
}

func (s *rootSource) Seek(off int64, whence int) (int64, error) {
	if s.f == nil {
		return 0, errors.New("tar-diff seeks before naming a source file")
	}
	return s.f.Seek(off, whence)
}

func (s *rootSource) Close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
