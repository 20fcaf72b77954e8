package build

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/rechunker-dev/rechunker/internal/imageio"
)

// outputGuard remembers whether an oci: output directory existed before a build, so a
// failed or interrupted build can remove the blobs it wrote into a new (or empty)
// layout instead of leaving a half-written directory behind. An existing layout is left
// alone: its index.json is only replaced when the build succeeds, and the blobs added
// to it are unreferenced but harmless.
type outputGuard struct {
	dir     string
	created bool // the directory did not exist
	empty   bool // the directory existed and was empty
}

func guardOutput(output string) *outputGuard {
	ref, err := imageio.ParseReference(output)
	if err != nil || ref.Transport().Name() != "oci" {
		return nil
	}
	dir, _, _ := strings.Cut(ref.StringWithinTransport(), ":")
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &outputGuard{dir: dir, created: true}
	case err == nil && len(ents) == 0:
		return &outputGuard{dir: dir, empty: true}
	}
	return nil
}

// discard undoes what a failed build wrote.
func (g *outputGuard) discard() {
	if g == nil {
		return
	}
	if g.created {
		os.RemoveAll(g.dir)
		return
	}
	ents, err := os.ReadDir(g.dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		os.RemoveAll(filepath.Join(g.dir, e.Name()))
	}
}
