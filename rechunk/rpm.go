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

// readRPMDB reads every package header of the database. The database files are copied
// out of the store into a private temp directory first: sqlite may want to replay a
// write-ahead log, and nothing must touch the store's objects.
func readRPMDB(ctx context.Context, store *ostree.Store, t *ostree.Tree, db *rpmDB) ([]*rpmHeader, error) {
	tmp, err := os.MkdirTemp("", "rechunker-rpmdb-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	main := path.Join(db.dir, db.file)
	names := []string{main}
	if db.backend == "sqlite" {
		names = append(names, main+"-wal", main+"-shm")
	}
	local, err := copyOut(ctx, store, t, tmp, names...)
	if err != nil {
		return nil, err
	}
	var blobs [][]byte
	switch db.backend {
	case "sqlite":
		blobs, err = sqliteBlobs(ctx, local)
	case "ndb":
		var h *ndb.RpmNDB
		if h, err = ndb.Open(local); err == nil {
			blobs, err = drainEntries(h.Read())
			h.Close()
		}
	case "bdb":
		var h *bdb.BerkeleyDB
		if h, err = bdb.Open(local); err == nil {
			blobs, err = drainEntries(h.Read())
			h.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("read %s database %s: %w", db.backend, main, err)
	}
	var out []*rpmHeader
	for i, b := range blobs {
		h, err := parseRPMHeader(b)
		if err != nil {
			return nil, fmt.Errorf("read %s: package %d: %w", main, i, err)
		}
		if h.Name == "gpg-pubkey" { // imported keys are stored as pseudo packages
			continue
		}
		out = append(out, h)
	}
	return out, nil
}

// drainEntries collects every blob; the go-rpmdb readers block until fully drained.
func drainEntries(ch <-chan dbi.Entry) ([][]byte, error) {
	var out [][]byte
	var first error
	for e := range ch {
		if e.Err != nil {
			if first == nil {
				first = e.Err
			}
			continue
		}
		out = append(out, e.Value)
	}
	return out, first
}

func sqliteBlobs(ctx context.Context, file string) ([][]byte, error) {
	db, err := sql.Open("sqlite", "file:"+file)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SELECT blob FROM Packages")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// loadRPM reads the rpm database of the tree, if any, as a component source with one
// component per source rpm. It returns the database directory for PackageDBComponent.
func loadRPM(ctx context.Context, store *ostree.Store, t *ostree.Tree, r *resolver) (*pkgSource, string, error) {
	db := findRPMDB(r)
	if db == nil {
		return nil, "", nil
	}
	hdrs, err := readRPMDB(ctx, store, t, db)
	if err != nil {
		return nil, db.dir, err
	}
	if len(hdrs) == 0 {
		return nil, db.dir, errors.New("rpm database has no packages")
	}
	pkgs := make([]pkgRecord, 0, len(hdrs))
	var ref time.Time
	for _, h := range hdrs {
		if h.BuildTime.After(ref) {
			ref = h.BuildTime
		}
		pkgs = append(pkgs, pkgRecord{name: h.Name, group: h.sourceName(), files: h.Files, changes: h.ChangelogTimes})
	}
	return newPkgSource("rpm", r, pkgs, ref), db.dir, nil
}
