package rechunk

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path"
	"time"

	"github.com/knqyf263/go-rpmdb/pkg/bdb"
	dbi "github.com/knqyf263/go-rpmdb/pkg/db"
	"github.com/knqyf263/go-rpmdb/pkg/ndb"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/rechunker-dev/rechunker/ostree"
)

// rpmDBDirs are where images keep the rpm database, in the order they are tried:
// rpm-ostree's canonical location, the modern default, the legacy one.
var rpmDBDirs = []string{"/usr/share/rpm", "/usr/lib/sysimage/rpm", "/var/lib/rpm"}

// rpmDB is one rpm database found in a tree.
type rpmDB struct {
	dir     string // resolved directory in the commit
	backend string // sqlite, ndb or bdb
	file    string // main file, e.g. rpmdb.sqlite
}

// findRPMDB returns the first rpm database in the tree, or nil.
func findRPMDB(r *resolver) *rpmDB {
	seen := map[string]bool{}
	for _, d := range rpmDBDirs {
		rd := r.dir(d, 0)
		if rd == "" || seen[rd] {
			continue
		}
		seen[rd] = true
		for _, c := range []struct{ backend, file string }{
			{"sqlite", "rpmdb.sqlite"}, {"ndb", "Packages.db"}, {"bdb", "Packages"},
		} {
			if f := r.lookup(path.Join(rd, c.file)); f != nil && !f.Header.IsSymlink() {
				return &rpmDB{dir: rd, backend: c.backend, file: c.file}
			}
		}
	}
	return nil
}

// readRPMDB calls fn with every package header of the database, one at a time: the
// headers of a desktop image's database add up to tens of megabytes. The database
// files are copied out of the store into a private temp directory first: sqlite may
// want to replay a write-ahead log, and nothing must touch the store's objects.
func readRPMDB(ctx context.Context, store *ostree.Store, t *ostree.Tree, db *rpmDB, fn func(*rpmHeader)) error {
	tmp, err := os.MkdirTemp("", "rechunker-rpmdb-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	main := path.Join(db.dir, db.file)
	names := []string{main}
	if db.backend == "sqlite" {
		names = append(names, main+"-wal", main+"-shm")
	}
	local, err := copyOut(ctx, store, t, tmp, names...)
	if err != nil {
		return err
	}
	n := 0
	each := func(blob []byte) error {
		h, err := parseRPMHeader(blob)
		if err != nil {
			return fmt.Errorf("read %s: package %d: %w", main, n, err)
		}
		n++
		if h.Name != "gpg-pubkey" { // imported keys are stored as pseudo packages
			fn(h)
		}
		return nil
	}
	switch db.backend {
	case "sqlite":
		err = sqliteEach(ctx, local, each)
	case "ndb":
		var h *ndb.RpmNDB
		if h, err = ndb.Open(local); err == nil {
			err = drainEach(h.Read(), each)
			h.Close()
		}
	case "bdb":
		var h *bdb.BerkeleyDB
		if h, err = bdb.Open(local); err == nil {
			err = drainEach(h.Read(), each)
			h.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("read %s database %s: %w", db.backend, main, err)
	}
	return nil
}

// drainEach passes every blob to fn until one fails; the go-rpmdb readers block until
// their channel is fully drained, so it reads to the end either way.
func drainEach(ch <-chan dbi.Entry, fn func([]byte) error) error {
	var first error
	for e := range ch {
		if first != nil {
			continue
		}
		if e.Err != nil {
			first = e.Err
			continue
		}
		first = fn(e.Value)
	}
	return first
}

func sqliteEach(ctx context.Context, file string, fn func([]byte) error) error {
	db, err := sql.Open("sqlite", "file:"+file)
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SELECT blob FROM Packages")
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return err
		}
		if err := fn(b); err != nil {
			return err
		}
	}
	return rows.Err()
}

// loadRPM reads the rpm database of the tree, if any, as a component source with one
// component per source rpm. It returns the database directory for PackageDBComponent.
func loadRPM(ctx context.Context, store *ostree.Store, t *ostree.Tree, r *resolver) (*pkgSource, string, error) {
	db := findRPMDB(r)
	if db == nil {
		return nil, "", nil
	}
	b := newPkgSourceBuilder("rpm", r)
	var ref time.Time
	count := 0
	err := readRPMDB(ctx, store, t, db, func(h *rpmHeader) {
		count++
		if h.BuildTime.After(ref) {
			ref = h.BuildTime
		}
		group := h.sourceName()
		b.installed(Package{Name: h.Name, Version: h.EVR(), Arch: h.Arch, Source: group})
		b.pkg(h.Name, group, h.ChangelogTimes)
		for _, p := range h.Files {
			b.own(group, p)
		}
	})
	if err != nil {
		return nil, db.dir, err
	}
	if count == 0 {
		return nil, db.dir, errors.New("rpm database has no packages")
	}
	return b.finish(ref), db.dir, nil
}
