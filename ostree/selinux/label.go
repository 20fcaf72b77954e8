package selinux

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/rechunker-dev/rechunker/internal/fsutil"
	"github.com/rechunker-dev/rechunker/ostree"
)

// xattrName is the label's extended attribute.
const xattrName = "security.selinux"

// maxPolicyFile bounds one policy file read from a tree (Fedora's file_contexts is
// about 1 MB).
const maxPolicyFile = 64 << 20

// Load reads the policy a tree configures in etc/selinux/config (or usr/etc/selinux/
// config, for trees already in ostree layout), as ostree does when it commits with
// --selinux-policy. It returns ErrNoPolicy when the tree has no configuration, no
// SELINUXTYPE, or SELINUX=disabled. The policy type is returned too.
func Load(ctx context.Context, store *ostree.Store, t *ostree.Tree) (*Policy, string, error) {
	return LoadFrom(func(p string) ([]byte, error) { return readTreeFile(ctx, store, t, p) })
}

// PolicyFiles reports whether p is a file Load may read (for readers that must pick
// them out while streaming an image).
func PolicyFiles(p string) bool {
	for _, etc := range []string{"/etc/selinux/", "/usr/etc/selinux/"} {
		rest, ok := strings.CutPrefix(p, etc)
		if !ok {
			continue
		}
		if rest == "config" {
			return true
		}
		_, f, ok := strings.Cut(rest, "/contexts/files/")
		return ok && strings.HasPrefix(f, "file_contexts") && !strings.Contains(f, "/") && !strings.HasSuffix(f, ".bin")
	}
	return false
}

// LoadFrom is Load with files read by read (absolute tree paths; an error wrapping
// os.ErrNotExist when there is none).
func LoadFrom(read func(path string) ([]byte, error)) (*Policy, string, error) {
	var etc string
	var config []byte
	for _, dir := range []string{"/etc", "/usr/etc"} {
		data, err := read(dir + "/selinux/config")
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		etc, config = dir, data
		break
	}
	if config == nil {
		return nil, "", ErrNoPolicy
	}
	var typ string
	for _, line := range strings.Split(string(config), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		v = strings.Trim(strings.TrimSpace(v), `"`)
		switch strings.TrimSpace(k) {
		case "SELINUX":
			if v == "disabled" {
				return nil, "", ErrNoPolicy
			}
		case "SELINUXTYPE":
			typ = v
		}
	}
	if typ == "" {
		return nil, "", ErrNoPolicy
	}
	if strings.ContainsAny(typ, "/\x00") || typ == "." || typ == ".." {
		return nil, "", fmt.Errorf("%s/selinux/config: invalid SELINUXTYPE %q", etc, typ)
	}
	base := etc + "/selinux/" + typ + "/contexts/files/file_contexts"
	var contexts []Source
	for i, name := range []string{base, base + ".homedirs", base + ".local"} {
		data, err := read(name)
		if errors.Is(err, os.ErrNotExist) {
			if i == 0 {
				return nil, typ, fmt.Errorf("%w (%s)", ErrPolicyMissing, name)
			}
			continue
		}
		if err != nil {
			return nil, typ, fmt.Errorf("SELinux policy %q: %w", typ, err)
		}
		contexts = append(contexts, Source{Name: name, R: bytes.NewReader(data)})
	}
	var subs [2]*Source
	for i, name := range []string{base + ".subs_dist", base + ".subs"} {
		data, err := read(name)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, typ, fmt.Errorf("SELinux policy %q: %w", typ, err)
		}
		subs[i] = &Source{Name: name, R: bytes.NewReader(data)}
	}
	p, err := Parse(contexts, subs[0], subs[1])
	if err != nil {
		return nil, typ, fmt.Errorf("SELinux policy %q: %w", typ, err)
	}
	return p, typ, nil
}

// readTreeFile returns the content of a regular file of the tree, following symlinks
// inside the tree; os.ErrNotExist when there is none.
func readTreeFile(ctx context.Context, store *ostree.Store, t *ostree.Tree, p string) ([]byte, error) {
	orig := p
	for hops := 0; ; hops++ {
		if hops > 16 {
			return nil, fmt.Errorf("%s: too many levels of symbolic links", orig)
		}
		f := t.LookupFile(p)
		if f == nil {
			return nil, fmt.Errorf("%s: %w", orig, os.ErrNotExist)
		}
		if f.Header.IsSymlink() {
			target := f.Header.Target
			if !strings.HasPrefix(target, "/") {
				target = path.Join(path.Dir(p), target)
			}
			p = path.Clean(target)
			continue
		}
		if f.Size > maxPolicyFile {
			return nil, fmt.Errorf("%s: %d bytes, more than %d", orig, f.Size, maxPolicyFile)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		obj, err := store.OpenFileContent(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", orig, err)
		}
		defer obj.Close()
		data, err := io.ReadAll(io.LimitReader(obj, maxPolicyFile+1))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", orig, err)
		}
		return data, nil
	}
}

// Stats counts what Apply did.
type Stats struct {
	Labeled   int // files, symlinks and directories given a label
	Rewritten int // content objects given a new header (derived objects, see below)
	Reused    int // relabelled objects found in the store's relabel index
}

// Apply gives every file, symlink and directory of t the label p assigns it, as ostree
// does when it commits with the policy: an existing security.selinux is replaced; when
// the policy gives no label, the xattrs stay as they are. A file whose header changes
// needs a new content object: its payload is hashed once under the new header and the
// store records it as derived from the original (no second copy of the payload), and
// the store's relabel index remembers it, so rebuilds of the same content only look it
// up. t's paths are labelled as
// they are (an /etc not yet moved to /usr/etc is labelled as /etc).
func Apply(ctx context.Context, store *ostree.Store, t *ostree.Tree, p *Policy) (Stats, error) {
	a := &applier{store: store, t: t, p: p}
	if l := p.Label("/", modeDir); l != "" {
		t.Root.Meta.Xattrs = withLabel(t.Root.Meta.Xattrs, l)
		a.labeled.Add(1)
	}
	type job struct {
		path string
		d    *ostree.Dir
	}
	jobs := make(chan job, 64)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(jobs)
		var walk func(string, *ostree.Dir) error
		walk = func(dp string, d *ostree.Dir) error {
			select {
			case jobs <- job{dp, d}:
			case <-gctx.Done():
				return gctx.Err()
			}
			for _, n := range d.DirNames() {
				if err := walk(path.Join(dp, n), d.Dirs[n]); err != nil {
					return err
				}
			}
			return nil
		}
		return walk("/", t.Root)
	})
	for range runtime.GOMAXPROCS(0) {
		g.Go(func() error {
			for j := range jobs {
				if err := a.dir(gctx, j.path, j.d); err != nil {
					return err
				}
			}
			return nil
		})
	}
	err := g.Wait()
	return Stats{Labeled: int(a.labeled.Load()), Rewritten: int(a.rewritten.Load()), Reused: int(a.reused.Load())}, err
}

type applier struct {
	store *ostree.Store
	t     *ostree.Tree
	p     *Policy
	mu    sync.Mutex // guards the tree's header table

	labeled, rewritten, reused atomic.Int64
}

// dir labels the entries of one directory: its files and the metadata of its
// subdirectories (their own entries are other jobs).
func (a *applier) dir(ctx context.Context, dp string, d *ostree.Dir) error {
	label := a.p.DirLabeler(dp)
	for _, n := range d.DirNames() {
		if l := label(n, modeDir); l != "" {
			sub := d.Dirs[n]
			sub.Meta.Xattrs = withLabel(sub.Meta.Xattrs, l)
			a.labeled.Add(1)
		}
	}
	for _, n := range d.FileNames() {
		if err := ctx.Err(); err != nil {
			return err
		}
		f := d.Files[n]
		l := label(n, f.Header.Mode)
		if l == "" {
			continue
		}
		a.labeled.Add(1)
		x := withLabel(f.Header.Xattrs, l)
		if xattrsEqual(x, f.Header.Xattrs) {
			continue
		}
		h := *f.Header
		h.Xattrs = x
		sum, err := a.object(ctx, f, h)
		if err != nil {
			return fmt.Errorf("label %s: %w", path.Join(dp, n), err)
		}
		a.mu.Lock()
		f.Header = a.t.InternHeader(h)
		a.mu.Unlock()
		f.Checksum = sum
	}
	return nil
}

// object returns the checksum of f's content with header h, writing the object unless
// the relabel index knows it.
func (a *applier) object(ctx context.Context, f *ostree.File, h ostree.FileHeader) (ostree.Checksum, error) {
	if h.IsSymlink() {
		if !a.store.HasStored(f.Checksum) {
			// The tree is read in place: keep the relabelled link in memory too.
			sum := ostree.ContentChecksum(h, nil)
			return sum, a.store.AddInPlace(sum, &h, "", ostree.FileIdentity{})
		}
		sum, _, err := a.store.WriteContent(ctx, h, nil)
		return sum, err
	}
	idx := indexPath(a.store, f.Checksum, h)
	if b, err := os.ReadFile(idx); err == nil {
		if sum, err := ostree.ParseChecksum(strings.TrimSpace(string(b))); err == nil && a.store.Has(sum, ostree.ObjFile) {
			a.reused.Add(1)
			fsutil.Touch(idx) // used: pruning keeps it and its object
			return sum, nil
		}
	}
	obj, err := a.store.OpenFileContent(f)
	if err != nil {
		return ostree.Checksum{}, err
	}
	defer obj.Close()
	hash := ostree.NewContentHash(h)
	n, err := io.Copy(hash, fsutil.ContextReader(ctx, obj))
	if err != nil {
		return ostree.Checksum{}, fmt.Errorf("read object %s: %w", f.Checksum, err)
	}
	if n != f.Size {
		return ostree.Checksum{}, fmt.Errorf("object %s has %d bytes, the tree says %d", f.Checksum, n, f.Size)
	}
	var sum ostree.Checksum
	hash.Sum(sum[:0])
	a.rewritten.Add(1)
	if f.Loc.InPlace() {
		return sum, nil // read from an input blob: the File keeps its location
	}
	// The tree's unlabelled objects are stored files or in-place objects, so the new
	// object can share the payload.
	if err := a.store.AddDerived(sum, f.Checksum, h); err != nil {
		return ostree.Checksum{}, err
	}
	if !a.store.HasStored(sum) {
		return sum, nil // an in-place object: nothing on disk for an index entry to name
	}
	if err := os.MkdirAll(path.Dir(idx), 0o755); err == nil {
		_ = fsutil.WriteFileAtomic(idx, []byte(sum.String()+"\n")) // only a cache
	}
	return sum, nil
}

// indexPath names the relabel index entry of an object given a new header.
func indexPath(store *ostree.Store, old ostree.Checksum, h ostree.FileHeader) string {
	k := sha256.New()
	k.Write(old[:])
	k.Write(h.Marshal())
	s := hex.EncodeToString(k.Sum(nil))
	return store.Path("relabel", s[:2], s[2:])
}

// withLabel returns x with security.selinux set to the label as ostree stores it:
// NUL-terminated like a label read from the kernel, and appended after the other
// xattrs without sorting again (the order is part of the checksum).
func withLabel(x ostree.Xattrs, label string) ostree.Xattrs {
	return append(x.Without(xattrName), ostree.Xattr{Name: xattrName, Value: []byte(label + "\x00")})
}

func xattrsEqual(a, b ostree.Xattrs) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || !bytes.Equal(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}

// PruneIndex removes the relabel index entries not used since cutoff and calls keep
// with the relabelled object of every remaining entry.
func PruneIndex(ctx context.Context, store *ostree.Store, cutoff time.Time, dryRun bool, keep func(ostree.Checksum)) (fsutil.PruneStats, error) {
	dir := store.Path("relabel")
	st, err := fsutil.PruneFiles(ctx, dir, cutoff, dryRun, nil)
	if err != nil {
		return st, err
	}
	err = fsutil.WalkFiles(ctx, dir, func(p string, fi fs.FileInfo) error {
		if fi.ModTime().Before(cutoff) {
			return nil // pruned (or would be, on a dry run)
		}
		if b, err := os.ReadFile(p); err == nil {
			if sum, err := ostree.ParseChecksum(strings.TrimSpace(string(b))); err == nil {
				keep(sum)
			}
		}
		return nil
	})
	return st, err
}
