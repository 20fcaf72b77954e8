// Package compression forwards github.com/containers/image/v5/pkg/compression, the path
// github.com/containers/tar-diff imports, to go.podman.io/image/v5/pkg/compression, the
// same library at its current path (see this module's go.mod for why).
package compression

import (
	"io"

	podman "go.podman.io/image/v5/pkg/compression"
)

// AutoDecompress is go.podman.io/image/v5/pkg/compression.AutoDecompress: the stream
// decompressed by the algorithm its first bytes name, and whether it was compressed.
func AutoDecompress(stream io.Reader) (io.ReadCloser, bool, error) {
	return podman.AutoDecompress(stream)
}
