package rechunk

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/rechunker-dev/rechunker/ostree"
)

// pacmanDBDir is the pacman local database: one directory per package with desc and
// files, both made of "%SECTION%" headers followed by one value per line.
const pacmanDBDir = "/var/lib/pacman/local"

func parsePacmanSections(store *ostree.Store, f *ostree.File) (map[string][]string, error) {
	data, err := readSmallObject(store, f, maxTextObject)
	if err != nil {
		return nil, err
	}
	return parsePacmanText(data), nil
}

// parsePacmanText parses a desc or files document: "%SECTION%" lines start a section,
// an empty line ends it, other lines are its values.
func parsePacmanText(data []byte) map[string][]string {
	out := map[string][]string{}
	var sect string
	forEachLine(data, func(l string) {
		switch {
		case len(l) > 2 && l[0] == '%' && l[len(l)-1] == '%':
			sect = l
		case l == "":
			sect = ""
		case sect != "":
			out[sect] = append(out[sect], l)
		}
	})
	return out
}

// loadPacman reads the pacman database, if any: a component per pkgbase (%BASE%).
// pacman keeps no changelog, so change rates stay unknown (history decides later).
func loadPacman(ctx context.Context, store *ostree.Store, r *resolver, warn func(string)) (*pkgSource, string, error) {
	dir := r.dir(pacmanDBDir, 0)
	d := r.t.LookupDir(dir)
	if dir == "" || d == nil {
		return nil, "", nil
	}
	b := newPkgSourceBuilder("pacman", r)
	found := 0
	for _, name := range d.DirNames() {
		if err := ctx.Err(); err != nil {
			return nil, dir, err
		}
		pd := d.Dirs[name]
		desc, files := pd.Files["desc"], pd.Files["files"]
		if desc == nil {
			continue
		}
		ds, err := parsePacmanSections(store, desc)
		if err != nil {
			return nil, dir, fmt.Errorf("read %s/%s/desc: %w", dir, name, err)
		}
		if len(ds["%NAME%"]) == 0 {
			warn(fmt.Sprintf("pacman: %s/%s/desc has no %%NAME%%", dir, name))
			continue
		}
		found++
		pkg, group := ds["%NAME%"][0], ds["%NAME%"][0]
		if base := ds["%BASE%"]; len(base) > 0 {
			group = base[0]
		}
		b.installed(Package{Name: pkg, Version: first(ds["%VERSION%"]), Arch: first(ds["%ARCH%"]), Source: group})
		b.pkg(pkg, group, nil)
		if files != nil {
			fs, err := parsePacmanSections(store, files)
			if err != nil {
				return nil, dir, fmt.Errorf("read %s/%s/files: %w", dir, name, err)
			}
			for _, f := range fs["%FILES%"] {
				b.own(group, "/"+strings.TrimSuffix(f, "/"))
			}
		}
		// The package's own entry (desc, files, mtree, install scriptlet) is rewritten
		// only when the package changes: it belongs with the package's files.
		for _, n := range pd.FileNames() {
			b.own(group, path.Join(dir, name, n))
		}
	}
	if found == 0 {
		return nil, dir, errors.New("pacman database lists no package")
	}
	return b.finish(time.Time{}), dir, nil
}

// first returns a pacman section's first value, or "".
func first(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}
