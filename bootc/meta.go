package bootc

import (
	"fmt"

	"github.com/rechunker-dev/rechunker/ostree"
)

// metaBudget is how many bytes of dirtree/dirmeta objects stay in memory before the
// rest goes to a temporary object store (a large OS tree needs a few tens of MB).
const metaBudget = 256 << 20

// metaStore keeps the commit layer's metadata objects for rebuilding the tree: in
// memory up to a budget, then in a temporary ostree.Store, so memory stays bounded
// however large the tree.
type metaStore struct {
	dir      string
	budget   int64
	mem      map[objKey][]byte
	memBytes int64
	store    *ostree.Store
}

func newMetaStore(dir string, budget int64) *metaStore {
	return &metaStore{dir: dir, budget: budget, mem: map[objKey][]byte{}}
}

func (m *metaStore) put(t ostree.ObjectType, sum ostree.Checksum, data []byte) error {
	k := objKey{sum, string(t)}
	if _, ok := m.mem[k]; ok {
		return nil
	}
	if m.memBytes+int64(len(data)) <= m.budget {
		m.mem[k] = data
		m.memBytes += int64(len(data))
		return nil
	}
	if m.store == nil {
		s, err := ostree.OpenStore(m.dir)
		if err != nil {
			return fmt.Errorf("spill metadata to disk: %w", err)
		}
		m.store = s
	}
	_, err := m.store.WriteMetadata(t, data)
	return err
}

func (m *metaStore) has(t ostree.ObjectType, sum ostree.Checksum) bool {
	if _, ok := m.mem[objKey{sum, string(t)}]; ok {
		return true
	}
	return m.store != nil && m.store.Has(sum, t)
}

func (m *metaStore) get(t ostree.ObjectType, sum ostree.Checksum) ([]byte, error) {
	if b, ok := m.mem[objKey{sum, string(t)}]; ok {
		return b, nil
	}
	if m.store == nil {
		return nil, fmt.Errorf("%s %s not found", t, sum)
	}
	return m.store.ReadMetadata(t, sum)
}
