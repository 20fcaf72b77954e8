package rechunk

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/rechunker-dev/rechunker/ostree"
)

// dpkgDBDirs are where images keep the dpkg database. Some ostree-based Debian builds
// move it below /usr so that it is part of the image, not of /var.
var dpkgDBDirs = []string{"/var/lib/dpkg", "/usr/lib/sysimage/dpkg", "/usr/share/dpkg/database"}

// maxChangelogBytes bounds how much of one decompressed changelog is read.
const maxChangelogBytes = 8 << 20

// dpkgPackage is one paragraph of the dpkg status file.
type dpkgPackage struct {
	name, arch, source, status, multiArch, version string
}

// parseDpkgStatus parses the status file: RFC 822-style paragraphs separated by blank
// lines, continuation lines start with a space.
func parseDpkgStatus(r io.Reader) ([]dpkgPackage, error) {
	var out []dpkgPackage
	var cur dpkgPackage
	flush := func() {
		if cur.name != "" {
			out = append(out, cur)
		}
		cur = dpkgPackage{}
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // continuation of a multi-line field we do not use
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("malformed line %q", line)
		}
		v = strings.TrimSpace(v)
		switch strings.ToLower(k) {
		case "package":
			cur.name = v
		case "architecture":
			cur.arch = v
		case "source":
			// "Source: glibc (2.36-9)" names the source version when it differs.
			cur.source, _, _ = strings.Cut(v, " ")
		case "status":
			cur.status = v
		case "multi-arch":
			cur.multiArch = v
		case "version":
			cur.version = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	flush()
	return out, nil
}

// installed reports whether dpkg considers the package's files present.
func (p dpkgPackage) installed() bool {
	f := strings.Fields(p.status)
	if len(f) != 3 {
		return false
	}
	switch f[2] {
	case "installed", "half-configured", "unpacked", "triggers-awaited", "triggers-pending", "half-installed":
		return true
	}
	return false
}

// maxTextObject bounds a package database text file read into memory.
const maxTextObject = 64 << 20

// forEachLine calls fn for every '\n'-terminated line of data (and a final unterminated one).
func forEachLine(data []byte, fn func(string)) {
	for len(data) > 0 {
		line, rest, _ := bytes.Cut(data, []byte{'\n'})
		fn(string(line))
		data = rest
	}
}

// forEachDpkgListPath calls fn for the paths of a dpkg info/*.list file (one per line;
// "/." is the root every package lists).
func forEachDpkgListPath(data []byte, fn func(string)) {
	for len(data) > 0 {
		line, rest, _ := bytes.Cut(data, []byte{'\n'})
		data = rest
		if len(line) == 0 || string(line) == "/." {
			continue
		}
		fn(string(line))
	}
}

// readSmallObject returns the payload of a regular file's content object. Package
// database files are small and numerous, so it reads the object file in one go (the
// store keeps exactly the hashed bytes: BE32 header length, 4 zero bytes, header,
// payload) instead of streaming it through a 64 KiB buffer each.
func readSmallObject(store *ostree.Store, f *ostree.File, max int64) ([]byte, error) {
	if f == nil || f.Header.IsSymlink() {
		return nil, fmt.Errorf("not a regular file")
	}
	if f.Size > max {
		return nil, fmt.Errorf("%d bytes, more than %d", f.Size, max)
	}
	raw, err := os.ReadFile(store.ObjectFile(f.Checksum, ostree.ObjFile))
	if errors.Is(err, fs.ErrNotExist) {
		// The payload lives elsewhere: in a layer blob or a source file read in place,
		// or in another object (an SELinux-relabelled file shares its original's).
		obj, err := store.OpenFileContent(f)
		if err != nil {
			return nil, err
		}
		defer obj.Close()
		data := make([]byte, f.Size)
		var extra [1]byte
		if _, err := io.ReadFull(obj, data); err != nil {
			return nil, fmt.Errorf("content object %s (%d bytes): %w", f.Checksum, f.Size, err)
		}
		if n, _ := obj.Read(extra[:]); n > 0 {
			return nil, fmt.Errorf("content object %s: more than the %d bytes the tree says", f.Checksum, f.Size)
		}
		return data, nil
	}
	if err != nil {
		return nil, err
	}
	if len(raw) < 8 {
		return nil, fmt.Errorf("content object %s: truncated", f.Checksum)
	}
	hlen := int64(binary.BigEndian.Uint32(raw[:4]))
	if 8+hlen > int64(len(raw)) || int64(len(raw))-8-hlen != f.Size {
		return nil, fmt.Errorf("content object %s: header length %d does not match its size", f.Checksum, hlen)
	}
	return raw[8+hlen:], nil
}

// loadDpkg reads the dpkg database of the tree, if any, as a component source with one
// component per source package. It returns the database directory.
func loadDpkg(ctx context.Context, store *ostree.Store, r *resolver, warn func(string)) (*pkgSource, string, error) {
	var dir string
	var status *ostree.File
	for _, d := range dpkgDBDirs {
		if rd := r.dir(d, 0); rd != "" {
			if f := r.lookup(path.Join(rd, "status")); f != nil && !f.Header.IsSymlink() {
				dir, status = rd, f
				break
			}
		}
	}
	if status == nil {
		return nil, "", nil
	}
	rc, err := openObject(store, status)
	if err != nil {
		return nil, dir, fmt.Errorf("read %s/status: %w", dir, err)
	}
	pkgs, err := parseDpkgStatus(rc)
	rc.Close()
	if err != nil {
		return nil, dir, fmt.Errorf("parse %s/status: %w", dir, err)
	}
	b := newPkgSourceBuilder("dpkg", r)
	var ref time.Time
	installed := 0
	changelogs := map[string][]time.Time{} // per source package, read once
	infoKeys := map[string]string{}        // NAME:ARCH and NAME -> group
	for _, p := range pkgs {
		if err := ctx.Err(); err != nil {
			return nil, dir, err
		}
		if !p.installed() {
			continue
		}
		installed++
		group := p.source
		if group == "" {
			group = p.name
		}
		b.installed(Package{Name: p.name, Version: p.version, Arch: p.arch, Source: group})
		var changes []time.Time
		newGroup := false
		if _, done := changelogs[group]; !done {
			changelogs[group] = dpkgChangelog(store, r, p.name, warn)
			changes, newGroup = changelogs[group], true
		}
		for _, c := range changes {
			if c.After(ref) {
				ref = c
			}
		}
		if newGroup {
			b.pkg(p.name, group, changes)
		} else {
			b.pkg(p.name, group, nil) // the group's changelog is already counted
		}
		// Multi-arch "same" packages name their list NAME:ARCH.list.
		list := r.lookup(path.Join(dir, "info", p.name+":"+p.arch+".list"))
		if list == nil {
			list = r.lookup(path.Join(dir, "info", p.name+".list"))
		}
		if list == nil {
			warn(fmt.Sprintf("dpkg: package %s has no file list in %s/info", p.name, dir))
		} else if data, err := readSmallObject(store, list, maxTextObject); err != nil {
			return nil, dir, fmt.Errorf("read file list of %s: %w", p.name, err)
		} else {
			forEachDpkgListPath(data, func(path string) { b.own(group, path) })
		}
		infoKeys[p.name+":"+p.arch] = group
		if _, dup := infoKeys[p.name]; !dup {
			infoKeys[p.name] = group
		}
	}
	if installed == 0 {
		return nil, dir, errors.New("dpkg status lists no installed package")
	}
	addDpkgInfoFiles(b, dir, infoKeys)
	return b.finish(ref), dir, nil
}

// addDpkgInfoFiles gives every installed package its own files of the database's info
// directory (NAME[:ARCH].list, .md5sums, .conffiles, maintainer scripts, ...): dpkg
// rewrites them only when the package itself changes, so they belong with its files,
// not with the status file that changes on every upgrade. Files of packages that are
// not installed (config-files state) stay with the database. keys maps NAME:ARCH and
// NAME to the package's group.
func addDpkgInfoFiles(b *pkgSourceBuilder, dir string, keys map[string]string) {
	infoDir := path.Join(dir, "info")
	d := b.r.t.LookupDir(infoDir)
	if d == nil {
		return
	}
	for _, n := range d.FileNames() {
		// Control file names (list, md5sums, postinst...) have no dot; package names may.
		dot := strings.LastIndexByte(n, '.')
		if dot <= 0 {
			continue // "format" and the like
		}
		if g, ok := keys[n[:dot]]; ok {
			b.own(g, joinPath(infoDir, n))
		}
	}
}

// dpkgChangelog returns the entry dates of a package's Debian changelog, newest first;
// nil when the image has none (docs are often removed from images).
func dpkgChangelog(store *ostree.Store, r *resolver, pkg string, warn func(string)) []time.Time {
	var f *ostree.File
	for _, name := range []string{"changelog.Debian.gz", "changelog.gz"} {
		p := r.file("/usr/share/doc/" + pkg + "/" + name)
		if p == "" {
			continue
		}
		// The file itself may be a symlink into another package's doc dir.
		for hops := 0; hops < maxSymlinkHops; hops++ {
			f = r.lookup(p)
			if f == nil || !f.Header.IsSymlink() {
				break
			}
			t := f.Header.Target
			if !strings.HasPrefix(t, "/") {
				t = path.Join(path.Dir(p), t)
			}
			p = r.file(t)
		}
		if f != nil && !f.Header.IsSymlink() {
			break
		}
		f = nil
	}
	if f == nil {
		return nil
	}
	rc, err := openObject(store, f)
	if err != nil {
		warn(fmt.Sprintf("dpkg: changelog of %s: %v", pkg, err))
		return nil
	}
	defer rc.Close()
	dates, err := parseDebianChangelog(rc)
	if err != nil {
		warn(fmt.Sprintf("dpkg: changelog of %s: %v", pkg, err))
	}
	return dates
}

// debianChangelogHorizon stops reading a changelog once entries are this much older
// than its newest one: only the last year counts.
const debianChangelogHorizon = 2 * 365 * 24 * time.Hour

// parseDebianChangelog reads the trailer lines " -- Name <mail>  Date" of a gzipped
// Debian changelog. Unparseable dates are skipped.
func parseDebianChangelog(r io.Reader) ([]time.Time, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	sc := bufio.NewScanner(io.LimitReader(zr, maxChangelogBytes))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var out []time.Time
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, " -- ") {
			continue
		}
		i := strings.LastIndex(line, ">")
		if i < 0 {
			continue
		}
		t, ok := parseChangelogDate(strings.TrimSpace(line[i+1:]))
		if !ok {
			continue
		}
		if len(out) > 0 && t.Before(out[0].Add(-debianChangelogHorizon)) {
			break
		}
		out = append(out, t)
	}
	if err := sc.Err(); err != nil {
		return out, err
	}
	return out, nil
}

func parseChangelogDate(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC1123Z, "Mon, _2 Jan 2006 15:04:05 -0700", "Mon,  2 Jan 2006 15:04:05 -0700", "Mon, 2 Jan 2006 15:04:05 -0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}
