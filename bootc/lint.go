package bootc

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/rechunker-dev/rechunker/ostree"
	"github.com/rechunker-dev/rechunker/ostree/selinux"
)

// lintMetadata adds `bootc container lint`-style warnings about labels and layers.
func (im *importer) lintMetadata() {
	labels := im.src.Labels()
	r := im.r
	switch v, ok := labels[LabelBootc]; {
	case !ok:
		r.warn(CheckLabels, -1, "no %s label; bootc accepts %s alone but tools look for %s=1", LabelBootc, LabelBootable, LabelBootc)
	case v != "1":
		r.warn(CheckLabels, -1, "%s=%q; bootc expects \"1\"", LabelBootc, v)
	}
	if im.layout.Ostree {
		if _, ok := labels[LabelCommit]; !ok {
			r.warn(CheckLabels, -1, "no %s label", LabelCommit)
		}
	} else {
		r.warn(CheckNotChunked, -1, "no %s label: not an ostree chunked image, bootc imports every layer as a derived layer", LabelFinalDiffID)
	}
	n := len(im.src.Layers)
	if n > StorageLayerLimit {
		r.warn(CheckLayerCount, -1, "%d layers: containers-storage refuses more than %d", n, StorageLayerLimit)
	} else if n > OldBootcLayerLimit {
		r.warn(CheckLayerCount, -1, "%d layers: bootc older than 1.1.3 fails above %d", n, OldBootcLayerLimit)
	}
}

// maxExamples bounds the paths quoted in one warning.
const maxExamples = 5

// lintFatal applies bootc's fatal lints (fatal.go, kargs.go); the first that fails
// becomes the Report's failure. The root lints need the commit's root: a plain image's
// layers are all derived and verify does not rebuild its root, so they are skipped there.
func (im *importer) lintFatal() {
	if im.tree == nil {
		return
	}
	var ps []*Problem
	if im.layout.Ostree {
		ps = RootLints(im.tree)
	}
	if p := derivedUsrEtc(im.derived); p != nil {
		ps = append(ps, p)
	}
	if p := im.lintKargs(); p != nil {
		ps = append(ps, p)
	}
	if len(ps) > 0 && im.r.Failure == nil {
		im.r.Failure = ps[0]
	}
}

// lintTree checks the final tree: a kernel to boot, nothing in /sysroot, and /var
// content that bootc writes only at installation.
func (im *importer) lintTree() {
	if im.tree == nil {
		return
	}
	r := im.r
	if len(Kernels(im.tree)) == 0 {
		r.warn(CheckKernel, -1, "no kernel at usr/lib/modules/*/vmlinuz: the image cannot be booted")
	}
	if sys := im.tree.LookupDir("/sysroot"); sys != nil && (len(sys.Files) > 0 || len(sys.Dirs) > 0) {
		r.warn(CheckSysroot, -1, "/sysroot is not empty in the commit; its content is not deployed")
	}
	if im.derived != nil && im.derived.filter["sysroot"] {
		r.warn(CheckSysroot, -1, "derived layers write to /sysroot; bootc drops that content")
	}
	if im.lintLabels() {
		// checked against the policy itself
	} else if policy, unlabelled, total := selinuxCoverage(im.tree); policy != "" && unlabelled > 0 {
		r.warn(CheckSELinux, -1, "%d of %d entries have no security.selinux label although the image ships an SELinux policy (%s): "+
			"an enforcing host checks them out unlabelled; build without --no-selinux to label them from the policy",
			unlabelled, total, policy)
	}
	if v := varContent(im.tree); len(v) > 0 {
		ex := v
		if len(ex) > maxExamples {
			ex = ex[:maxExamples]
		}
		r.warn(CheckVar, -1, "%d files under /var (%s): bootc writes /var only at installation, upgrades never update it; ship them in /usr and use tmpfiles.d",
			len(v), strings.Join(ex, ", "))
	}
}

// lintLabels compares every label of the tree with the one the image's own SELinux
// policy gives (what rpm-ostree and rechunker write): an image labelled by another tool,
// or not at all, runs with wrong contexts on an enforcing host. /usr/etc is looked up
// as /etc, where rpm-ostree labels it. It returns false when the image ships no
// readable policy.
func (im *importer) lintLabels() bool {
	if im.capture == nil || im.tree == nil {
		return false
	}
	read := func(p string) ([]byte, error) {
		f := im.tree.LookupFile(p)
		if f == nil || f.Header.IsSymlink() {
			return nil, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
		}
		b, ok := im.capture.data[f.Checksum]
		if !ok {
			return nil, fmt.Errorf("%s was not read (over %d bytes?)", p, policyCaptureLimit)
		}
		return b, nil
	}
	pol, typ, err := selinux.LoadFrom(read)
	if errors.Is(err, selinux.ErrNoPolicy) {
		return false
	}
	if err != nil {
		im.r.warn(CheckSELinux, -1, "cannot check labels against the image's SELinux policy: %v", err)
		return true
	}
	policyPath := func(p string) string {
		if p == "/usr/etc" || strings.HasPrefix(p, "/usr/etc/") {
			return p[len("/usr"):]
		}
		return p
	}
	var wrong, total int
	var ex []string
	check := func(p string, x ostree.Xattrs, want string) {
		if want == "" {
			return // <<none>>: whatever the entry has is kept
		}
		total++
		got, _ := x.Get("security.selinux")
		if g := strings.TrimSuffix(string(got), "\x00"); g != want {
			wrong++
			if len(ex) < maxExamples {
				if g == "" {
					g = "no label"
				}
				ex = append(ex, fmt.Sprintf("%s: %s, the policy says %s", p, g, want))
			}
		}
	}
	check("/", im.tree.Root.Meta.Xattrs, pol.Label("/", 0o040000))
	var walk func(p string, d *ostree.Dir)
	walk = func(p string, d *ostree.Dir) {
		label := pol.DirLabeler(policyPath(p))
		for _, n := range d.FileNames() {
			f := d.Files[n]
			check(path.Join(p, n), f.Header.Xattrs, label(n, f.Header.Mode))
		}
		for _, n := range d.DirNames() {
			sub, child := d.Dirs[n], path.Join(p, n)
			want := label(n, 0o040000)
			if child == "/usr/etc" {
				want = pol.Label("/etc", 0o040000)
			}
			check(child, sub.Meta.Xattrs, want)
			walk(child, sub)
		}
	}
	walk("/", im.tree.Root)
	if wrong > 0 {
		im.r.warn(CheckSELinux, -1, "%d of %d entries are labelled otherwise than the image's SELinux policy %q says (%s); an enforcing host checks them out so",
			wrong, total, typ, strings.Join(ex, "; "))
	}
	return true
}

// selinuxCoverage returns where the tree configures an SELinux policy ("" when it does
// not) and how many of its files, symlinks and directories carry no label.
func selinuxCoverage(t *ostree.Tree) (policy string, unlabelled, total int) {
	for _, p := range []string{"/usr/etc/selinux/config", "/etc/selinux/config"} {
		if t.LookupFile(p) != nil {
			policy = p
			break
		}
	}
	if policy == "" {
		return "", 0, 0
	}
	_ = t.Walk(func(_ string, d *ostree.Dir, f *ostree.File) error {
		x := ostree.Xattrs(nil)
		if f != nil {
			x = f.Header.Xattrs
		} else {
			x = d.Meta.Xattrs
		}
		total++
		if _, ok := x.Get("security.selinux"); !ok {
			unlabelled++
		}
		return nil
	})
	return policy, unlabelled, total
}

// Kernels returns the kernel versions with a usr/lib/modules/<kver>/vmlinuz.
func Kernels(t *ostree.Tree) []string {
	mods := t.LookupDir("/usr/lib/modules")
	if mods == nil {
		return nil
	}
	var out []string
	for name, d := range mods.Dirs {
		if f := d.Files["vmlinuz"]; f != nil {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// varContent lists regular files under /var, except /var/tmp which ostree-ext
// synthesizes (symlinks such as /var/run -> /run are what tmpfiles.d would create anyway).
func varContent(t *ostree.Tree) []string {
	v := t.LookupDir("/var")
	if v == nil {
		return nil
	}
	var out []string
	_ = (&ostree.Tree{Root: v}).Walk(func(p string, d *ostree.Dir, f *ostree.File) error {
		if f != nil && !f.Header.IsSymlink() && !strings.HasPrefix(p, "/tmp/") {
			out = append(out, "/var"+p)
		}
		return nil
	})
	return out
}
