package bootc

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// KargsDir holds the image's kernel arguments for bootc: TOML files named *.toml, each
// with a kargs list of strings and an optional match-architectures list. bootc reads
// them all at install and upgrade, and one it cannot parse fails its bootc-kargs lint.
const KargsDir = "/usr/lib/bootc/kargs.d"

// kargsFile reports whether bootc reads the file name in KargsDir: a ".toml" extension
// after a non-empty stem.
func kargsFile(name string) bool {
	return len(name) > len(".toml") && strings.HasSuffix(name, ".toml")
}

// wantKargsPath reports whether p, a commit path, is a file of KargsDir.
func wantKargsPath(p string) bool {
	dir, name := path.Split(p)
	return dir == KargsDir+"/" && kargsFile(name)
}

// kargsConfig is the whole schema bootc accepts; any other key is an error.
type kargsConfig struct {
	Kargs              *[]string `toml:"kargs"`
	MatchArchitectures *[]string `toml:"match-architectures"`
}

// parseKargs returns why bootc would not parse a kargs.d file, or nil.
func parseKargs(b []byte) error {
	if !utf8.Valid(b) {
		return errors.New("not UTF-8")
	}
	var c kargsConfig
	md, err := toml.Decode(string(b), &c)
	if err != nil {
		return err
	}
	if u := md.Undecoded(); len(u) > 0 {
		return fmt.Errorf("unknown key %q", u[0].String())
	}
	if c.Kargs == nil {
		return errors.New("no kargs list")
	}
	return nil
}

// lintKargs is the bootc-kargs lint: it parses the files of KargsDir in name order and
// returns a problem for the first bootc would not parse. A file whose content was not
// captured (over captureLimit, or a symlink out of KargsDir) gets a warning instead.
func (im *importer) lintKargs() *Problem {
	d := im.tree.LookupDir(KargsDir)
	if d == nil || im.capture == nil {
		return nil
	}
	for _, n := range d.FileNames() {
		if !kargsFile(n) {
			continue
		}
		p := KargsDir + "/" + n
		err := im.parseKargsFile(p)
		if errors.Is(err, errNotCaptured) {
			im.r.warn(CheckKargs, -1, "cannot check %s: its content was not read (a symlink out of %s, or over %d bytes)", p, KargsDir, captureLimit)
			continue
		}
		if err != nil {
			return problemf(CheckKargs, -1, "%s: %v: %s (bootc-kargs), and bootc install and upgrade fail on it too; "+
				"fix or remove the file (it holds `kargs = [\"...\"]` and optionally `match-architectures = [\"x86_64\"]`)", p, err, refused)
		}
	}
	return nil
}

var errNotCaptured = errors.New("content not captured")

func (im *importer) parseKargsFile(p string) error {
	_, f, err := resolve(im.tree, p)
	if err != nil {
		return err
	}
	b, ok := im.capture.data[f.Checksum]
	if !ok && f.Size > 0 {
		return errNotCaptured
	}
	return parseKargs(b)
}
