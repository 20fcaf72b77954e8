package delta

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	imgspecs "github.com/opencontainers/image-spec/specs-go"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/rechunker-dev/rechunker/internal/fsutil"
)

// fixedTime keeps the archive reproducible: the same images give the same delta.
var fixedTime = time.Unix(0, 0).UTC()

// archiveWriter writes an OCI layout as a tar, each blob once.
type archiveWriter struct {
	tw      *tar.Writer
	written map[digest.Digest]bool
}

func (w *archiveWriter) file(name string, size int64, r io.Reader) error {
	h := &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: size, ModTime: fixedTime, Format: tar.FormatPAX}
	if err := w.tw.WriteHeader(h); err != nil {
		return err
	}
	_, err := io.Copy(w.tw, r)
	return err
}

// blob writes r as the blob d (size bytes) unless it is already in the archive.
func (w *archiveWriter) blob(d digest.Digest, size int64, r io.Reader) error {
	if w.written[d] {
		return nil
	}
	w.written[d] = true
	return w.file("blobs/sha256/"+d.Encoded(), size, r)
}

func (w *archiveWriter) bytesBlob(b []byte) (digest.Digest, error) {
	d := digest.FromBytes(b)
	return d, w.blob(d, int64(len(b)), bytes.NewReader(b))
}

// writeArtifact writes the delta archive to a temporary file in dir and returns it
// with its size; on error nothing is left. index.json and the manifests come first, so
// that a truncated delta still says which layers it lacks.
func (c *creator) writeArtifact(ctx context.Context, dir string) (string, int64, error) {
	f, err := os.CreateTemp(dir, ".delta-*.tmp")
	if err != nil {
		return "", 0, fmt.Errorf("creating delta file in %s: %w", dir, err)
	}
	fail := func(err error) (string, int64, error) {
		f.Close()
		os.Remove(f.Name())
		return "", 0, fmt.Errorf("writing delta file: %w", err)
	}
	m, err := c.deltaManifest()
	if err != nil {
		return fail(err)
	}
	w := &archiveWriter{tw: tar.NewWriter(f), written: map[digest.Digest]bool{}}
	if err := w.file("oci-layout", int64(len(ociLayout)), strings.NewReader(ociLayout)); err != nil {
		return fail(err)
	}
	if err := writeIndex(w, m); err != nil {
		return fail(err)
	}
	if err := c.writeBlobs(ctx, w, m); err != nil {
		return fail(err)
	}
	if err := w.tw.Close(); err != nil {
		return fail(err)
	}
	n, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	return f.Name(), n, nil
}

const ociLayout = `{"imageLayoutVersion":"1.0.0"}`

// deltaManifest returns the delta manifest: the target's manifest and config, then one
// descriptor per changed target layer (its tar-diff, or its original blob).
func (c *creator) deltaManifest() (imgspecv1.Manifest, error) {
	m := c.manifest()
	for _, b := range []struct {
		raw     []byte
		content string
		media   string
	}{{c.tgt.Manifest, ContentManifest, c.tgt.ManifestType}, {c.tgt.ConfigRaw, ContentConfig, imgspecv1.MediaTypeImageConfig}} {
		m.Layers = append(m.Layers, imgspecv1.Descriptor{MediaType: b.media, Digest: digest.FromBytes(b.raw),
			Size: int64(len(b.raw)), Annotations: map[string]string{AnnotContent: b.content}})
	}
	for i, l := range c.tgt.Layers {
		ann := map[string]string{AnnotContent: ContentLayer, AnnotTo: l.Digest.String()}
		switch c.layers[i].Kind {
		case KindFull:
			m.Layers = append(m.Layers, imgspecv1.Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size, Annotations: ann})
		case KindDelta:
			d, size, err := digestFile(c.deltas[i])
			if err != nil {
				return m, fmt.Errorf("target layer %d (%s): %w", i, l.Digest, err)
			}
			m.Layers = append(m.Layers, imgspecv1.Descriptor{MediaType: MediaTypeTarDiff, Digest: d, Size: size, Annotations: ann})
		}
	}
	return m, nil
}

// writeBlobs writes the blobs m names, then the empty config.
func (c *creator) writeBlobs(ctx context.Context, w *archiveWriter, m imgspecv1.Manifest) error {
	for _, d := range m.Layers {
		var err error
		switch d.Annotations[AnnotContent] {
		case ContentManifest:
			err = w.blob(d.Digest, d.Size, bytes.NewReader(c.tgt.Manifest))
		case ContentConfig:
			err = w.blob(d.Digest, d.Size, bytes.NewReader(c.tgt.ConfigRaw))
		default:
			err = c.writeLayer(ctx, w, d)
		}
		if err != nil {
			return fmt.Errorf("target layer %s: %w", d.Annotations[AnnotTo], err)
		}
	}
	_, err := w.bytesBlob(emptyConfig)
	return err
}

// writeLayer writes a changed layer's delta file or original blob, checking the
// original against its digest as it streams.
func (c *creator) writeLayer(ctx context.Context, w *archiveWriter, d imgspecv1.Descriptor) error {
	for i, l := range c.tgt.Layers {
		if l.Digest.String() != d.Annotations[AnnotTo] {
			continue
		}
		if IsDelta(d) {
			f, err := os.Open(c.deltas[i])
			if err != nil {
				return err
			}
			defer f.Close()
			return w.blob(d.Digest, d.Size, f)
		}
		rc, _, err := c.tgt.OpenLayerBlob(ctx, i)
		if err != nil {
			return err
		}
		defer rc.Close()
		return w.blob(d.Digest, d.Size, &verifyReader{r: fsutil.ContextReader(ctx, rc), want: d.Digest, v: d.Digest.Verifier()})
	}
	return fmt.Errorf("no such target layer")
}

func digestFile(path string) (digest.Digest, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	dg := digest.SHA256.Digester()
	n, err := io.Copy(dg.Hash(), f)
	return dg.Digest(), n, err
}

// manifest returns the delta manifest without its layers.
func (c *creator) manifest() imgspecv1.Manifest {
	var reused, reusedDiffIDs []string
	for _, ls := range c.layers {
		if ls.Kind == KindReused {
			reused = append(reused, ls.Digest.String())
			reusedDiffIDs = append(reusedDiffIDs, ls.DiffID.String())
		}
	}
	ann := map[string]string{
		AnnotTarget:       c.tgt.Digest.String(),
		AnnotSource:       c.old.Digest.String(),
		AnnotSourceConfig: c.old.ConfigDigest.String(),
		AnnotReused:       strings.Join(reused, ","),
		AnnotReusedDiffID: strings.Join(reusedDiffIDs, ","),
	}
	return imgspecv1.Manifest{
		Versioned:    imgspecs.Versioned{SchemaVersion: 2},
		MediaType:    imgspecv1.MediaTypeImageManifest,
		ArtifactType: ArtifactType,
		Config:       imgspecv1.Descriptor{MediaType: emptyConfigMedia, Digest: digest.FromBytes(emptyConfig), Size: 2, Data: emptyConfig},
		Subject: &imgspecv1.Descriptor{MediaType: c.tgt.ManifestType, Digest: c.tgt.Digest,
			Size: int64(len(c.tgt.Manifest))},
		Annotations: ann,
	}
}

// writeIndex writes the delta manifest and index.json naming it.
func writeIndex(w *archiveWriter, m imgspecv1.Manifest) error {
	mb, err := json.Marshal(m)
	if err != nil {
		return err
	}
	d, err := w.bytesBlob(mb)
	if err != nil {
		return err
	}
	idx := imgspecv1.Index{Versioned: imgspecs.Versioned{SchemaVersion: 2}, MediaType: imgspecv1.MediaTypeImageIndex,
		Manifests: []imgspecv1.Descriptor{{MediaType: imgspecv1.MediaTypeImageManifest, ArtifactType: ArtifactType,
			Digest: d, Size: int64(len(mb))}}}
	ib, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	return w.file("index.json", int64(len(ib)), bytes.NewReader(ib))
}
