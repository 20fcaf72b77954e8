package bootc

import (
	"archive/tar"
	"context"
	"fmt"
	"io"

	digest "github.com/opencontainers/go-digest"
	"go.podman.io/image/v5/pkg/compression"

	"github.com/rechunker-dev/rechunker/internal/fsutil"
	"github.com/rechunker-dev/rechunker/internal/imageio"
)

// layerStream reads one layer blob once, hashing the blob as stored and the
// uncompressed tar as it is parsed, so digest and diff_id checks cost no second read.
type layerStream struct {
	raw     io.ReadCloser
	rawHash digest.Digester
	rawN    int64
	dec     io.ReadCloser
	// decClosed is set once dec is closed (it must not be closed twice).
	decClosed bool
	diff      digest.Digester
	Tar       *tar.Reader
}

type countingReader struct {
	r io.Reader
	n *int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += int64(n)
	return n, err
}

func digesterFor(d digest.Digest) digest.Digester {
	if d.Validate() == nil && d.Algorithm().Available() {
		return d.Algorithm().Digester()
	}
	return digest.Canonical.Digester()
}

// openLayerStream opens layer i of src for a single streaming pass.
func openLayerStream(ctx context.Context, src *imageio.Source, i int) (*layerStream, error) {
	raw, _, err := src.OpenLayerBlob(ctx, i)
	if err != nil {
		return nil, err
	}
	s := &layerStream{raw: raw, rawHash: digesterFor(src.LayerBlobDigest(i)), diff: digesterFor(src.Layers[i].DiffID)}
	tee := io.TeeReader(countingReader{fsutil.ContextReader(ctx, raw), &s.rawN}, s.rawHash.Hash())
	dec, _, err := compression.AutoDecompress(tee)
	if err != nil {
		raw.Close()
		return nil, fmt.Errorf("decompress: %w", err)
	}
	s.dec = dec
	s.Tar = tar.NewReader(io.TeeReader(dec, s.diff.Hash()))
	return s, nil
}

// finish drains what the tar reader left (padding, trailing data) so that both digests
// cover the whole blob, and returns them with the blob size.
func (s *layerStream) finish() (blob, diffID digest.Digest, size int64, err error) {
	if _, err := io.Copy(s.diff.Hash(), s.dec); err != nil {
		return "", "", 0, fmt.Errorf("read layer: %w", err)
	}
	s.closeDec()
	if _, err := io.Copy(s.rawHash.Hash(), countingReader{s.raw, &s.rawN}); err != nil {
		return "", "", 0, fmt.Errorf("read layer blob: %w", err)
	}
	return s.rawHash.Digest(), s.diff.Digest(), s.rawN, nil
}

// blobDigest drains only the raw blob, to tell a corrupted blob from a bad tar stream
// after a parse error.
func (s *layerStream) blobDigest() (digest.Digest, error) {
	s.closeDec()
	if _, err := io.Copy(s.rawHash.Hash(), countingReader{s.raw, &s.rawN}); err != nil {
		return "", err
	}
	return s.rawHash.Digest(), nil
}

// closeDec stops the decompressor before the raw blob is read directly: the gzip
// decompressor containers/image uses reads ahead in a goroutine, and the bytes it already
// consumed went through the raw hash, so the direct read continues where it stopped.
func (s *layerStream) closeDec() error {
	if s.decClosed {
		return nil
	}
	s.decClosed = true
	return s.dec.Close()
}

func (s *layerStream) Close() error {
	err := s.closeDec()
	if e := s.raw.Close(); err == nil {
		err = e
	}
	return err
}
