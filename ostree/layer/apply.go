package layer

import (
	"fmt"
	"strings"

	"github.com/rechunker-dev/rechunker/ostree"
)

type opKind byte

// Operation kinds; the values are part of the record format.
const (
	opDir      opKind = 1 // create a directory or update an existing one's metadata
	opFile     opKind = 2 // regular file or symlink whose content object is in the store
	opLink     opKind = 3 // hardlink: path gets the File at target
	opWhiteout opKind = 4 // remove path as the lower layers had it
	opOpaque   opKind = 5 // hide the lower layers' entries under path
	opSkip     opKind = 6 // special file ostree cannot store: remove path, warn
	opEnd      opKind = 0x7f
)

// op is one effect of a layer entry. Paths are cleaned, relative to the root, unresolved
// ("" is the root); they are resolved against the tree when applied, so a record replays
// correctly over whatever lower layers it is applied to.
type op struct {
	kind   opKind
	path   string
	meta   ostree.DirMeta // opDir
	file   ostree.File    // opFile
	offset uint64         // opFile in a record: in-place payload offset + 1, or 0
	target string         // opLink: hardlink target path; opSkip: what was skipped
}

// applier applies ops to a tree with OCI layer semantics.
type applier struct {
	t    *ostree.Tree
	warn func(string)
	// seenFiles and seenDirs hold the entries this layer created or changed; whiteouts
	// and opaque markers hide only lower layers' entries, so they leave these alone. under
	// holds the directories with a seen entry below them. Keyed by the tree's own values
	// rather than by path, so a layer of many files allocates no path strings.
	seenFiles map[*ostree.File]bool
	seenDirs  map[*ostree.Dir]bool
	under     map[*ostree.Dir]bool
	stats     Stats
	// stack and names are resolveDir's scratch space.
	stack []*ostree.Dir
	names []string
}

func newApplier(t *ostree.Tree, warn func(string)) *applier {
	if warn == nil {
		warn = func(string) {}
	}
	return &applier{t: t, warn: warn, seenFiles: map[*ostree.File]bool{},
		seenDirs: map[*ostree.Dir]bool{}, under: map[*ostree.Dir]bool{}}
}

// markUnder records that something below the directories of stack (a resolved path from
// the root) was created or changed.
func (a *applier) markUnder(stack []*ostree.Dir) {
	for i := len(stack) - 1; i >= 0; i-- {
		if a.under[stack[i]] {
			return
		}
		a.under[stack[i]] = true
	}
}

func implicitDir() *ostree.Dir {
	// What container engines create for a missing parent: root-owned, 0755.
	return ostree.NewDir(ostree.DirMeta{Mode: ostree.ModeDir | 0o755})
}

// resolveDir walks the directory path p from the root, following symlinks the way an
// engine unpacking the layer inside the image root would (".." and absolute targets stay
// inside the root). Missing directories are created when create is set, otherwise dir is
// nil. It returns the directories of the resolved path from the root, the directory last.
//
// The returned slice is the applier's scratch space, valid until the next call: a
// rebuild resolves every path of every layer record, and fresh slices per call were a
// fifth of its garbage.
func (a *applier) resolveDir(p string, create bool) ([]*ostree.Dir, error) {
	stack := append(a.stack[:0], a.t.Root)
	names := a.names[:0]
	defer func() { a.stack, a.names = stack[:0], names[:0] }()
	hops := 0
	for rest := p; rest != ""; {
		var c string
		c, rest, _ = strings.Cut(rest, "/")
		cur := stack[len(stack)-1]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(names) > 0 {
				names = names[:len(names)-1]
				stack = stack[:len(stack)-1]
			}
			continue
		}
		if sub := cur.Dirs[c]; sub != nil {
			stack = append(stack, sub)
			names = append(names, c)
			continue
		}
		if f := cur.Files[c]; f != nil {
			if !f.Header.IsSymlink() {
				return nil, fmt.Errorf("%q is not a directory", joinNames(append(names, c)))
			}
			if hops++; hops > maxSymlinkHops {
				return nil, fmt.Errorf("too many levels of symbolic links resolving %q", p)
			}
			target := f.Header.Target
			if strings.HasPrefix(target, "/") {
				stack, names = stack[:1], names[:0]
			}
			if rest == "" {
				rest = target
			} else {
				rest = target + "/" + rest
			}
			continue
		}
		if !create {
			return nil, nil
		}
		sub := implicitDir()
		cur.Dirs[strings.Clone(c)] = sub // see resolveParent
		a.markUnder(stack)
		a.seenDirs[sub] = true
		names = append(names, c)
		stack = append(stack, sub)
	}
	return stack, nil
}

func joinNames(n []string) string { return strings.Join(n, "/") }

// resolveParent resolves the directory holding path p (p != "") and returns it with the
// entry's name and the resolved directories from the root (the directory last).
func (a *applier) resolveParent(p string, create bool) (*ostree.Dir, string, []*ostree.Dir, error) {
	dir, name := "", p
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		// The name becomes a map key of the tree for the life of the build: a copy
		// keeps the entry's whole path from staying reachable through it.
		dir, name = p[:i], strings.Clone(p[i+1:])
	}
	stack, err := a.resolveDir(dir, create)
	if err != nil || stack == nil {
		return nil, "", nil, err
	}
	return stack[len(stack)-1], name, stack, nil
}

func (a *applier) apply(o op) error {
	a.stats.Entries++
	switch o.kind {
	case opDir:
		a.stats.Dirs++
		if o.path == "" {
			a.t.Root.Meta = o.meta
			a.seenDirs[a.t.Root] = true
			return nil
		}
		d, name, stack, err := a.resolveParent(o.path, true)
		if err != nil {
			return err
		}
		delete(d.Files, name)
		sub := d.Dirs[name]
		if sub != nil {
			sub.Meta = o.meta // a directory entry over a directory keeps its children
		} else {
			sub = ostree.NewDir(o.meta)
			d.Dirs[name] = sub
		}
		a.seenDirs[sub] = true
		a.markUnder(stack)
	case opFile:
		if o.file.Header.IsSymlink() {
			a.stats.Symlinks++
		} else {
			a.stats.Files++
			a.stats.Bytes += o.file.Size
		}
		return a.putFile(o.path, o.file)
	case opLink:
		a.stats.Hardlinks++
		td, tname, _, err := a.resolveParent(o.target, false)
		if err != nil {
			return fmt.Errorf("hardlink target %q: %w", o.target, err)
		}
		var f *ostree.File
		if td != nil {
			if td.Dirs[tname] != nil {
				return fmt.Errorf("hardlink target %q is a directory", o.target)
			}
			f = td.Files[tname]
		}
		if f == nil {
			return fmt.Errorf("hardlink target %q does not exist in this or a lower layer", o.target)
		}
		return a.putFile(o.path, *f)
	case opWhiteout:
		a.stats.Whiteouts++
		d, name, _, err := a.resolveParent(o.path, false)
		if err != nil || d == nil {
			return nil // nothing of the lower layers to hide
		}
		a.hide(d, name)
	case opOpaque:
		a.stats.Opaques++
		stack, err := a.resolveDir(o.path, false)
		if err != nil || stack == nil {
			return nil
		}
		d := stack[len(stack)-1]
		for _, n := range d.FileNames() {
			a.hide(d, n)
		}
		for _, n := range d.DirNames() {
			a.hide(d, n)
		}
	case opSkip:
		a.stats.Skipped++
		d, name, stack, err := a.resolveParent(o.path, true)
		if err != nil {
			return err
		}
		delete(d.Files, name)
		delete(d.Dirs, name)
		a.markUnder(stack)
		a.warn(fmt.Sprintf("skipping %s /%s: ostree cannot store it", o.target, o.path))
	default:
		return fmt.Errorf("unknown operation %d", o.kind)
	}
	return nil
}

func (a *applier) putFile(p string, f ostree.File) error {
	d, name, stack, err := a.resolveParent(p, true)
	if err != nil {
		return err
	}
	delete(d.Dirs, name) // a file replaces a directory and everything below it
	f.Header = a.t.InternHeader(*f.Header)
	nf := a.t.NewFile(f)
	d.Files[name] = nf
	a.seenFiles[nf] = true
	a.markUnder(stack)
	return nil
}

// hide removes the lower layers' entry name from d, keeping what this layer created at
// or below it.
func (a *applier) hide(d *ostree.Dir, name string) {
	if f := d.Files[name]; f != nil && a.seenFiles[f] {
		return
	}
	delete(d.Files, name)
	sub := d.Dirs[name]
	if sub == nil {
		return
	}
	if !a.seenDirs[sub] && !a.under[sub] {
		delete(d.Dirs, name)
		return
	}
	for _, n := range sub.FileNames() {
		a.hide(sub, n)
	}
	for _, n := range sub.DirNames() {
		a.hide(sub, n)
	}
}
