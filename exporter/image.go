package exporter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/transports/alltransports"
	"go.podman.io/image/v5/types"

	"github.com/rechunker-dev/rechunker/internal/fsutil"
	"github.com/rechunker-dev/rechunker/internal/imageio"
	"github.com/rechunker-dev/rechunker/rechunk"
)

// output is a parsed --output reference.
type output struct {
	raw    string
	ref    types.ImageReference
	ociDir string // set for oci:DIR[:TAG], written directly
	tag    string
}

func parseOutput(s string) (*output, error) {
	if s == "" {
		return nil, fmt.Errorf("export: no output image given")
	}
	ref, err := imageio.ParseReference(s)
	if err != nil {
		return nil, fmt.Errorf("export: output: %w", err)
	}
	out := &output{raw: s, ref: ref}
	if ref.Transport().Name() == "oci" {
		// oci:PATH[:TAG]; the path may not contain ':' (as containers/image splits it).
		dir, tag, _ := strings.Cut(ref.StringWithinTransport(), ":")
		out.ociDir, out.tag = dir, tag
	}
	return out, nil
}

// prepareOutput decides where blobs go: straight into an oci: directory (blobs are
// content-addressed, so adding them changes nothing visible until index.json is
// replaced at the very end), or into a temporary layout in the store that is copied to
// the destination transport afterwards.
func (e *export) prepareOutput(out *output) error {
	if out.ociDir != "" {
		if err := checkOCIDir(out.ociDir); err != nil {
			return err
		}
		e.outBlobs = layoutBlobs(out.ociDir)
		return nil
	}
	dir, err := e.tempDir()
	if err != nil {
		return err
	}
	e.outBlobs = layoutBlobs(dir)
	return nil
}

// checkOCIDir accepts a missing or empty directory or an existing OCI layout.
func checkOCIDir(dir string) error {
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("export: create %s: %w", dir, err)
		}
		return markLayout(dir)
	case err != nil:
		return fmt.Errorf("export: output %s: %w", dir, err)
	case len(ents) == 0:
		return markLayout(dir)
	}
	if _, err := os.Stat(filepath.Join(dir, imgspecv1.ImageLayoutFile)); err != nil {
		return fmt.Errorf("export: output %s is a non-empty directory without an %s file; refusing to write into it",
			dir, imgspecv1.ImageLayoutFile)
	}
	// publishOCI merges into index.json at the very end; find out now, before any blob
	// is written, that it cannot.
	indexFile := filepath.Join(dir, imgspecv1.ImageIndexFile)
	b, err := os.ReadFile(indexFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("export: output %s: %w", dir, err)
	default:
		var idx imgspecv1.Index
		if err := json.Unmarshal(b, &idx); err != nil {
			return fmt.Errorf("export: output %s: %s is not an OCI index (%v); refusing to write into it", dir, indexFile, err)
		}
	}
	return nil
}

// markLayout writes oci-layout into a new output directory before any blob, so that a
// crashed build leaves a recognizable (image-less: index.json comes last) layout that
// the next build may write into, not a directory it must refuse.
func markLayout(dir string) error {
	b, _ := canonicalJSON(imgspecv1.ImageLayout{Version: imgspecv1.ImageLayoutVersion})
	if err := fsutil.WriteFileAtomicSync(filepath.Join(dir, imgspecv1.ImageLayoutFile), b); err != nil {
		return fmt.Errorf("export: write %s: %w", filepath.Join(dir, imgspecv1.ImageLayoutFile), err)
	}
	return nil
}

// canonicalJSON serializes v with sorted keys and no insignificant whitespace, as
// ostree-ext (canon-json) does for config and manifest.
func canonicalJSON(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(generic); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// labels computes the ostree-ext label map: what the manifest carries as annotations and
// what overrides the inherited config labels.
func (e *export) labels() map[string]string {
	m := map[string]string{}
	md := e.in.Commit.Metadata
	if v, ok := md.Get("ostree.bootable"); ok {
		if b, ok := v.Value.(bool); ok {
			m[LabelBootable] = fmt.Sprint(b)
			m[LabelBootc] = "1"
		}
	}
	for key, label := range map[string]string{"ostree.linux": LabelLinux, "version": LabelVersion, LabelInputHash: LabelInputHash} {
		if v, ok := md.Get(key); ok {
			if s, ok := v.Value.(string); ok {
				m[label] = s
			}
		}
	}
	if e.o.Bootc {
		m[LabelBootc] = "1"
	}
	for k, v := range e.plan.Labels {
		m[k] = v
	}
	for k, v := range e.o.Labels {
		m[k] = v
	}
	if e.o.Plain {
		// Labels inherited from an ostree image would describe a commit this image
		// does not carry; bootc would go looking for it.
		delete(m, LabelCommit)
		delete(m, LabelFinalDiffID)
		return m
	}
	m[LabelCommit] = e.cd.sum.String()
	m[LabelFinalDiffID] = e.layers[len(e.layers)-1].res.DiffID.String()
	return m
}

// imageConfig builds the config: the source's runtime config with labels merged,
// platform from the source, one history entry per layer, created from the source.
func (e *export) imageConfig(labels map[string]string) imgspecv1.Image {
	src := e.in.Config
	cfg := src.Config
	merged := map[string]string{}
	for k, v := range src.Config.Labels {
		merged[k] = v
	}
	for k, v := range labels {
		merged[k] = v
	}
	if e.o.Plain {
		delete(merged, LabelCommit)
		delete(merged, LabelFinalDiffID)
	}
	cfg.Labels = merged
	created := e.created
	img := imgspecv1.Image{
		Created: &created,
		Platform: imgspecv1.Platform{
			Architecture: src.Architecture,
			OS:           src.OS,
			Variant:      src.Variant, // arm64/v8 and arm/v7 images say so; a runtime picks by it
		},
		Config: cfg,
		RootFS: imgspecv1.RootFS{Type: "layers"},
	}
	if img.Architecture == "" {
		img.Architecture = runtime.GOARCH
	}
	if img.OS == "" {
		img.OS = "linux"
	}
	for _, l := range e.layers {
		img.RootFS.DiffIDs = append(img.RootFS.DiffIDs, l.res.DiffID)
		img.History = append(img.History, imgspecv1.History{Created: &created, CreatedBy: l.name})
	}
	return img
}

// writeImage writes config and manifest blobs, then publishes the image.
func (e *export) writeImage(ctx context.Context, out *output) (*Result, error) {
	labels := e.labels()
	cfg := e.imageConfig(labels)
	cfgJSON, err := canonicalJSON(cfg)
	if err != nil {
		return nil, fmt.Errorf("export: config: %w", err)
	}
	cfgDesc := imgspecv1.Descriptor{MediaType: imgspecv1.MediaTypeImageConfig, Digest: digest.FromBytes(cfgJSON), Size: int64(len(cfgJSON))}
	man := imgspecv1.Manifest{
		Versioned:   specs.Versioned{SchemaVersion: 2},
		MediaType:   imgspecv1.MediaTypeImageManifest,
		Config:      cfgDesc,
		Annotations: labels,
	}
	for _, ol := range e.layers {
		l := ol.res
		d := imgspecv1.Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size}
		if !ol.spec.commit {
			d.Annotations = map[string]string{
				rechunk.ComponentsAnnotation: strings.Join(l.Components, ","),
				AnnLayerKey:                  formatLayerKey(ol.key, l.TarSize),
			}
		}
		for k, v := range l.Annotations {
			if d.Annotations == nil {
				d.Annotations = map[string]string{}
			}
			d.Annotations[k] = v
		}
		man.Layers = append(man.Layers, d)
	}
	manJSON, err := canonicalJSON(man)
	if err != nil {
		return nil, fmt.Errorf("export: manifest: %w", err)
	}
	manDesc := imgspecv1.Descriptor{
		MediaType: imgspecv1.MediaTypeImageManifest,
		Digest:    digest.FromBytes(manJSON),
		Size:      int64(len(manJSON)),
		Platform:  &imgspecv1.Platform{Architecture: cfg.Architecture, OS: cfg.OS, Variant: cfg.Variant},
	}
	for _, b := range [][]byte{cfgJSON, manJSON} {
		if err := writeBlob(e.outBlobs, b); err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
	}
	res := &Result{
		Output: out.raw, ManifestDigest: manDesc.Digest, ConfigDigest: cfgDesc.Digest,
		Commit: e.cd.sum.String(), Layers: e.results(), Labels: labels,
	}
	if e.o.Plain {
		res.Commit = "" // computed, but not in the image
	}
	if out.ociDir != "" {
		if err := publishOCI(out.ociDir, out.tag, manDesc); err != nil {
			return nil, err
		}
		return res, nil
	}
	if err := publishOCI(e.tmpDir, "rechunker", manDesc); err != nil {
		return nil, err
	}
	if err := e.copyTo(ctx, out); err != nil {
		return nil, err
	}
	return res, nil
}

func writeBlob(b blobDir, data []byte) error {
	d := digest.FromBytes(data)
	if b.has(d, int64(len(data))) {
		return nil
	}
	tmp, err := b.tempFile()
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := b.commit(tmp.Name(), d); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

// publishOCI points dir's index.json at the manifest, replacing an entry with the same
// tag (or, without a tag, the whole index, as ostree-ext does). index.json is replaced
// atomically and last, so a failed export leaves the previous image intact.
func publishOCI(dir, tag string, man imgspecv1.Descriptor) error {
	layoutFile := filepath.Join(dir, imgspecv1.ImageLayoutFile)
	if _, err := os.Stat(layoutFile); err != nil {
		b, _ := canonicalJSON(imgspecv1.ImageLayout{Version: imgspecv1.ImageLayoutVersion})
		if err := fsutil.WriteFileAtomicSync(layoutFile, b); err != nil {
			return fmt.Errorf("export: write %s: %w", layoutFile, err)
		}
	}
	indexFile := filepath.Join(dir, imgspecv1.ImageIndexFile)
	idx := imgspecv1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: imgspecv1.MediaTypeImageIndex}
	if tag != "" {
		if b, err := os.ReadFile(indexFile); err == nil {
			var old imgspecv1.Index
			if err := json.Unmarshal(b, &old); err != nil {
				return fmt.Errorf("export: parse %s: %w", indexFile, err)
			}
			for _, m := range old.Manifests {
				if m.Annotations[imgspecv1.AnnotationRefName] != tag {
					idx.Manifests = append(idx.Manifests, m)
				}
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("export: read %s: %w", indexFile, err)
		}
		man.Annotations = map[string]string{imgspecv1.AnnotationRefName: tag}
	}
	idx.Manifests = append(idx.Manifests, man)
	sort.SliceStable(idx.Manifests, func(i, j int) bool {
		return idx.Manifests[i].Annotations[imgspecv1.AnnotationRefName] < idx.Manifests[j].Annotations[imgspecv1.AnnotationRefName]
	})
	b, err := canonicalJSON(idx)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomicSync(indexFile, b); err != nil {
		return fmt.Errorf("export: write %s: %w", indexFile, err)
	}
	return nil
}

// copyTo copies the temporary layout to a non-oci destination with containers/image,
// keeping blobs byte-identical where the destination format allows.
func (e *export) copyTo(ctx context.Context, out *output) error {
	srcRef, err := alltransports.ParseImageName("oci:" + e.tmpDir + ":rechunker")
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	policy, err := signature.NewPolicyContext(&signature.Policy{
		Default: signature.PolicyRequirements{signature.NewPRInsecureAcceptAnything()},
	})
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer policy.Destroy()
	sys := e.o.Image.SystemContext()
	if err := os.MkdirAll(sys.BlobInfoCacheDir, 0o700); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	// docker-archive stores layers uncompressed, so it cannot keep the digests.
	preserve := out.ref.Transport().Name() != "docker-archive"
	opts := &copy.Options{
		SourceCtx:       sys,
		DestinationCtx:  sys,
		PreserveDigests: preserve,
		ReportWriter:    io.Discard,
	}
	_, err = copy.Image(ctx, policy, out.ref, srcRef, opts)
	imageio.ReleaseStore(out.ref)
	if err != nil {
		return fmt.Errorf("export: copy image to %s: %w", out.raw, err)
	}
	return nil
}

// copyCtx copies r into w and h, checking ctx between chunks.
func copyCtx(ctx context.Context, w io.Writer, h io.Writer, r io.Reader) (int64, error) {
	buf := make([]byte, 256<<10)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		k, err := r.Read(buf)
		if k > 0 {
			if _, werr := w.Write(buf[:k]); werr != nil {
				return n, werr
			}
			h.Write(buf[:k])
			n += int64(k)
		}
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
