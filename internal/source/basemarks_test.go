package source

import (
	"bytes"
	"context"
	"crypto/sha256"
	"path"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/ostree"
)

// objectCapture is a MetadataWriter that keeps the objects a Finalize writes.
type objectCapture map[string][]byte

func (c objectCapture) WriteMetadata(t ostree.ObjectType, data []byte) (ostree.Checksum, error) {
	sum := ostree.Checksum(sha256.Sum256(data))
	c[ostree.ObjectPath(sum, t)] = append([]byte(nil), data...)
	return sum, nil
}

func mkdirs(t *ostree.Tree, p string, x ...ostree.Xattr) *ostree.Dir {
	parts, _ := ostree.SplitPath(p)
	d := t.Root
	for _, name := range parts {
		if d.Dirs[name] == nil {
			d.Dirs[name] = ostree.NewDir(ostree.DirMeta{Mode: ostree.ModeDir | 0o755})
		}
		d = d.Dirs[name]
	}
	d.Meta.Xattrs = ostree.Xattrs(x).Normalize()
	return d
}

// chunkedBase returns the objects of a base commit whose /usr/lib/app and /usr/etc/app
// carry user.component=app, as a chunked image's container view ships them.
func chunkedBase(t *testing.T) (objectCapture, string) {
	base := ostree.NewTree()
	mark := ostree.Xattr{Name: "user.component", Value: []byte("app")}
	mkdirs(base, "/usr/lib/app", mark, ostree.Xattr{Name: "user.update-interval", Value: []byte("30d")})
	mkdirs(base, "/usr/etc/app", mark)
	mkdirs(base, "/usr/share/other")
	mkdirs(base, "/sysroot")
	objs := objectCapture{}
	rt, rm, err := base.Finalize(objs)
	require.NoError(t, err)
	raw, err := ostree.Commit{RootTree: rt, RootMeta: rm}.Marshal()
	require.NoError(t, err)
	sum, err := objs.WriteMetadata(ostree.ObjCommit, raw)
	require.NoError(t, err)
	return objs, sum.String()
}

// derivedInput is the container view of an image built FROM the base: the same
// directories without xattrs, the base's objects in /sysroot/ostree/repo.
func derivedInput(t *testing.T, store *ostree.Store, objs objectCapture, edit func(map[string][]byte)) *ostree.Tree {
	in := ostree.NewTree()
	for _, p := range []string{"/usr/lib/app", "/etc/app", "/usr/share/other", "/usr/lib/new"} {
		mkdirs(in, p)
	}
	files := map[string][]byte{}
	for p, data := range objs {
		files[p] = data
	}
	if edit != nil {
		edit(files)
	}
	for p, data := range files {
		h := ostree.FileHeader{Mode: ostree.ModeRegular | 0o644}
		sum, n, err := store.WriteContent(context.Background(), h, bytes.NewReader(data))
		require.NoError(t, err)
		full := path.Join("/sysroot/ostree/repo", p)
		mkdirs(in, path.Dir(full)).Files[path.Base(full)] = &ostree.File{Header: in.InternHeader(h), Size: n, Checksum: sum}
	}
	return in
}

func TestRestoreBaseMarks(t *testing.T) {
	objs, commit := chunkedBase(t)
	tests := []struct {
		name     string
		edit     func(files map[string][]byte)
		before   func(in *ostree.Tree)
		restored int
		warning  string
		want     map[string]string // dir -> user.component after
	}{
		{name: "marks come back", restored: 2,
			want: map[string]string{"/usr/lib/app": "app", "/etc/app": "app", "/usr/share/other": "", "/usr/lib/new": ""}},
		// Each xattr on its own: /usr/lib/app still gets the base's update interval.
		{name: "the derived image's own mark wins", restored: 2,
			before: func(in *ostree.Tree) {
				in.LookupDir("/usr/lib/app").Meta.Xattrs = ostree.Xattrs{{Name: "user.component", Value: []byte("mine")}}
			},
			want: map[string]string{"/usr/lib/app": "mine", "/etc/app": "app"}},
		{name: "an object that does not match its name is not trusted", restored: 0, warning: "holds content with checksum",
			edit: func(files map[string][]byte) {
				for p, data := range files {
					if path.Ext(p) == ".dirmeta" && bytes.Contains(data, []byte("app")) {
						files[p] = append(append([]byte(nil), data[:len(data)-1]...), 'X')
					}
				}
			},
			want: map[string]string{"/usr/lib/app": "", "/etc/app": ""}},
		{name: "a missing dirtree is reported", restored: 0, warning: "dirtree object",
			edit: func(files map[string][]byte) {
				for p := range files {
					if path.Ext(p) == ".dirtree" {
						delete(files, p)
					}
				}
			},
			want: map[string]string{"/usr/lib/app": ""}},
		{name: "garbage commit", restored: 0, warning: "decode commit",
			edit: func(files map[string][]byte) {
				garbage := []byte("not a commit")
				sum := ostree.Checksum(sha256.Sum256(garbage))
				delete(files, "objects/"+commit[:2]+"/"+commit[2:]+".commit")
				files[ostree.ObjectPath(sum, ostree.ObjCommit)] = garbage
			},
			want: map[string]string{"/usr/lib/app": ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store := newStore(t)
			in := derivedInput(t, store, objs, tc.edit)
			if tc.before != nil {
				tc.before(in)
			}
			var warnings []string
			n := restoreBaseMarks(in, store, func(s string) { warnings = append(warnings, s) })
			assert.Equal(t, tc.restored, n)
			if tc.warning == "" {
				assert.Empty(t, warnings)
			} else {
				require.Len(t, warnings, 1)
				assert.Contains(t, warnings[0], tc.warning)
			}
			for dir, want := range tc.want {
				got, _ := in.LookupDir(dir).Meta.Xattrs.Get("user.component")
				assert.Equal(t, want, string(got), dir)
			}
		})
	}
	t.Run("update interval too", func(t *testing.T) {
		store := newStore(t)
		in := derivedInput(t, store, objs, nil)
		restoreBaseMarks(in, store, func(string) {})
		v, ok := in.LookupDir("/usr/lib/app").Meta.Xattrs.Get("user.update-interval")
		assert.True(t, ok)
		assert.Equal(t, "30d", string(v))
	})
	t.Run("no embedded repository", func(t *testing.T) {
		in := ostree.NewTree()
		mkdirs(in, "/usr/lib/app")
		assert.Equal(t, 0, restoreBaseMarks(in, newStore(t), func(s string) { t.Error(s) }))
	})
}
