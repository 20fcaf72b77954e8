package exporter

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"

	"github.com/rechunker-dev/rechunker/internal/imageio"
	"github.com/rechunker-dev/rechunker/rechunk"
)

// Reusing the blobs of previous builds. A previous build usually comes from a registry,
// and what it says about itself is a claim: manifest sizes, config diff_ids and layer-key
// annotations may be wrong, by tampering or by a buggy tool. So a previous blob goes into
// the new image only after this build has read it whole: its digest and size come from
// its bytes, and its decompressed stream must hash to the diff_id this build computed
// for the layer from its own store (the same diff_id is a byte-identical tar, so the same
// objects at the same paths). A blob that fails is reported once, with the layer it was
// meant for, and never tried again in this build; the layer is built from the store.

// errOtherCompression marks a previous blob that is fine but compressed differently from
// what this build writes: not worth a warning.
var errOtherCompression = errors.New("compressed differently")

// errRefused marks a previous blob that already failed verification in this build.
var errRefused = errors.New("refused earlier in this build")

// errUncompressedTransport marks a previous blob its transport cannot serve as it was
// written: containers-storage keeps layers uncompressed and serves them under their
// diff_id. Nothing is wrong with the previous build, so the export counts these layers
// and reports them once (uncompressedTransport), not one warning per layer.
var errUncompressedTransport = errors.New("the transport serves uncompressed blobs")

// prevBlob is a layer blob of a previous build.
type prevBlob struct {
	ref    string
	index  int // layer index in the previous image
	digest digest.Digest
}

func (pb prevBlob) String() string {
	return fmt.Sprintf("layer %d (%s) of previous build %s", pb.index, pb.digest, pb.ref)
}

// prevKeyed is what a previous build's AnnLayerKey says about one of its layers.
type prevKeyed struct {
	diffID  digest.Digest
	tarSize int64
	blob    prevBlob
}

// previousBuilds indexes what previous builds claim and remembers which of their blobs
// this build refused.
type previousBuilds struct {
	byDiffID map[digest.Digest]prevBlob // the config's diff_id claims
	keys     map[string]prevKeyed       // the layer-key annotations' claims
	// unkeyed is set when some previous build (another tool's, an older version's) has
	// chunk layers but no keys, so only a layer's diff_id can tell if it is unchanged.
	unkeyed bool
	pool    *sourcePool

	mu  sync.Mutex
	bad map[digest.Digest]bool

	// uncompressed counts the layers whose previous blob the transport serves
	// uncompressed, reported in one line at the end of the layers.
	uncompressed uncompressedTransport
}

func newPreviousBuilds(prev []rechunk.Previous, o imageio.Options) *previousBuilds {
	p := &previousBuilds{byDiffID: map[digest.Digest]prevBlob{}, keys: map[string]prevKeyed{},
		pool: newSourcePool(o), bad: map[digest.Digest]bool{}}
	for _, img := range prev {
		keyed := false
		for i, l := range img.Layers {
			d, err := digest.Parse(l.DiffID)
			blobDigest, berr := digest.Parse(l.Digest)
			if err != nil || berr != nil {
				continue
			}
			pb := prevBlob{ref: img.Ref, index: i, digest: blobDigest}
			if _, ok := p.byDiffID[d]; !ok {
				p.byDiffID[d] = pb // the first previous build given wins
			}
			key, size, ok := parseLayerKey(l.Annotations[AnnLayerKey])
			if !ok {
				continue
			}
			keyed = true
			if _, dup := p.keys[key]; !dup {
				p.keys[key] = prevKeyed{diffID: d, tarSize: size, blob: pb}
			}
		}
		if !keyed && len(img.Layers) > 1 {
			p.unkeyed = true
		}
	}
	return p
}

// mayHave says whether a previous build might hold the layer with this key, so that
// hashing the layer's tar before compressing it may save the compression.
func (p *previousBuilds) mayHave(key string) bool {
	_, ok := p.keys[key]
	return ok || p.unkeyed
}

// checkKey compares a previous build's claim for key with the diff_id this build
// computed; a wrong claim marks that previous layer as lying.
func (p *previousBuilds) checkKey(key string, diffID digest.Digest) error {
	pk, ok := p.keys[key]
	if !ok || pk.diffID == diffID {
		return nil
	}
	p.refuse(pk.blob.digest)
	return fmt.Errorf("%s: its layer-key annotation claims diff_id %s for this layer's content, which hashes to %s",
		pk.blob, pk.diffID, diffID)
}

func (p *previousBuilds) refuse(d digest.Digest) {
	p.mu.Lock()
	p.bad[d] = true
	p.mu.Unlock()
}

func (p *previousBuilds) refused(d digest.Digest) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.bad[d]
}

// copyVerified puts the previous blob claimed for diff_id want into dst after checking
// it, and returns its size as read.
func (p *previousBuilds) copyVerified(ctx context.Context, want digest.Digest, comp compressor, dst blobDir) (prevBlob, int64, error) {
	pb, ok := p.byDiffID[want]
	if !ok {
		return pb, 0, os.ErrNotExist
	}
	if p.refused(pb.digest) {
		return pb, 0, errRefused
	}
	existed := dst.has(pb.digest, -1)
	size, err := p.pool.copyBlob(ctx, pb, want, comp, dst)
	if err == nil && comp.chunked() {
		// Plain zstd has the same media type; only a blob with a table of contents
		// can stand in for a zstd:chunked one.
		if _, cerr := zstdChunkedAnnotations(dst.path(pb.digest)); cerr != nil {
			if !existed {
				_ = os.Remove(dst.path(pb.digest))
			}
			err = fmt.Errorf("%v: %w", cerr, errOtherCompression)
		}
	}
	if err != nil && !errors.Is(err, errOtherCompression) && !errors.Is(err, errUncompressedTransport) {
		p.refuse(pb.digest)
	}
	return pb, size, err
}

// uncompressedTransport counts the layers rebuilt from the store because their previous
// blob's transport serves it uncompressed (errUncompressedTransport), and how many of
// them came out as the previous blob (the same compressed bytes).
type uncompressedTransport struct {
	mu     sync.Mutex
	layers map[int]digest.Digest // layer index -> the previous blob it could not copy
}

// add records that layer i could not copy previous blob d.
func (u *uncompressedTransport) add(i int, d digest.Digest) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.layers == nil {
		u.layers = map[int]digest.Digest{}
	}
	u.layers[i] = d
}

// summary is the one line that reports the counted layers, given the layers as built;
// "" when there are none.
func (u *uncompressedTransport) summary(layers []LayerResult) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	n, same := 0, 0
	for i, d := range u.layers {
		if i < 0 || i >= len(layers) || layers[i].Reused != "" {
			continue // reused after all (from the store's cache)
		}
		n++
		if layers[i].Digest == d {
			same++
		}
	}
	if n == 0 {
		return ""
	}
	what := "1 layer"
	if n > 1 {
		what = fmt.Sprintf("%d layers", n)
	}
	msg := what + " rebuilt from the store because the previous build's transport serves uncompressed blobs (e.g. containers-storage)"
	switch {
	case same == n:
		return msg + "; the rebuilt blobs are identical to the previous build's"
	case same == 0:
		return msg + "; same content, compressed differently from the previous build"
	default:
		return msg + fmt.Sprintf("; same content, %d of them compressed differently from the previous build", n-same)
	}
}

func (p *previousBuilds) close() { p.pool.close() }

func formatLayerKey(key string, tarSize int64) string {
	return key + " " + strconv.FormatInt(tarSize, 10)
}

func parseLayerKey(v string) (string, int64, bool) {
	key, size, ok := strings.Cut(v, " ")
	if !ok || len(key) != sha256.Size*2 {
		return "", 0, false
	}
	if _, err := hex.DecodeString(key); err != nil {
		return "", 0, false
	}
	n, err := strconv.ParseInt(size, 10, 64)
	if err != nil || n < 0 {
		return "", 0, false
	}
	return key, n, true
}

// sourcePool opens previous images lazily and serializes reads from each.
type sourcePool struct {
	o    imageio.Options
	mu   sync.Mutex
	srcs map[string]*pooledSource
}

type pooledSource struct {
	mu  sync.Mutex
	src *imageio.Source
	err error
}

func newSourcePool(o imageio.Options) *sourcePool {
	return &sourcePool{o: o, srcs: map[string]*pooledSource{}}
}

func (p *sourcePool) get(ctx context.Context, ref string) *pooledSource {
	p.mu.Lock()
	ps, ok := p.srcs[ref]
	if !ok {
		ps = &pooledSource{}
		p.srcs[ref] = ps
	}
	p.mu.Unlock()
	ps.mu.Lock()
	if !ok {
		ps.src, ps.err = imageio.Open(ctx, ref, p.o)
	}
	return ps // locked
}

// copyBlob copies previous blob pb into dst, checking its digest and that it decompresses
// to diff_id want; it returns the blob's size. A blob already in dst (an output layout
// shared with the previous build) is checked the same way. It refuses blobs compressed
// differently from what comp asks for.
func (p *sourcePool) copyBlob(ctx context.Context, pb prevBlob, want digest.Digest, comp compressor, dst blobDir) (int64, error) {
	ps := p.get(ctx, pb.ref)
	defer ps.mu.Unlock()
	if ps.err != nil {
		return 0, ps.err
	}
	src := ps.src
	if pb.index >= len(src.Layers) || src.Layers[pb.index].Digest != pb.digest {
		return 0, fmt.Errorf("the image no longer has blob %s as layer %d", pb.digest, pb.index)
	}
	if mt := src.Layers[pb.index].MediaType; !comp.accepts(mt) {
		return 0, fmt.Errorf("blob is %s, not %s: %w", mt, comp.mediaType, errOtherCompression)
	}
	if dst.has(pb.digest, -1) {
		f, err := os.Open(dst.path(pb.digest))
		if err != nil {
			return 0, err
		}
		defer f.Close()
		return checkBlob(ctx, f, io.Discard, pb.digest, want, comp)
	}
	if dir := ociLayoutDir(pb.ref); dir != "" {
		n, err := linkVerified(ctx, layoutBlobs(dir).path(pb.digest), pb.digest, want, src.Layers[pb.index].Size, comp, dst)
		if !errors.Is(err, errNoLink) {
			return n, err
		}
	}
	if src.LayerBlobDigest(pb.index) != pb.digest {
		// e.g. containers-storage keeps layers uncompressed: the compressed blob is gone.
		return 0, fmt.Errorf("transport serves %s, not the compressed blob: %w", src.LayerBlobDigest(pb.index), errUncompressedTransport)
	}
	rc, _, err := src.OpenLayerBlob(ctx, pb.index)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	tmp, err := dst.tempFile()
	if err != nil {
		return 0, err
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	n, err := checkBlob(ctx, rc, tmp, pb.digest, want, comp)
	if err != nil {
		return 0, err
	}
	if err := tmp.Close(); err != nil {
		return 0, err
	}
	return n, dst.commit(tmp.Name(), pb.digest)
}

// checkBlob reads a compressed blob from r whole, copying it to w, and checks that its
// bytes hash to d and that it decompresses (the way comp compresses) to diff_id want.
func checkBlob(ctx context.Context, r io.Reader, w io.Writer, d, want digest.Digest, comp compressor) (int64, error) {
	dw := newDigestWriter()
	tee := io.TeeReader(r, io.MultiWriter(w, dw))
	dec, closeDec, err := comp.decompress(tee)
	if err != nil {
		return 0, fmt.Errorf("decompress blob %s: %w", d, err)
	}
	defer closeDec()
	diff := newDigestWriter()
	if _, err := copyCtx(ctx, diff, io.Discard, dec); err != nil {
		return 0, fmt.Errorf("decompress blob %s: %w", d, err)
	}
	// Bytes after the compressed stream still belong to the blob and its digest.
	if _, err := copyCtx(ctx, io.Discard, io.Discard, tee); err != nil {
		return 0, fmt.Errorf("read blob %s: %w", d, err)
	}
	if got := dw.digest(); got != d {
		return 0, fmt.Errorf("blob hashes to %s (%d bytes), not %s", got, dw.n, d)
	}
	if got := diff.digest(); got != want {
		return 0, fmt.Errorf("blob decompresses to diff_id %s, not %s: it does not hold this layer's content", got, want)
	}
	return dw.n, nil
}

// decompress returns a reader of the uncompressed stream of a blob c wrote.
func (c compressor) decompress(r io.Reader) (io.Reader, func(), error) {
	switch c.name {
	case CompressionGzip:
		zr, err := kgzip.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		return zr, func() { zr.Close() }, nil
	case CompressionZstd, CompressionZstdChunked:
		// zstd:chunked is a zstd stream whose table of contents sits in skippable frames.
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, nil, err
		}
		return zr, zr.Close, nil
	default:
		return r, func() {}, nil
	}
}

func (p *sourcePool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ps := range p.srcs {
		if ps.src != nil {
			ps.src.Close()
		}
	}
}
