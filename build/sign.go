package build

import (
	"fmt"

	"github.com/rechunker-dev/rechunker/ostree"
	"github.com/rechunker-dev/rechunker/ostree/sign"
)

// SignCommit returns the commit's detached metadata with a signature by each ed25519
// secret key in keys (nil without keys). It is handed to the exporter rather than
// stored, so a later unsigned build of the same commit carries no stale signature.
func SignCommit(store *ostree.Store, commit ostree.Checksum, keys []string) ([]byte, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	data, err := store.ReadMetadata(ostree.ObjCommit, commit)
	if err != nil {
		return nil, fmt.Errorf("sign commit %s: %w", commit, err)
	}
	var meta []byte
	for _, path := range keys {
		key, err := sign.LoadEd25519(path)
		if err != nil {
			return nil, fmt.Errorf("sign commit %s: %w", commit, err)
		}
		if meta, err = sign.AppendEd25519(meta, data, key); err != nil {
			return nil, fmt.Errorf("sign commit %s: %w", commit, err)
		}
	}
	return meta, nil
}
