package rechunk

import (
	"context"
	"errors"
	"fmt"
	"path"
	"time"

	"github.com/rechunker-dev/rechunker/ostree"
)

// apkDB is the Alpine installed database: blank-line separated records of "X:value"
// lines; P: package, o: origin (source package), F: directory, R: file in the last F.
const apkDB = "/lib/apk/db/installed"

func loadAPK(ctx context.Context, store *ostree.Store, r *resolver) (*pkgSource, string, error) {
	p := r.file(apkDB)
	f := r.lookup(p)
	if p == "" || f == nil || f.Header.IsSymlink() {
		return nil, "", nil
	}
	data, err := readSmallObject(store, f, maxTextObject)
	if err != nil {
		return nil, path.Dir(p), fmt.Errorf("read %s: %w", p, err)
	}
	recs := parseAPKInstalled(data)
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	if len(recs) == 0 {
		return nil, path.Dir(p), errors.New("apk database lists no package")
	}
	return newPkgSource("apk", r, recs, time.Time{}), path.Dir(p), nil
}

// parseAPKInstalled parses the installed database into one record per package.
func parseAPKInstalled(data []byte) []pkgRecord {
	var recs []pkgRecord
	var cur pkgRecord
	var dir string
	flush := func() {
		if cur.name != "" {
			if cur.group == "" {
				cur.group = cur.name
			}
			recs = append(recs, cur)
		}
		cur, dir = pkgRecord{}, ""
	}
	forEachLine(data, func(l string) {
		if l == "" {
			flush()
			return
		}
		if len(l) < 2 || l[1] != ':' {
			return
		}
		v := l[2:]
		switch l[0] {
		case 'P':
			cur.name = v
		case 'V':
			cur.version = v
		case 'A':
			cur.arch = v
		case 'o':
			cur.group = v
		case 'F':
			dir = "/" + v
			cur.files = append(cur.files, dir)
		case 'R':
			cur.files = append(cur.files, path.Join(dir, v))
		}
	})
	flush()
	return recs
}
