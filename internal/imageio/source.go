// Package imageio reads container images through containers/image (go.podman.io/image),
// so every transport it knows works as a source: oci:, oci-archive:, docker-archive:,
// containers-storage:, docker://, dir:. It owns no format knowledge beyond the OCI
// manifest and config; ostree and bootc semantics live elsewhere.
package imageio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/rechunker-dev/rechunker/internal/fsutil"
	"go.podman.io/image/v5/image"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/pkg/blobinfocache/none"
	"go.podman.io/image/v5/pkg/compression"
	"go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/transports/alltransports"
	"go.podman.io/image/v5/types"
)

// Options configure access to images.
type Options struct {
	// CacheDir holds containers/image's blob-info cache; empty means a private temp dir.
	CacheDir string
	// InsecureSkipTLSVerify disables TLS verification for docker:// (tests, local registries).
	InsecureSkipTLSVerify bool
	// RegistriesConfPath overrides /etc/containers/registries.conf (hermetic tests).
	RegistriesConfPath string
	// Arch, OS and Variant select an instance from a multi-platform index; empty OS and
	// Arch mean the host's. When set, a single image must be for that platform.
	Arch, OS, Variant string
}

// Platform returns the platform o asks for (empty fields: see Options.Arch).
func (o Options) Platform() Platform {
	return Platform{OS: o.OS, Architecture: o.Arch, Variant: o.Variant}
}

// WithPlatform returns o asking for p.
func (o Options) WithPlatform(p Platform) Options {
	o.OS, o.Arch, o.Variant = p.OS, p.Architecture, p.Variant
	return o
}

// SystemContext returns the containers/image context for o.
func (o Options) SystemContext() *types.SystemContext {
	sys := &types.SystemContext{
		BlobInfoCacheDir:         o.CacheDir,
		SystemRegistriesConfPath: o.RegistriesConfPath,
		ArchitectureChoice:       o.Arch,
		OSChoice:                 o.OS,
		VariantChoice:            o.Variant,
	}
	if o.CacheDir == "" {
		sys.BlobInfoCacheDir = filepath.Join(os.TempDir(), "rechunker-blobinfo")
	}
	if o.InsecureSkipTLSVerify {
		sys.DockerInsecureSkipTLSVerify = types.OptionalBoolTrue
		sys.OCIInsecureSkipTLSVerify = true
	}
	return sys
}

// ParseReference parses a transport:reference string. A bare path to an existing
// directory with an oci-layout file is accepted as oci:PATH for convenience.
func ParseReference(s string) (types.ImageReference, error) {
	ref, err := alltransports.ParseImageName(s)
	if err == nil {
		return ref, nil
	}
	if _, statErr := os.Stat(filepath.Join(s, "oci-layout")); statErr == nil {
		return alltransports.ParseImageName("oci:" + s)
	}
	return nil, fmt.Errorf("parse image reference %q (want TRANSPORT:REF, e.g. oci:DIR:TAG, containers-storage:NAME, docker://REF): %w", s, err)
}

// Layer describes one layer of a source image.
type Layer struct {
	Digest      digest.Digest // blob digest as stored by the transport
	Size        int64         // -1 when unknown
	MediaType   string
	DiffID      digest.Digest // from the config's rootfs.diff_ids
	Annotations map[string]string
}

// Source is an opened image.
type Source struct {
	Ref          types.ImageReference
	Manifest     []byte
	ManifestType string
	Digest       digest.Digest // manifest digest
	ConfigRaw    []byte
	Config       imgspecv1.Image
	ConfigDigest digest.Digest
	// Layers as the manifest lists them (compressed digests, annotations).
	Layers []Layer
	// Platform is what the config says the image is for.
	Platform Platform
	// IndexDigest is the digest of the image index (manifest list) the image was chosen
	// from by platform; empty when the reference names a single image.
	IndexDigest digest.Digest

	src        types.ImageSource
	img        types.Image
	copyLayers []types.BlobInfo // what GetBlob accepts (uncompressed for containers-storage)
}

// ErrNotFound is returned by Open when the image does not exist.
var ErrNotFound = errors.New("image not found")

// Open opens an image for reading; Close it when done.
func Open(ctx context.Context, refStr string, o Options) (*Source, error) {
	ref, err := ParseReference(refStr)
	if err != nil {
		return nil, err
	}
	sys := o.SystemContext()
	if err := os.MkdirAll(sys.BlobInfoCacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("open image %s: %w", refStr, err)
	}
	src, err := ref.NewImageSource(ctx, sys)
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("open image %s: %w: %v", refStr, ErrNotFound, err)
		}
		return nil, fmt.Errorf("open image %s: %w", refStr, err)
	}
	s := &Source{Ref: ref, src: src}
	if err := s.load(ctx, sys, o.Platform()); err != nil {
		src.Close()
		return nil, fmt.Errorf("open image %s: %w", refStr, err)
	}
	return s, nil
}

func isNotFound(err error) bool {
	msg := err.Error()
	for _, s := range []string{"does not exist", "not found", "no such file", "unknown", "manifest unknown", "no descriptor found"} {
		if strings.Contains(strings.ToLower(msg), s) {
			return true
		}
	}
	return errors.Is(err, os.ErrNotExist)
}

// load reads the manifest (choosing the instance of an index for want) and the config,
// and checks that they agree with each other and with what was asked for.
func (s *Source) load(ctx context.Context, sys *types.SystemContext, want Platform) error {
	instance, listed, err := s.chooseInstance(ctx, sys, want)
	if err != nil {
		return err
	}
	img, err := image.FromUnparsedImage(ctx, sys, image.UnparsedInstance(s.src, instance))
	if err != nil {
		return fmt.Errorf("read manifest: %w", err)
	}
	s.img = img
	s.Manifest, s.ManifestType, err = img.Manifest(ctx)
	if err != nil {
		return fmt.Errorf("read manifest: %w", err)
	}
	s.Digest, err = manifest.Digest(s.Manifest)
	if err != nil {
		return fmt.Errorf("digest manifest: %w", err)
	}
	s.ConfigRaw, err = img.ConfigBlob(ctx)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	s.ConfigDigest = digest.FromBytes(s.ConfigRaw)
	if err := json.Unmarshal(s.ConfigRaw, &s.Config); err != nil {
		return fmt.Errorf("parse config: %w", err)
	}
	if err := s.checkPlatform(want, listed); err != nil {
		return err
	}
	if err := s.loadLayers(); err != nil {
		return fmt.Errorf("manifest %s: %w", s.Digest, err)
	}
	return s.loadCopyLayers(ctx)
}

// loadLayers fills s.Layers from the manifest and the config's diff_ids, refusing what
// cannot be a bootable image or what makes the two disagree.
func (s *Source) loadLayers() error {
	m, err := manifest.FromBlob(s.Manifest, s.ManifestType)
	if err != nil {
		return fmt.Errorf("parse manifest: %w", err)
	}
	var infos []manifest.LayerInfo
	for _, li := range m.LayerInfos() {
		if !li.EmptyLayer {
			infos = append(infos, li)
		}
	}
	if len(infos) == 0 {
		return errors.New("the image has no layers: nothing to boot")
	}
	diffIDs := s.Config.RootFS.DiffIDs
	if len(diffIDs) != len(infos) {
		return fmt.Errorf("config %s lists %d diff_ids for %d manifest layers", s.ConfigDigest, len(diffIDs), len(infos))
	}
	for i, li := range infos {
		if err := checkDeclaredSize(i, li, s.ManifestType); err != nil {
			return err
		}
		s.Layers = append(s.Layers, Layer{Digest: li.Digest, Size: li.Size, MediaType: li.MediaType,
			DiffID: diffIDs[i], Annotations: li.Annotations})
	}
	return nil
}

// checkDeclaredSize refuses layer sizes no manifest can truthfully declare: a layer blob
// is never empty (even a gzipped empty tar has 32 bytes), and "unknown" (-1) is what
// containers/image reports for schema 1 manifests, which carry no sizes, not a value
// another manifest may state.
func checkDeclaredSize(i int, li manifest.LayerInfo, manifestType string) error {
	switch {
	case li.Size > 0:
		return nil
	case li.Size == -1 && isSchema1(manifestType):
		return nil
	case li.Size == 0:
		return fmt.Errorf("layer %d (%s): the manifest says it has 0 bytes", i, li.Digest)
	default:
		return fmt.Errorf("layer %d (%s): the manifest declares a negative size (%d)", i, li.Digest, li.Size)
	}
}

func isSchema1(mt string) bool {
	return mt == manifest.DockerV2Schema1MediaType || mt == manifest.DockerV2Schema1SignedMediaType
}

// loadCopyLayers records what GetBlob serves for each layer; containers-storage serves
// uncompressed blobs under other digests and sizes than the manifest's.
func (s *Source) loadCopyLayers(ctx context.Context) error {
	copyInfos, err := s.img.LayerInfosForCopy(ctx)
	if err != nil {
		return fmt.Errorf("read layer infos: %w", err)
	}
	if copyInfos == nil {
		copyInfos = s.img.LayerInfos()
	}
	s.copyLayers = append(s.copyLayers, copyInfos...)
	if len(s.copyLayers) != len(s.Layers) {
		return fmt.Errorf("manifest lists %d layers but the transport has %d", len(s.Layers), len(s.copyLayers))
	}
	return nil
}

// Close releases the source.
func (s *Source) Close() error {
	if s.src == nil {
		return nil
	}
	err := s.src.Close()
	ReleaseStore(s.Ref)
	return err
}

// ReleaseStore shuts down the containers-storage store behind ref, if any, so that the
// overlay driver's mount of its graph root does not outlive the command (it would keep
// the storage directory busy). The store reloads itself if it is used again.
func ReleaseStore(ref types.ImageReference) {
	if ref == nil {
		return
	}
	st, ok := ref.Transport().(storage.StoreTransport)
	if !ok {
		return
	}
	if store := st.GetStoreIfSet(); store != nil {
		_, _ = store.Shutdown(false)
	}
}

// Labels returns the config labels (never nil).
func (s *Source) Labels() map[string]string {
	if s.Config.Config.Labels == nil {
		return map[string]string{}
	}
	return s.Config.Config.Labels
}

// OpenLayerBlob returns layer i's blob as the transport stores it (possibly compressed).
// When the blob's size is known, a Read that finds more bytes, or an end of the stream
// before that many, fails instead of returning them or io.EOF, so read the blob to the end
// before trusting it.
func (s *Source) OpenLayerBlob(ctx context.Context, i int) (io.ReadCloser, int64, error) {
	if i < 0 || i >= len(s.copyLayers) {
		return nil, 0, fmt.Errorf("layer %d out of range (image has %d)", i, len(s.copyLayers))
	}
	// Transports record blob locations in the cache (docker:// dereferences it), so it must not be nil.
	info := s.copyLayers[i]
	rc, size, err := s.src.GetBlob(ctx, info, none.NoCache)
	if err != nil {
		return nil, 0, fmt.Errorf("read layer %d (%s): %w", i, info.Digest, err)
	}
	return s.sized(i, rc), size, nil
}

// sized enforces layer i's declared blob size on rc, when the manifest gives one
// (containers-storage may not know an uncompressed size).
func (s *Source) sized(i int, rc io.ReadCloser) io.ReadCloser {
	info := s.copyLayers[i]
	if info.Size <= 0 {
		return rc
	}
	return &sizedReader{ReadCloser: rc, index: i, digest: info.Digest, want: info.Size}
}

// sizedReader fails a blob that runs past, or ends before, the size its descriptor
// declares: a registry or layout serving other bytes than the manifest describes is not
// trusted even before the digest is checked, and a too-long stream is cut off early.
type sizedReader struct {
	io.ReadCloser
	index   int
	digest  digest.Digest
	want, n int64
	err     error
}

func (r *sizedReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.ReadCloser.Read(p)
	r.n += int64(n)
	switch {
	case r.n > r.want:
		r.err = fmt.Errorf("layer %d (%s): blob is longer than the %d bytes the manifest declares", r.index, r.digest, r.want)
		return n - int(r.n-r.want), r.err
	case err == io.EOF && r.n != r.want:
		r.err = fmt.Errorf("layer %d (%s): blob ends after %d bytes, the manifest declares %d", r.index, r.digest, r.n, r.want)
		return n, r.err
	}
	return n, err
}

// LayerBlobFile returns layer i's blob as an open regular file when the transport keeps
// it as one on this machine (an oci: layout, a dir: directory), and nil when it does
// not. The caller owns the file; nothing about its bytes is checked yet.
func (s *Source) LayerBlobFile(ctx context.Context, i int) (*os.File, error) {
	if i < 0 || i >= len(s.copyLayers) {
		return nil, fmt.Errorf("layer %d out of range (image has %d)", i, len(s.copyLayers))
	}
	info := s.copyLayers[i]
	if len(info.URLs) != 0 {
		return nil, nil // the transport may fetch it from elsewhere
	}
	rc, _, err := s.src.GetBlob(ctx, info, none.NoCache)
	if err != nil {
		return nil, fmt.Errorf("read layer %d (%s): %w", i, info.Digest, err)
	}
	if f, ok := rc.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			return f, nil
		}
	}
	rc.Close()
	return nil, nil
}

// LayerBlobDigest returns the digest GetBlob would verify for layer i.
func (s *Source) LayerBlobDigest(i int) digest.Digest { return s.copyLayers[i].Digest }

// LayerStream reads one layer blob once, hashing the blob as stored and the uncompressed
// stream as it is read, so digest and diff_id checks cost no second read. Read returns
// the uncompressed stream; gzip, zstd, xz and bzip2 are detected from the data, not
// trusted from the media type.
type LayerStream struct {
	index   int
	raw     io.ReadCloser
	ahead   *fsutil.ReadAhead // reads raw, counted and hashed, on its own goroutine
	rawHash digest.Digester
	rawN    int64
	dec     io.ReadCloser
	// decClosed is set once dec is closed (it must not be closed twice).
	decClosed bool
	diff      digest.Digester
	diffIsRaw bool              // uncompressed blob: the diff_id is the blob digest
	decAhead  *fsutil.ReadAhead // reads dec, hashed into diff, unless diffIsRaw
	r         io.Reader         // decAhead, or dec if diffIsRaw
}

// OpenLayerStream opens layer i for a single streaming pass.
func (s *Source) OpenLayerStream(ctx context.Context, i int) (*LayerStream, error) {
	return s.OpenLayerStreamTap(ctx, i, nil)
}

// OpenLayerStreamTap is OpenLayerStream that also writes every byte of the blob, as it
// is read and in order, to tap (when not nil): for checks of the compressed bytes
// themselves, such as a zstd:chunked table of contents.
func (s *Source) OpenLayerStreamTap(ctx context.Context, i int, tap io.Writer) (*LayerStream, error) {
	raw, _, err := s.OpenLayerBlob(ctx, i)
	if err != nil {
		return nil, err
	}
	return s.openStream(ctx, i, raw, tap)
}

// openStream is OpenLayerStreamTap over raw, layer i's blob as stored; it owns raw.
func (s *Source) openStream(ctx context.Context, i int, raw io.ReadCloser, tap io.Writer) (*LayerStream, error) {
	ls := &LayerStream{index: i, raw: raw, rawHash: digesterFor(s.LayerBlobDigest(i))}
	if i < len(s.Layers) {
		ls.diff = digesterFor(s.Layers[i].DiffID)
	} else {
		ls.diff = digest.Canonical.Digester()
	}
	// The blob is read and hashed on a goroutine of its own, in large pieces, ahead of
	// the parser: the tar reader asks for 512-byte headers and small files one at a
	// time, the gzip reader for 4 KiB, and the blob digest would otherwise be computed
	// by the goroutine that parses and stores the files.
	pool := fsutil.NewChunkPool(layerReadChunk)
	var sink io.Writer = ls.rawHash.Hash()
	if tap != nil {
		sink = io.MultiWriter(sink, tap)
	}
	ls.ahead = fsutil.NewReadAhead(countingReader{fsutil.ContextReader(ctx, raw), &ls.rawN},
		pool, layerReadDepth, sink)
	dec, compressed, err := compression.AutoDecompress(ls.ahead)
	if err != nil {
		raw.Close()
		ls.ahead.Close()
		return nil, fmt.Errorf("decompress layer %d (%s): %w", i, s.LayerBlobDigest(i), err)
	}
	ls.dec = dec
	if !compressed && ls.diff.Digest().Algorithm() == ls.rawHash.Digest().Algorithm() {
		// An uncompressed blob is its own tar stream (containers-storage serves layers
		// that way): its diff_id is its blob digest, so hash it once.
		ls.r, ls.diffIsRaw = dec, true
		return ls, nil
	}
	// Decompressing and hashing the tar stream get a goroutine too.
	ls.decAhead = fsutil.NewReadAhead(dec, pool, layerReadDepth, ls.diff.Hash())
	ls.r = ls.decAhead
	return ls, nil
}

func digesterFor(d digest.Digest) digest.Digester {
	if d.Validate() == nil && d.Algorithm().Available() {
		return d.Algorithm().Digester()
	}
	return digest.Canonical.Digester()
}

// A layer blob is read in chunks of layerReadChunk bytes, at most layerReadDepth ahead.
const (
	layerReadChunk = 1 << 20
	layerReadDepth = 4
)

type countingReader struct {
	r io.Reader
	n *int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += int64(n)
	return n, err
}

// Read reads the uncompressed stream.
func (ls *LayerStream) Read(p []byte) (int, error) { return ls.r.Read(p) }

// Finish drains what the reader left (tar padding, trailing data) so that both digests
// cover the whole blob, and returns them with the blob's size.
func (ls *LayerStream) Finish() (blob, diffID digest.Digest, size int64, err error) {
	if _, err := io.Copy(io.Discard, ls.r); err != nil {
		return "", "", 0, fmt.Errorf("read layer %d: %w", ls.index, err)
	}
	blob, err = ls.BlobDigest()
	if err != nil {
		return "", "", 0, fmt.Errorf("read layer %d blob: %w", ls.index, err)
	}
	if ls.diffIsRaw {
		return blob, blob, ls.rawN, nil
	}
	return blob, ls.diff.Digest(), ls.rawN, nil
}

// BlobDigest drains only the raw blob and returns its digest, e.g. to tell a corrupted
// blob from a bad tar stream after a parse error. The decompressor is stopped first:
// the gzip decompressor reads ahead in a goroutine, and what it consumed is already
// hashed, so the direct read continues where it stopped.
func (ls *LayerStream) BlobDigest() (digest.Digest, error) {
	ls.closeDec()
	if _, err := io.Copy(io.Discard, ls.ahead); err != nil {
		return "", err
	}
	return ls.rawHash.Digest(), nil
}

func (ls *LayerStream) closeDec() error {
	if ls.decClosed {
		return nil
	}
	ls.decClosed = true
	if ls.decAhead != nil {
		ls.decAhead.Close()
	}
	return ls.dec.Close()
}

// Close releases the blob. The blob is closed before the read-ahead goroutines are
// waited for, so that a read blocked on a network stream ends.
func (ls *LayerStream) Close() error {
	err := ls.raw.Close()
	if e := ls.closeDec(); err == nil {
		err = e
	}
	ls.ahead.Close()
	return err
}

// OpenLayerVerified returns layer i's uncompressed stream and checks what it reads: at
// the end of the stream, the raw blob against the blob digest and the uncompressed
// stream against the config's diff_id; a mismatch is the error of the Read that would
// have returned io.EOF, so read it to the end (tar readers stop early: drain the rest)
// before trusting it.
func (s *Source) OpenLayerVerified(ctx context.Context, i int) (io.ReadCloser, error) {
	return s.OpenLayerVerifiedFrom(ctx, i, nil)
}

// OpenLayerVerifiedFrom is OpenLayerVerified reading layer i's blob from blob (for one
// obtained with LayerBlobFile), or from the transport when blob is nil. The size the
// manifest declares is enforced as OpenLayerBlob does.
func (s *Source) OpenLayerVerifiedFrom(ctx context.Context, i int, blob io.Reader) (io.ReadCloser, error) {
	want := s.LayerBlobDigest(i)
	if err := want.Validate(); err != nil {
		return nil, fmt.Errorf("layer %d: blob digest %q: %w", i, want, err)
	}
	var diffID digest.Digest
	if i < len(s.Layers) {
		diffID = s.Layers[i].DiffID
	}
	if diffID != "" {
		if err := diffID.Validate(); err != nil {
			return nil, fmt.Errorf("layer %d: diff_id %q: %w", i, diffID, err)
		}
	}
	var ls *LayerStream
	var err error
	if blob == nil {
		ls, err = s.OpenLayerStream(ctx, i)
	} else {
		ls, err = s.openStream(ctx, i, s.sized(i, io.NopCloser(blob)), nil)
	}
	if err != nil {
		return nil, err
	}
	return &verifiedLayer{LayerStream: ls, blobWant: want, diffWant: diffID}, nil
}

type verifiedLayer struct {
	*LayerStream
	blobWant, diffWant digest.Digest
	err                error
}

func (v *verifiedLayer) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.LayerStream.Read(p)
	if err == io.EOF {
		if verr := v.verify(); verr != nil {
			v.err = verr
			return n, verr
		}
	} else if err != nil {
		v.err = err // the caller names the layer
	}
	return n, err
}

func (v *verifiedLayer) verify() error {
	blob, diffID, _, err := v.Finish()
	if err != nil {
		return err
	}
	if blob != v.blobWant {
		return fmt.Errorf("layer %d blob digest mismatch: expected %s, read %s", v.index, v.blobWant, blob)
	}
	if v.diffWant != "" && diffID != v.diffWant {
		return fmt.Errorf("layer %d diff_id mismatch: the config says %s, the uncompressed content is %s", v.index, v.diffWant, diffID)
	}
	return nil
}
