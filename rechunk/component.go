package rechunk

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/rechunker-dev/rechunker/ostree"
)

// Names of the synthetic components.
const (
	// UnclaimedComponent is the catch-all for files no source claims.
	UnclaimedComponent = "rechunker/unclaimed"
	// PackageDBComponent holds the package databases themselves (rpmdb, dpkg status...).
	PackageDBComponent = "rechunker/package-database"
	// KernelComponent holds what no package owns under usr/lib/modules/<kver>: the
	// initramfs, generated module indexes, and the kernel itself in package-less images.
	KernelComponent = "initramfs"
	// bigFilePrefix starts the name of a component made of one big unowned file.
	bigFilePrefix = "file:"
	// dirPrefix starts the name of a component made of a state directory.
	dirPrefix = "dir:"
)

// dedupMinSize is the smallest object kept in a single shared component when several
// components contain it.
const dedupMinSize = 16 << 10

// componentSource is one origin of components. Sources are asked in priority order; the
// first one that claims a path owns it.
type componentSource interface {
	// kind names the source ("rpm", "xattr", ...) in ComponentInfo.Source and warnings.
	kind() string
	// claim returns the component owning file f at p (an absolute commit path), or "".
	// i is the file's position in the resolver's list of the tree's files.
	claim(i int, p string, f *ostree.File) string
	// info describes one of the components the source claimed.
	info(component string) sourceInfo
}

// delegator is a source that claims paths on behalf of another source's components.
type delegator interface {
	delegate(claim string) (componentSource, string)
}

// sourceInfo is what a source knows about one of its components.
type sourceInfo struct {
	// exclusive components get layers of their own (user.component).
	exclusive bool
	// packages are the binary packages grouped into the component.
	packages []string
	// changesPerYear estimates how often the component changes; negative means unknown.
	changesPerYear float64
	// alwaysChanges marks content that changes with every build (catch-all, package db).
	alwaysChanges bool
	// volatilePart marks the volatile part of a split package (volatile.go).
	volatilePart bool
}

// component is one unit of change: every path of the tree belongs to exactly one.
type component struct {
	name   string
	source string
	info   sourceInfo
	files  []FileRef // sorted by path
	// at is where files starts in the planner's one list of the tree's files, of which
	// every component's files are a run (assign, splitVolatile).
	at     int
	size   int64 // payload bytes of its distinct objects
	digest [8]byte
	// p is the probability that the component changes in one upgrade.
	p float64
}

// treeFiles lists every regular file and symlink of the tree in walk order; each
// directory's files form one run, sorted by name, reported to span when it is not nil.
func treeFiles(t *ostree.Tree, span func(d *ostree.Dir, first, n int)) []FileRef {
	var count func(d *ostree.Dir) int
	count = func(d *ostree.Dir) int {
		n := len(d.Files)
		for _, sub := range d.Dirs {
			n += count(sub)
		}
		return n
	}
	// Exact capacity: this is one of the largest allocations of a plan.
	out := make([]FileRef, 0, count(t.Root))
	var walk func(dir string, d *ostree.Dir)
	walk = func(dir string, d *ostree.Dir) {
		first := len(out)
		for _, n := range d.FileNames() {
			out = append(out, FileRef{Dir: dir, Name: n, File: d.Files[n]})
		}
		if span != nil {
			span(d, first, len(out)-first)
		}
		for _, n := range d.DirNames() {
			walk(dir+n+"/", d.Dirs[n])
		}
	}
	walk("/", t.Root)
	return out
}

func joinPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// sanitizeName makes a component name safe for the comma-joined ostree.components
// annotation and for the history label.
func sanitizeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ',' || r < 0x20 || r == 0x7f {
			return '_'
		}
		return r
	}, s)
}

// assign asks the sources in order for every file and builds the components. Paths no
// source claims go to UnclaimedComponent. A content object used by several shared
// (non-exclusive) components is kept in one of them only, so it is stored once.
// files is reordered in place: the components' file lists are runs of it, so the
// planner holds one list of the tree's files, not two.
func assign(files []FileRef, sources []componentSource) []*component {
	a := &assigner{files: files, sources: sources, ids: map[fileOwner]int32{}}
	a.claim()
	a.dedup()
	return a.components()
}

// assigner is assign's state.
type assigner struct {
	files   []FileRef
	sources []componentSource
	owners  []int32 // per file: an index in keys
	keys    []fileOwner
	ids     map[fileOwner]int32
}

// fileOwner is the component a file goes to: the index of the source that claimed it
// (len(sources) for UnclaimedComponent) and the component's name.
type fileOwner struct {
	src  int
	name string
}

func (a *assigner) unclaimed() int { return len(a.sources) }

func (a *assigner) exclusive(o fileOwner) bool {
	return o.src < a.unclaimed() && a.sources[o.src].info(o.name).exclusive
}

// id returns the index of o in a.keys, adding it when new.
func (a *assigner) id(o fileOwner) int32 {
	if i, ok := a.ids[o]; ok {
		return i
	}
	i := int32(len(a.keys))
	a.keys = append(a.keys, o)
	a.ids[o] = i
	return i
}

// claim gives every file to the first source that claims it.
func (a *assigner) claim() {
	a.owners = make([]int32, len(a.files))
	index := map[componentSource]int{}
	for si, s := range a.sources {
		index[s] = si
	}
	unclaimed := a.id(fileOwner{src: a.unclaimed(), name: UnclaimedComponent})
	for i, fe := range a.files {
		a.owners[i] = unclaimed
		p := fe.Path() // garbage right away: the sources keep nothing per path
		for si, s := range a.sources {
			c := s.claim(i, p, fe.File)
			if c == "" {
				continue
			}
			if d, ok := s.(delegator); ok {
				target, name := d.delegate(c)
				if ti, ok := index[target]; ok {
					si, c = ti, name
				}
			}
			a.owners[i] = a.id(fileOwner{src: si, name: sanitizeName(c)})
			break
		}
	}
}

// dedup gives each big object among shared components one owner: the highest-priority
// source, then the smallest name. Stable across builds, and packages win over
// catch-alls. Small objects (empty files, symlinks, licenses) are left duplicated:
// storing them twice costs little, while moving them would tie unrelated components
// together.
func (a *assigner) dedup() {
	exclusive := make([]bool, len(a.keys))
	for i, k := range a.keys {
		exclusive[i] = a.exclusive(k)
	}
	best := map[ostree.Checksum]int32{}
	for i, fe := range a.files {
		o := a.owners[i]
		if exclusive[o] || fe.File.Size < dedupMinSize {
			continue
		}
		b, ok := best[fe.File.Checksum]
		if !ok || a.before(o, b) {
			best[fe.File.Checksum] = o
		}
	}
	for i, fe := range a.files {
		if b, ok := best[fe.File.Checksum]; ok && !exclusive[a.owners[i]] {
			a.owners[i] = b
		}
	}
}

// before orders owners by source priority, then name.
func (a *assigner) before(x, y int32) bool {
	kx, ky := a.keys[x], a.keys[y]
	if kx.src != ky.src {
		return kx.src < ky.src
	}
	return kx.name < ky.name
}

// components groups the files by owner, sorted by name. Two sources may use the same
// name (an xattr component called "bash" and the bash package): the lower-priority
// one is renamed.
func (a *assigner) components() []*component {
	order := make([]int32, len(a.keys))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(x, y int32) int {
		if a.before(x, y) {
			return -1
		}
		return 1
	})
	// Counting sort of the files by owner, in place: dest gives each file its slot.
	start := make([]int32, len(a.keys)+1)
	for _, o := range a.owners {
		start[o+1]++
	}
	for i := 1; i < len(start); i++ {
		start[i] += start[i-1]
	}
	dest := make([]int32, len(a.files))
	next := slices.Clone(start[:len(a.keys)])
	for i, o := range a.owners {
		dest[i] = next[o]
		next[o]++
	}
	permute(a.files, dest)
	nameSrc := map[string]int{}
	out := make([]*component, 0, len(a.keys))
	for _, id := range order {
		if start[id] == start[id+1] {
			continue // every file went to another owner in dedup
		}
		k := a.keys[id]
		c := &component{name: k.name, files: a.files[start[id]:start[id+1]:start[id+1]], at: int(start[id])}
		if k.src == a.unclaimed() {
			c.source = "unclaimed"
			c.info = sourceInfo{alwaysChanges: true, changesPerYear: -1}
		} else {
			c.source = a.sources[k.src].kind()
			c.info = a.sources[k.src].info(k.name)
		}
		if s, taken := nameSrc[c.name]; taken && s != k.src {
			c.name = c.name + "@" + c.source
		}
		nameSrc[c.name] = k.src
		c.finish()
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// permute moves files[i] to files[dest[i]] for every i, in place; dest is used up.
func permute(files []FileRef, dest []int32) {
	for i := range files {
		for int(dest[i]) != i {
			j := dest[i]
			files[i], files[j] = files[j], files[i]
			dest[i], dest[j] = dest[j], dest[i]
		}
	}
}

// finish sorts the files and computes size and digest.
func (c *component) finish() {
	slices.SortFunc(c.files, ComparePaths)
	c.size = distinctSize(c.files)
	// Entries go to the hash through one buffer: io.WriteString on a hash copies
	// every string, which was a rebuild's third-largest garbage.
	h := sha256.New()
	buf := make([]byte, 0, 32<<10)
	for _, fe := range c.files {
		if len(buf) > cap(buf)-len(fe.Dir)-len(fe.Name)-1-len(fe.File.Checksum) {
			h.Write(buf)
			buf = buf[:0]
		}
		buf = append(append(append(buf, fe.Dir...), fe.Name...), 0)
		buf = append(buf, fe.File.Checksum[:]...)
	}
	h.Write(buf)
	var sum [32]byte
	h.Sum(sum[:0])
	copy(c.digest[:], sum[:8])
}

// distinctSize is the payload size of the distinct objects of refs, counted on a
// checksum-sorted list of entries: a map keyed by checksum costs far more per entry.
// The list carries each checksum's first 8 bytes, so that the sort, which runs over
// every file of the image twice per plan, rarely has to follow a pointer.
func distinctSize(refs []FileRef) int64 {
	type object struct {
		prefix uint64
		f      *ostree.File
	}
	objs := make([]object, len(refs))
	for i, r := range refs {
		objs[i] = object{binary.BigEndian.Uint64(r.File.Checksum[:8]), r.File}
	}
	slices.SortFunc(objs, func(a, b object) int {
		if c := cmp.Compare(a.prefix, b.prefix); c != 0 {
			return c
		}
		return bytes.Compare(a.f.Checksum[8:], b.f.Checksum[8:])
	})
	var size int64
	for i, o := range objs {
		if i == 0 || o.f.Checksum != objs[i-1].f.Checksum {
			size += o.f.Size
		}
	}
	return size
}

func (c *component) digestHex() string { return hex.EncodeToString(c.digest[:]) }

// copyOut copies the content of the files at the given commit paths into dir (by base
// name), so that libraries that want a real file (sqlite, go-rpmdb) can open it. It
// returns the local path of the first file.
func copyOut(ctx context.Context, store *ostree.Store, t *ostree.Tree, dir string, paths ...string) (string, error) {
	var first string
	for _, p := range paths {
		f := t.LookupFile(p)
		if f == nil {
			continue
		}
		if f.Header.IsSymlink() {
			return "", fmt.Errorf("copy %s: is a symlink", p)
		}
		dst := filepath.Join(dir, path.Base(p))
		if err := copyObject(ctx, store, f, dst); err != nil {
			return "", fmt.Errorf("copy %s: %w", p, err)
		}
		if first == "" {
			first = dst
		}
	}
	return first, nil
}

func copyObject(ctx context.Context, store *ostree.Store, f *ostree.File, dst string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	obj, err := store.OpenFileContent(f)
	if err != nil {
		return err
	}
	defer obj.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, obj); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// openObject opens the payload of the file at commit path p.
func openObject(store *ostree.Store, f *ostree.File) (io.ReadCloser, error) {
	if f == nil || f.Header.IsSymlink() {
		return nil, fmt.Errorf("not a regular file")
	}
	return store.OpenFileContent(f)
}
