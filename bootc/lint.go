package bootc

import (
	"sort"
	"strings"

	"github.com/rechunker-dev/rechunker/ostree"
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

// lintTree checks the final tree: a kernel to boot, nothing in /sysroot, and /var
// content that bootc writes only at installation.
func (im *importer) lintTree() {
	if im.tree == nil {
		return
	}
	r := im.r
	kernels := Kernels(im.tree)
	switch len(kernels) {
	case 0:
		r.warn(CheckKernel, -1, "no kernel at usr/lib/modules/*/vmlinuz: the image cannot be booted")
	case 1:
	default:
		r.warn(CheckKernel, -1, "%d kernels (%s): bootc expects exactly one", len(kernels), strings.Join(kernels, ", "))
	}
	if sys := im.tree.LookupDir("/sysroot"); sys != nil && (len(sys.Files) > 0 || len(sys.Dirs) > 0) {
		r.warn(CheckSysroot, -1, "/sysroot is not empty in the commit; its content is not deployed")
	}
	if im.derived != nil && im.derived.filter["sysroot"] {
		r.warn(CheckSysroot, -1, "derived layers write to /sysroot; bootc drops that content")
	}
	if policy, unlabelled, total := selinuxCoverage(im.tree); policy != "" && unlabelled > 0 {
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
