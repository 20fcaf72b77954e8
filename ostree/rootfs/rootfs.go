// Package rootfs imports a directory on disk into an ostree tree and object store,
// reading it exactly as `ostree commit DIR` does: lstat modes (type, setuid, setgid and
// sticky bits), numeric ownership, xattrs (sorted, empty values dropped), byte-exact
// symlink targets, hardlinks as paths sharing one content object, and empty directories.
// It never follows symlinks inside the directory and never reads a whole file into memory.
// It knows nothing of container images; ostree/layer handles tar layers.
package rootfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"unicode/utf8"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/rechunker-dev/rechunker/internal/fsutil"
	"github.com/rechunker-dev/rechunker/ostree"
)

// Options controls Import.
type Options struct {
	// SkipSpecial skips device nodes, fifos and sockets with a warning instead of failing;
	// ostree cannot store them.
	SkipSpecial bool
	// Warn receives warnings; nil discards them.
	Warn func(string)
	// Workers is how many files are hashed and stored in parallel; 0 means GOMAXPROCS.
	Workers int
	// Copy stores a copy of every file in the store. By default the store reads each
	// file where it is (ostree.Store.AddInPlace), so the directory must stay unchanged
	// while the Store is used; a changed file fails the read, never gives wrong bytes.
	Copy bool
}

// job is one content object to store: a regular file or symlink seen for the first time.
type job struct {
	path string // on disk
	rel  string // inside the tree, for messages
	file *ostree.File
	ino  inode // regular files: checked again after open
}

type inode struct{ dev, ino uint64 }

// Import reads dir into a new tree, streaming every file's content into store. Checksums
// do not depend on the order files are read in. The tree is not finalized.
func Import(ctx context.Context, dir string, store *ostree.Store, o Options) (*ostree.Tree, error) {
	if o.Warn == nil {
		o.Warn = func(string) {}
	}
	workers := o.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	// In-place objects name their files by absolute path: a later chdir must not matter.
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", dir, err)
	}
	dir = abs
	var st unix.Stat_t
	// The root itself may be given through a symlink; nothing below it is followed.
	if err := unix.Stat(dir, &st); err != nil {
		return nil, fmt.Errorf("import %s: %w", dir, &os.PathError{Op: "stat", Path: dir, Err: err})
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, fmt.Errorf("import %s: not a directory", dir)
	}

	tree := &ostree.Tree{}
	im := &importer{o: o, store: store, tree: tree, links: map[inode]*ostree.File{}}
	jobs := make(chan job, 4*workers)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(jobs)
		root, err := im.dirMeta(dir, &st)
		if err != nil {
			return fmt.Errorf("import /: %w", err)
		}
		tree.Root = ostree.NewDir(root)
		return im.walk(gctx, dir, "/", tree.Root, jobs)
	})
	for i := 0; i < workers; i++ {
		g.Go(func() error {
			buf := make([]byte, 256<<10)
			for j := range jobs {
				if err := im.store1(gctx, j, buf); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// Hardlinks share the content object of the first path seen; fill them in now that
	// every first path has been stored.
	for _, l := range im.followers {
		l.follower.Checksum, l.follower.Size = l.leader.Checksum, l.leader.Size
	}
	return tree, nil
}

type importer struct {
	o     Options
	store *ostree.Store
	tree  *ostree.Tree // its header table; only the walker goroutine touches it
	// links maps an inode with several links to the File of its first path. Only the
	// walker goroutine touches it.
	links     map[inode]*ostree.File
	followers []hardlink
}

type hardlink struct{ follower, leader *ostree.File }

func (im *importer) walk(ctx context.Context, dir, rel string, d *ostree.Dir, jobs chan<- job) error {
	names, err := readDirNames(dir)
	if err != nil {
		return fmt.Errorf("import %s: %w", rel, err)
	}
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := filepath.Join(dir, name)
		r := joinRel(rel, name)
		if !utf8.ValidString(name) {
			return fmt.Errorf("import %q: file name is not valid UTF-8, which ostree cannot store", r)
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("import %s: %w", r, &os.PathError{Op: "lstat", Path: p, Err: err})
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			meta, err := im.dirMeta(p, &st)
			if err != nil {
				return fmt.Errorf("import %s: %w", r, err)
			}
			sub := ostree.NewDir(meta)
			d.Dirs[name] = sub
			if err := im.walk(ctx, p, r, sub, jobs); err != nil {
				return err
			}
		case unix.S_IFREG, unix.S_IFLNK:
			f := im.tree.NewFile(ostree.File{})
			d.Files[name] = f
			key := inode{dev: uint64(st.Dev), ino: uint64(st.Ino)}
			if st.Nlink > 1 {
				if leader := im.links[key]; leader != nil {
					f.Header = leader.Header
					im.followers = append(im.followers, hardlink{follower: f, leader: leader})
					continue
				}
				im.links[key] = f
			}
			h, err := im.fileHeader(p, &st)
			if err != nil {
				return fmt.Errorf("import %s: %w", r, err)
			}
			f.Header = im.tree.InternHeader(h)
			select {
			case jobs <- job{path: p, rel: r, file: f, ino: key}:
			case <-ctx.Done():
				return ctx.Err()
			}
		default:
			msg := fmt.Sprintf("%s is a %s, which ostree cannot store", r, kindName(st.Mode))
			if !im.o.SkipSpecial {
				return fmt.Errorf("import %s: %s", r, strings.TrimPrefix(msg, r+" is "))
			}
			im.o.Warn("skipping " + msg)
		}
	}
	return nil
}

func joinRel(rel, name string) string {
	if rel == "/" {
		return "/" + name
	}
	return rel + "/" + name
}

func kindName(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFSOCK:
		return "socket"
	}
	return fmt.Sprintf("file of type %#o", mode&unix.S_IFMT)
}

// readDirNames lists a directory's entries in byte order without stat-ing them.
func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
}

func (im *importer) dirMeta(p string, st *unix.Stat_t) (ostree.DirMeta, error) {
	x, err := readXattrs(p)
	if err != nil {
		return ostree.DirMeta{}, err
	}
	return ostree.DirMeta{UID: st.Uid, GID: st.Gid, Mode: st.Mode, Xattrs: x}, nil
}

func (im *importer) fileHeader(p string, st *unix.Stat_t) (ostree.FileHeader, error) {
	x, err := readXattrs(p)
	if err != nil {
		return ostree.FileHeader{}, err
	}
	h := ostree.FileHeader{UID: st.Uid, GID: st.Gid, Mode: st.Mode, Xattrs: x}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		target, err := os.Readlink(p)
		if err != nil {
			return ostree.FileHeader{}, err
		}
		h.Target = target
	}
	if err := h.Validate(); err != nil {
		return ostree.FileHeader{}, err
	}
	return h, nil
}

// store1 streams one file or symlink into the store and records its checksum. A regular
// file is hashed first and written only when the store lacks it, so importing the same
// tree again reads it but writes nothing.
func (im *importer) store1(ctx context.Context, j job, buf []byte) error {
	h := j.file.Header
	if h.IsSymlink() {
		return im.storeSymlink(ctx, j)
	}
	f, err := os.OpenFile(j.path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NOCTTY, 0)
	if err != nil {
		return fmt.Errorf("import %s: %w", j.rel, err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("import %s: %w", j.rel, err)
	}
	if (inode{uint64(st.Dev), uint64(st.Ino)}) != j.ino || st.Mode != h.Mode {
		return fmt.Errorf("import %s: file changed while importing", j.rel)
	}
	id := ostree.IdentityOf(&st)
	sum := ostree.NewContentHash(*h)
	n, err := io.CopyBuffer(sum, fsutil.ContextReader(ctx, f), buf)
	if err != nil {
		return fmt.Errorf("import %s: %w", j.rel, err)
	}
	var c ostree.Checksum
	sum.Sum(c[:0])
	j.file.Checksum, j.file.Size = c, n
	if im.store.Has(c, ostree.ObjFile) {
		return nil
	}
	if !im.o.Copy {
		return im.keepInPlace(j, f, c, n, id)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("import %s: %w", j.rel, err)
	}
	written, wn, err := im.store.WriteContent(ctx, *h, f)
	if err != nil {
		return fmt.Errorf("import %s: %w", j.rel, err)
	}
	if written != c || wn != n {
		return fmt.Errorf("import %s: file changed while importing", j.rel)
	}
	return nil
}

// keepInPlace records a hashed file as an in-place object. Its identity after reading
// must be the one before, or the hash may mix two versions of the file.
func (im *importer) keepInPlace(j job, f *os.File, c ostree.Checksum, n int64, before ostree.FileIdentity) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("import %s: %w", j.rel, err)
	}
	if ostree.IdentityOf(&st) != before || n != before.Size {
		return fmt.Errorf("import %s: file changed while importing", j.rel)
	}
	path := j.path
	if n == 0 {
		path = "" // nothing to read back
	}
	if err := im.store.AddInPlace(c, j.file.Header, path, before); err != nil {
		return fmt.Errorf("import %s: %w", j.rel, err)
	}
	return nil
}

// storeSymlink records a symlink's object: it has no payload, only its header.
func (im *importer) storeSymlink(ctx context.Context, j job) error {
	h := j.file.Header
	if !im.o.Copy {
		c := ostree.ContentChecksum(*h, nil)
		j.file.Checksum = c
		if im.store.Has(c, ostree.ObjFile) {
			return nil
		}
		return im.store.AddInPlace(c, h, "", ostree.FileIdentity{})
	}
	c, _, err := im.store.WriteContent(ctx, *h, nil)
	if err != nil {
		return fmt.Errorf("import %s: %w", j.rel, err)
	}
	j.file.Checksum = c
	return nil
}

// readXattrs returns a path's xattrs (not following symlinks) as ostree reads them from
// disk: names sorted byte-wise, empty values dropped. A filesystem without xattr support
// has none.
func readXattrs(p string) (ostree.Xattrs, error) {
	list, err := retryRange(func(buf []byte) (int, error) { return unix.Llistxattr(p, buf) })
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list xattrs: %w", err)
	}
	var x ostree.Xattrs
	for _, name := range strings.Split(string(list), "\x00") {
		if name == "" {
			continue
		}
		v, err := retryRange(func(buf []byte) (int, error) { return unix.Lgetxattr(p, name, buf) })
		if errors.Is(err, unix.ENODATA) {
			continue // removed since it was listed
		}
		if err != nil {
			return nil, fmt.Errorf("read xattr %s: %w", name, err)
		}
		x = append(x, ostree.Xattr{Name: name, Value: v})
	}
	return x.Normalize(), nil
}

// retryRange calls a size-then-fill syscall pair, retrying when the value grew between
// the two calls (ERANGE).
func retryRange(call func([]byte) (int, error)) ([]byte, error) {
	for attempt := 0; attempt < 16; attempt++ {
		n, err := call(nil)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, nil
		}
		buf := make([]byte, n)
		n, err = call(buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
	return nil, unix.ERANGE
}
