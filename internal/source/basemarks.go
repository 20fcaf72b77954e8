package source

import (
	"crypto/sha256"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/rechunker-dev/rechunker/ostree"
)

// Marks of a chunked base image. ostree-ext keeps directory xattrs only in dirmeta
// objects: the container view of a chunked image (what `FROM` sees, what a derived
// image's layers hold) has its directories without them. A `user.component` set on a
// directory of the base would silently vanish from every derived image, and the
// derived image's layout would differ from the base's, costing a full download once.
// The base's commit is still there, in /sysroot/ostree/repo of the container view, so
// its directory marks are read back from its dirmeta objects.

// baseMarkXattrs are the directory xattrs taken from a base image's commit.
var baseMarkXattrs = []string{"user.component", "user.update-interval"}

// maxMetaObject bounds a metadata object read from the input: real dirtree objects
// of huge directories stay far below it.
const maxMetaObject = 16 << 20

const repoObjects = "/sysroot/ostree/repo/objects"

// restoreBaseMarks copies baseMarkXattrs from the dirmeta objects of every commit found
// in the input's /sysroot/ostree/repo to the directories of t at the same paths that
// lack them. Objects are verified against their names first; an input whose embedded
// repository is broken keeps its own directories as they are, with a warning.
func restoreBaseMarks(t *ostree.Tree, store *ostree.Store, warn func(string)) int {
	objs := t.LookupDir(repoObjects)
	if objs == nil {
		return 0
	}
	r := baseRepo{t: t, store: store, objs: objs}
	restored := 0
	for _, c := range r.commits() {
		n, err := r.restore(c)
		if err != nil {
			warn(fmt.Sprintf("directory marks of the base image's commit %s not restored: %v", c, err))
			continue
		}
		restored += n
	}
	return restored
}

type baseRepo struct {
	t     *ostree.Tree
	store *ostree.Store
	objs  *ostree.Dir
}

// commits lists the checksums of the .commit objects, sorted.
func (r baseRepo) commits() []string {
	var out []string
	for shard, d := range r.objs.Dirs {
		for name := range d.Files {
			if rest, ok := strings.CutSuffix(name, ".commit"); ok && len(shard)+len(rest) == 64 {
				out = append(out, shard+rest)
			}
		}
	}
	sort.Strings(out)
	return out
}

// object reads a metadata object and checks that its content matches its name.
func (r baseRepo) object(sum ostree.Checksum, kind string) ([]byte, error) {
	hexSum := sum.String()
	shard := r.objs.Dirs[hexSum[:2]]
	var f *ostree.File
	if shard != nil {
		f = shard.Files[hexSum[2:]+"."+kind]
	}
	if f == nil || f.Header.IsSymlink() {
		return nil, fmt.Errorf("%s object %s is missing", kind, hexSum)
	}
	if f.Size > maxMetaObject {
		return nil, fmt.Errorf("%s object %s is %d bytes", kind, hexSum, f.Size)
	}
	obj, err := r.store.OpenFileContent(f)
	if err != nil {
		return nil, err
	}
	defer obj.Close()
	data, err := io.ReadAll(io.LimitReader(obj, maxMetaObject))
	if err != nil {
		return nil, fmt.Errorf("read %s object %s: %w", kind, hexSum, err)
	}
	if got := ostree.Checksum(sha256.Sum256(data)); got != sum {
		return nil, fmt.Errorf("%s object %s holds content with checksum %s", kind, hexSum, got)
	}
	return data, nil
}

// restore walks the commit's tree where t has the same directories.
func (r baseRepo) restore(commitHex string) (int, error) {
	sum, err := ostree.ParseChecksum(commitHex)
	if err != nil {
		return 0, err
	}
	data, err := r.object(sum, "commit")
	if err != nil {
		return 0, err
	}
	c, err := ostree.ParseCommit(data)
	if err != nil {
		return 0, err
	}
	return r.walk("/", c.RootTree)
}

// walk visits the subdirectories of the commit directory p (dirtree sum). It only
// descends where the input has the directory too, so the work is bounded by the input
// tree even if the base's dirtrees share subtrees many times over.
func (r baseRepo) walk(p string, sum ostree.Checksum) (int, error) {
	data, err := r.object(sum, "dirtree")
	if err != nil {
		return 0, err
	}
	dt, err := ostree.ParseDirTree(data)
	if err != nil {
		return 0, fmt.Errorf("dirtree %s (%s): %w", sum, p, err)
	}
	restored := 0
	for _, sub := range dt.Dirs {
		cp := path.Join(p, sub.Name)
		d := r.inputDir(cp)
		if d == nil {
			continue
		}
		raw, err := r.object(sub.Meta, "dirmeta")
		if err != nil {
			return restored, err
		}
		meta, err := ostree.ParseDirMeta(raw)
		if err != nil {
			return restored, fmt.Errorf("dirmeta %s (%s): %w", sub.Meta, cp, err)
		}
		restored += copyMarks(d, meta.Xattrs)
		n, err := r.walk(cp, sub.Tree)
		restored += n
		if err != nil {
			return restored, err
		}
	}
	return restored, nil
}

// inputDir finds commit path cp in the input tree, where /usr/etc is still /etc.
func (r baseRepo) inputDir(cp string) *ostree.Dir {
	if rest, ok := strings.CutPrefix(cp, "/usr/etc"); ok && (rest == "" || rest[0] == '/') {
		if d := r.t.LookupDir("/etc" + rest); d != nil {
			return d
		}
	}
	return r.t.LookupDir(cp)
}

// copyMarks adds to d the base marks of from that d lacks; it returns 1 if any was added.
func copyMarks(d *ostree.Dir, from ostree.Xattrs) int {
	added := false
	for _, name := range baseMarkXattrs {
		v, ok := from.Get(name)
		if !ok {
			continue
		}
		if _, has := d.Meta.Xattrs.Get(name); has {
			continue
		}
		d.Meta.Xattrs = append(d.Meta.Xattrs, ostree.Xattr{Name: name, Value: v}).Normalize()
		added = true
	}
	if added {
		return 1
	}
	return 0
}
