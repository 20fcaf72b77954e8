// Package selinux computes the security.selinux labels ostree gives a tree when it
// commits with an SELinux policy taken from the tree itself (`ostree commit
// --selinux-policy`, which rpm-ostree's build-chunked-oci uses): a bootc host checks
// files out with exactly the labels of the commit, so a Fedora or CentOS image without
// them does not boot in enforcing mode.
//
// Only the file-context part of the policy matters (libselinux's selabel "file"
// backend): file_contexts, file_contexts.homedirs and file_contexts.local, with the
// path substitutions of file_contexts.subs_dist and file_contexts.subs. Lookups follow
// libselinux: specifications without regex metacharacters are moved after the others,
// the last matching specification wins, "<<none>>" means no label.
package selinux

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"
)

// File type bits of st_mode, as file_contexts' type field selects them.
const (
	modeTypeMask = 0o170000
	modeSocket   = 0o140000
	modeSymlink  = 0o120000
	modeRegular  = 0o100000
	modeBlock    = 0o060000
	modeDir      = 0o040000
	modeChar     = 0o020000
	modeFIFO     = 0o010000
)

var fileTypes = map[string]uint32{
	"--": modeRegular, "-d": modeDir, "-l": modeSymlink, "-c": modeChar,
	"-b": modeBlock, "-s": modeSocket, "-p": modeFIFO,
}

// maxSpecs bounds a policy's specifications: Fedora's targeted policy has about 6,000,
// and each compiled expression takes a few KiB, so a hostile image cannot make the
// build use more than a couple of hundred MiB through its policy.
const maxSpecs = 50000

// Policy is a parsed file-contexts configuration. Lookups are safe for concurrent use.
type Policy struct {
	specs    []spec // libselinux order: regex specifications, then exact paths
	distSubs []sub  // file_contexts.subs_dist, last line first
	subs     []sub  // file_contexts.subs, last line first
}

type spec struct {
	where  string // file:line, for messages
	re     *regexp.Regexp
	prefix string // every path the regex matches starts with it
	mode   uint32 // file type the spec applies to; 0 for all
	label  string // "" for <<none>>
}

type sub struct{ src, dst string }

// Source is one file of the policy.
type Source struct {
	Name string // for messages
	R    io.Reader
}

// Parse reads file_contexts-format sources in order (base, homedirs, local) and the
// substitution files (subs_dist, subs; either may be empty).
func Parse(contexts []Source, subsDist, subs *Source) (*Policy, error) {
	p := &Policy{}
	var exact []spec
	for _, src := range contexts {
		err := eachLine(src, func(where string, fields []string) error {
			if len(p.specs)+len(exact) >= maxSpecs {
				return fmt.Errorf("%s: more than %d specifications", where, maxSpecs)
			}
			s, err := parseSpec(where, fields)
			if err != nil {
				return err
			}
			if hasMetaChars(fields[0]) {
				p.specs = append(p.specs, s)
			} else {
				exact = append(exact, s)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	p.specs = append(p.specs, exact...)
	var err error
	if subsDist != nil {
		if p.distSubs, err = parseSubs(*subsDist); err != nil {
			return nil, err
		}
	}
	if subs != nil {
		if p.subs, err = parseSubs(*subs); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// eachLine calls fn with the whitespace-separated fields of every line that is not
// blank or a comment.
func eachLine(src Source, fn func(where string, fields []string) error) error {
	sc := bufio.NewScanner(src.R)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if err := fn(fmt.Sprintf("%s:%d", src.Name, n), strings.Fields(line)); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", src.Name, err)
	}
	return nil
}

func parseSpec(where string, f []string) (spec, error) {
	s := spec{where: where}
	var regex, label string
	switch len(f) {
	case 2:
		regex, label = f[0], f[1]
	case 3:
		regex, label = f[0], f[2]
		m, ok := fileTypes[f[1]]
		if !ok {
			return spec{}, fmt.Errorf("%s: unknown file type %q", where, f[1])
		}
		s.mode = m
	default:
		return spec{}, fmt.Errorf("%s: want REGEX [TYPE] CONTEXT, got %d fields", where, len(f))
	}
	// libselinux anchors the expression as written: "^" + regex + "$".
	re, err := regexp.Compile("^" + regex + "$")
	if err != nil {
		return spec{}, fmt.Errorf("%s: regex %q: %w", where, regex, err)
	}
	s.re = re
	s.prefix, _ = re.LiteralPrefix()
	if label != "<<none>>" {
		s.label = label
	}
	return s, nil
}

// hasMetaChars reports whether a file_contexts regex is more than a literal path, the
// way libselinux decides which specifications to move to the end.
func hasMetaChars(re string) bool {
	for i := 0; i < len(re); i++ {
		switch re[i] {
		case '.', '^', '$', '?', '*', '+', '|', '[', '(', '{':
			return true
		case '\\':
			i++ // an escaped character is literal
		}
	}
	return false
}

func parseSubs(src Source) ([]sub, error) {
	var out []sub
	err := eachLine(src, func(where string, f []string) error {
		if len(f) != 2 {
			return fmt.Errorf("%s: want SOURCE DESTINATION, got %d fields", where, len(f))
		}
		if !strings.HasPrefix(f[0], "/") || !strings.HasPrefix(f[1], "/") {
			return fmt.Errorf("%s: substitution paths must be absolute", where)
		}
		out = append(out, sub{src: strings.TrimSuffix(f[0], "/"), dst: f[1]})
		return nil
	})
	if err != nil {
		return nil, err
	}
	// libselinux prepends each line to a list: the last line is tried first.
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// substitute applies the first matching substitution of subs to p.
func substitute(subs []sub, p string) (string, bool) {
	for _, s := range subs {
		if s.src == "" || !strings.HasPrefix(p, s.src) {
			continue
		}
		rest := p[len(s.src):]
		if rest != "" && rest[0] != '/' {
			continue
		}
		if rest != "" && s.dst == "/" {
			return rest, true
		}
		return s.dst + rest, true
	}
	return p, false
}

// Key returns the path the specifications are matched against: p after substitutions.
func (p *Policy) Key(path string) string {
	if k, ok := substitute(p.distSubs, path); ok {
		if k2, ok := substitute(p.subs, k); ok {
			return k2
		}
		return k
	}
	k, _ := substitute(p.subs, path)
	return k
}

// Label returns the context of the absolute path of a file with st_mode mode, or ""
// when the policy gives it none.
func (p *Policy) Label(path string, mode uint32) string {
	return p.lookup(p.Key(path), mode, nil)
}

// DirLabeler returns a function giving the label of an entry of directory dir (an
// absolute path) from its name and st_mode; "" for none. It matches against the
// specifications that can apply below dir only, which makes labelling a tree cost a
// few regex matches per entry instead of one per specification.
func (p *Policy) DirLabeler(dir string) func(name string, mode uint32) string {
	dkey := p.Key(dir)
	cands := p.candidates(dkey)
	prefix := strings.TrimSuffix(dkey, "/") + "/"
	return func(name string, mode uint32) string {
		key := p.Key(path.Join(dir, name))
		if !strings.HasPrefix(key, prefix) {
			return p.lookup(key, mode, nil) // a substitution of the entry itself
		}
		return p.lookup(key, mode, cands)
	}
}

// lookup scans the candidate specifications (all when cands is nil) from the last.
func (p *Policy) lookup(key string, mode uint32, cands []int32) string {
	mode &= modeTypeMask
	match := func(s *spec) bool {
		return (s.mode == 0 || mode == 0 || s.mode == mode) &&
			strings.HasPrefix(key, s.prefix) && s.re.MatchString(key)
	}
	if cands == nil {
		for i := len(p.specs) - 1; i >= 0; i-- {
			if match(&p.specs[i]) {
				return p.specs[i].label
			}
		}
		return ""
	}
	for i := len(cands) - 1; i >= 0; i-- {
		if s := &p.specs[cands[i]]; match(s) {
			return s.label
		}
	}
	return ""
}

// candidates returns, in policy order, the specifications that can match a key
// starting with dir + "/": those whose literal prefix is a prefix of it, or extends it.
// Labelling a directory's entries against these instead of every specification makes
// a tree's labels cost a few regex matches per file.
func (p *Policy) candidates(dir string) []int32 {
	d := dir
	if !strings.HasSuffix(d, "/") {
		d += "/"
	}
	var out []int32
	for i := range p.specs {
		pre := p.specs[i].prefix
		if strings.HasPrefix(d, pre) || strings.HasPrefix(pre, d) {
			out = append(out, int32(i))
		}
	}
	return out
}

// ErrNoPolicy is returned by Load when the tree has no SELinux configuration.
var ErrNoPolicy = errors.New("no SELinux policy")

// ErrPolicyMissing is returned (wrapping ErrNoPolicy) when the configuration names a
// policy whose file contexts the tree lacks: a host cannot load such a policy either,
// so labels would not matter.
var ErrPolicyMissing = fmt.Errorf("%w: the configured policy has no file_contexts", ErrNoPolicy)
