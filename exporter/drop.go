package exporter

import (
	"fmt"
	"sync"

	"github.com/rechunker-dev/rechunker/ostree"
)

// dropper counts, per content object, the layers still to be written that hold it, and
// drops the object from the store when the count reaches zero (Options.DropObjects).
// A layer reused from a previous build counts as written: its objects are not read.
type dropper struct {
	mu   sync.Mutex
	left map[ostree.Checksum]int32
}

func newDropper(layers []outLayer) *dropper {
	d := &dropper{left: map[ostree.Checksum]int32{}}
	for _, l := range layers {
		if l.spec == nil || l.spec.commit {
			continue
		}
		for k := range l.spec.numObjects() {
			d.left[l.spec.object(k).sum()]++
		}
	}
	return d
}

// layerDone drops the objects of spec that no other unwritten layer holds.
func (d *dropper) layerDone(store *ostree.Store, spec *layerSpec) error {
	if spec == nil || spec.commit {
		return nil
	}
	for k := range spec.numObjects() {
		sum := spec.object(k).sum()
		d.mu.Lock()
		d.left[sum]--
		last := d.left[sum] == 0
		d.mu.Unlock()
		if !last {
			continue
		}
		if _, err := store.Drop(sum); err != nil {
			return fmt.Errorf("drop object %s: %w", sum, err)
		}
	}
	return nil
}
