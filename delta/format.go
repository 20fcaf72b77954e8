// Package delta makes and applies oci-delta artifacts (containers/oci-delta): a tar of
// an OCI image layout whose single manifest carries, for one source image and one
// target image, the target's manifest and config, a tar-diff delta (or the original
// blob when that is smaller) for each target layer the source lacks, and the list of
// target layers the source already has.
package delta

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// The artifact's vocabulary, as the oci-delta format names it.
const (
	ArtifactType        = "application/vnd.io.github.containers.oci-delta.v1"
	MediaTypeTarDiff    = "application/vnd.tar-diff"
	AnnotTarget         = "io.github.containers.delta.target"
	AnnotSource         = "io.github.containers.delta.source"
	AnnotSourceConfig   = "io.github.containers.delta.source-config"
	AnnotReused         = "io.github.containers.delta.reused"
	AnnotReusedDiffID   = "io.github.containers.delta.reused-diff-id"
	AnnotContent        = "io.github.containers.delta.content"
	AnnotTo             = "io.github.containers.delta.to"
	ContentManifest     = "image-manifest"
	ContentConfig       = "image-config"
	ContentLayer        = "image-layer"
	emptyConfigMedia    = "application/vnd.oci.empty.v1+json"
	maxMetadataBlobSize = 4 << 20 // manifests, configs, index.json: bigger is an attack, not an image
)

// emptyConfig is the OCI empty descriptor's 2-byte blob.
var emptyConfig = []byte("{}")

// Artifact is a parsed delta file. Blob sections are checked against their digests
// when read (Blob), metadata blobs when parsed.
type Artifact struct {
	Manifest       imgspecv1.Manifest // the delta's own manifest
	TargetDigest   digest.Digest
	TargetManifest []byte
	Target         imgspecv1.Manifest
	TargetConfig   []byte
	Config         imgspecv1.Image // the target's config
	Source         digest.Digest   // source manifest digest
	SourceConfig   digest.Digest
	Reused         map[digest.Digest]bool // target layer digests the source has
	// Layers maps a target layer digest to the artifact layer that rebuilds it.
	Layers map[digest.Digest]imgspecv1.Descriptor
	blobs  map[digest.Digest]*io.SectionReader
	damage error // why the archive could not be read to its end (truncated), or nil
}

// ParseArtifact reads a delta file's tar index and metadata; r must stay open while
// the artifact is used.
func ParseArtifact(r io.ReaderAt, size int64) (*Artifact, error) {
	files, scanErr := scanTar(r, size)
	a := &Artifact{blobs: map[digest.Digest]*io.SectionReader{}, damage: scanErr}
	for name, sec := range files {
		if d, ok := blobName(name); ok {
			a.blobs[d] = sec
		}
	}
	idx, ok := files["index.json"]
	if !ok {
		return nil, errors.Join(errors.New("delta archive has no index.json"), scanErr)
	}
	mdesc, err := a.manifestDesc(idx)
	if err != nil {
		return nil, err
	}
	raw, err := a.metadata(mdesc)
	if err != nil {
		return nil, fmt.Errorf("delta manifest: %w", err)
	}
	if err := json.Unmarshal(raw, &a.Manifest); err != nil {
		return nil, fmt.Errorf("delta manifest: %w", err)
	}
	if err := a.checkManifest(); err != nil {
		return nil, err
	}
	return a, a.readTarget()
}

// scanTar maps each regular file of the archive to its section of r. A damaged
// archive yields the entries before the damage and the error, so that what is missing
// can be said per layer.
func scanTar(r io.ReaderAt, size int64) (map[string]*io.SectionReader, error) {
	cr := &countingReader{r: io.NewSectionReader(r, 0, size)}
	tr := tar.NewReader(cr)
	files := map[string]*io.SectionReader{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, nil
		}
		if err != nil {
			return files, fmt.Errorf("delta archive is damaged or truncated after %d bytes: %w", cr.n, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		// archive/tar reads whole 512-byte blocks and nothing ahead, so the count is
		// where the entry's data starts.
		if h.Size < 0 || cr.n+h.Size > size {
			return files, fmt.Errorf("delta archive is truncated: entry %q ends past its end", h.Name)
		}
		files[path.Clean(strings.TrimPrefix(h.Name, "./"))] = io.NewSectionReader(r, cr.n, h.Size)
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func blobName(name string) (digest.Digest, bool) {
	dir, file := path.Split(name)
	if dir != "blobs/sha256/" {
		return "", false
	}
	d := digest.NewDigestFromEncoded(digest.SHA256, file)
	return d, d.Validate() == nil
}

// manifestDesc returns the one manifest index.json names.
func (a *Artifact) manifestDesc(idx *io.SectionReader) (imgspecv1.Descriptor, error) {
	if idx.Size() > maxMetadataBlobSize {
		return imgspecv1.Descriptor{}, errors.New("delta index.json is too large")
	}
	var index imgspecv1.Index
	if err := json.NewDecoder(io.NewSectionReader(idx, 0, idx.Size())).Decode(&index); err != nil {
		return imgspecv1.Descriptor{}, fmt.Errorf("delta index.json: %w", err)
	}
	if len(index.Manifests) != 1 {
		return imgspecv1.Descriptor{}, fmt.Errorf("delta index.json names %d manifests, want 1", len(index.Manifests))
	}
	return index.Manifests[0], nil
}

// metadata reads a small blob whole and checks it against its descriptor.
func (a *Artifact) metadata(d imgspecv1.Descriptor) ([]byte, error) {
	if d.Size < 0 || d.Size > maxMetadataBlobSize {
		return nil, fmt.Errorf("blob %s: size %d out of range", d.Digest, d.Size)
	}
	rc, err := a.Blob(d)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(rc)
}

// Blob returns the blob d names; reading it to the end checks its size and digest,
// so a short or altered blob fails at its last Read instead of returning io.EOF.
func (a *Artifact) Blob(d imgspecv1.Descriptor) (io.Reader, error) {
	if err := d.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("blob %q: %w", d.Digest, err)
	}
	sec, ok := a.blobs[d.Digest]
	if !ok && a.damage != nil {
		return nil, fmt.Errorf("blob %s is missing: %w", d.Digest, a.damage)
	}
	if !ok {
		return nil, fmt.Errorf("blob %s is missing from the delta archive", d.Digest)
	}
	if sec.Size() != d.Size {
		return nil, fmt.Errorf("blob %s: %d bytes in the archive, descriptor says %d", d.Digest, sec.Size(), d.Size)
	}
	return &verifyReader{r: io.NewSectionReader(sec, 0, sec.Size()), want: d.Digest, v: d.Digest.Verifier()}, nil
}

type verifyReader struct {
	r    io.Reader
	want digest.Digest
	v    digest.Verifier
}

func (v *verifyReader) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.v.Write(p[:n])
	if err == io.EOF && !v.v.Verified() {
		return n, fmt.Errorf("blob %s: content does not match its digest (corrupted delta)", v.want)
	}
	return n, err
}

// checkManifest checks the delta manifest's type, config and annotations.
func (a *Artifact) checkManifest() error {
	m := a.Manifest
	if m.ArtifactType != ArtifactType {
		return fmt.Errorf("not an oci-delta artifact (artifactType %q)", m.ArtifactType)
	}
	if m.Config.MediaType != emptyConfigMedia || m.Config.Digest != digest.FromBytes(emptyConfig) {
		return fmt.Errorf("delta manifest: config is %s %s, want the empty config", m.Config.MediaType, m.Config.Digest)
	}
	if m.Subject == nil {
		return errors.New("delta manifest has no subject (the target image)")
	}
	var err error
	ann := m.Annotations
	if a.TargetDigest, err = parseDigest(ann, AnnotTarget); err != nil {
		return err
	}
	if a.Source, err = parseDigest(ann, AnnotSource); err != nil {
		return err
	}
	if a.SourceConfig, err = parseDigest(ann, AnnotSourceConfig); err != nil {
		return err
	}
	if m.Subject.Digest != a.TargetDigest {
		return fmt.Errorf("delta manifest: subject %s differs from target %s", m.Subject.Digest, a.TargetDigest)
	}
	a.Reused = map[digest.Digest]bool{}
	reused, err := parseDigestList(ann[AnnotReused])
	for _, d := range reused {
		a.Reused[d] = true
	}
	return err
}

func parseDigest(ann map[string]string, key string) (digest.Digest, error) {
	d, err := digest.Parse(ann[key])
	if err != nil {
		return "", fmt.Errorf("delta manifest: annotation %s: %w", key, err)
	}
	return d, nil
}

func parseDigestList(s string) ([]digest.Digest, error) {
	if s == "" {
		return nil, nil
	}
	var out []digest.Digest
	for _, f := range strings.Split(s, ",") {
		d, err := digest.Parse(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("delta manifest: reused list: %w", err)
		}
		out = append(out, d)
	}
	return out, nil
}

// readTarget reads the embedded target manifest and config and indexes the layers.
func (a *Artifact) readTarget() error {
	a.Layers = map[digest.Digest]imgspecv1.Descriptor{}
	for _, l := range a.Manifest.Layers {
		var err error
		switch l.Annotations[AnnotContent] {
		case ContentManifest:
			a.TargetManifest, err = a.metadata(l)
		case ContentConfig:
			a.TargetConfig, err = a.metadata(l)
		case ContentLayer:
			err = a.addLayer(l)
		default:
			err = fmt.Errorf("unknown content type %q", l.Annotations[AnnotContent])
		}
		if err != nil {
			return fmt.Errorf("delta layer %s: %w", l.Digest, err)
		}
	}
	return a.checkTarget()
}

func (a *Artifact) addLayer(l imgspecv1.Descriptor) error {
	to, err := digest.Parse(l.Annotations[AnnotTo])
	if err != nil {
		return fmt.Errorf("annotation %s: %w", AnnotTo, err)
	}
	if _, dup := a.Layers[to]; dup {
		return fmt.Errorf("second delta for target layer %s", to)
	}
	a.Layers[to] = l
	return nil
}

// checkTarget checks the target manifest against the subject, the config against the
// manifest, and that every target layer is either reused or rebuilt.
func (a *Artifact) checkTarget() error {
	if a.TargetManifest == nil || a.TargetConfig == nil {
		return errors.New("delta archive lacks the target manifest or config")
	}
	if d := digest.FromBytes(a.TargetManifest); d != a.TargetDigest {
		return fmt.Errorf("embedded target manifest is %s, the delta names %s", d, a.TargetDigest)
	}
	if err := json.Unmarshal(a.TargetManifest, &a.Target); err != nil {
		return fmt.Errorf("target manifest: %w", err)
	}
	if d := digest.FromBytes(a.TargetConfig); d != a.Target.Config.Digest {
		return fmt.Errorf("embedded target config is %s, the target manifest names %s", d, a.Target.Config.Digest)
	}
	if err := json.Unmarshal(a.TargetConfig, &a.Config); err != nil {
		return fmt.Errorf("target config: %w", err)
	}
	if len(a.Config.RootFS.DiffIDs) != len(a.Target.Layers) {
		return fmt.Errorf("target config has %d diff_ids for %d layers", len(a.Config.RootFS.DiffIDs), len(a.Target.Layers))
	}
	for i, l := range a.Target.Layers {
		_, rebuilt := a.Layers[l.Digest]
		if !rebuilt && !a.Reused[l.Digest] {
			return fmt.Errorf("target layer %d (%s) is neither in the delta nor reused", i, l.Digest)
		}
	}
	return nil
}

// IsDelta reports whether an artifact layer is a tar-diff (else the original blob).
func IsDelta(l imgspecv1.Descriptor) bool { return l.MediaType == MediaTypeTarDiff }
