package ostree

import (
	"errors"
	"io/fs"
	"os"
	"sync"
)

// A transient store keeps the content objects a build writes only until the build has
// used them: on a CI runner that starts from an empty store and throws it away, the
// objects of an image input are otherwise a second copy of the image next to the output.
// The store tracks which content objects this Store value wrote (objects that were there
// before belong to other builds and stay); the exporter drops each one once the layers
// that hold it are written, and DropWritten removes the rest at the end. A base object
// that a derived (relabelled) object shares is pinned until the end, since which of the
// two the export reads last is not known.

// written is the set of content objects written while tracking is on.
type written struct {
	mu   sync.Mutex
	on   bool
	sums map[Checksum]bool // value: pinned
}

// TrackWrites makes the store remember the content objects it writes from now on, for
// Drop and DropWritten.
func (s *Store) TrackWrites() {
	s.written.mu.Lock()
	defer s.written.mu.Unlock()
	s.written.on = true
	if s.written.sums == nil {
		s.written.sums = map[Checksum]bool{}
	}
}

// noteWritten records a content object this Store value published.
func (s *Store) noteWritten(c Checksum) {
	w := &s.written
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.on {
		if _, ok := w.sums[c]; !ok {
			w.sums[c] = false
		}
	}
}

// pin keeps a tracked object until DropWritten.
func (s *Store) pin(c Checksum) {
	w := &s.written
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.sums[c]; ok {
		w.sums[c] = true
	}
}

// Drop deletes content object c if this Store value wrote it while tracking and it is
// not pinned; it reports whether it did.
func (s *Store) Drop(c Checksum) (bool, error) {
	w := &s.written
	w.mu.Lock()
	pinned, ok := w.sums[c]
	if ok && !pinned {
		delete(w.sums, c)
	}
	w.mu.Unlock()
	if !ok || pinned {
		return false, nil
	}
	return true, s.removeContent(c)
}

// DropWritten deletes every content object still tracked, and stops tracking.
func (s *Store) DropWritten() error {
	w := &s.written
	w.mu.Lock()
	sums := w.sums
	w.sums, w.on = nil, false
	w.mu.Unlock()
	var errs []error
	for c := range sums {
		if err := s.removeContent(c); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeContent deletes the file of a stored content object, plain or compressed.
func (s *Store) removeContent(c Checksum) error {
	for _, p := range []string{s.ObjectFile(c, ObjFile), s.compressedFile(c)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}
