package rechunk

import (
	"strings"

	"github.com/rechunker-dev/rechunker/ostree"
)

// kernelSource claims what no package owns below usr/lib/modules/<kver> for every kernel
// directory that holds a kernel or an initramfs: the initramfs and the module indexes
// generated at build time (and the whole kernel in images without a package database).
// They change with the kernel, and the initramfs is big, so it must neither share a
// layer with the catch-all (rpm-ostree#5544) nor be a "big unowned file" named after a
// versioned path.
type kernelSource struct {
	dirs map[string]bool // "/usr/lib/modules/<kver>/"
}

func newKernelSource(t *ostree.Tree) *kernelSource {
	s := &kernelSource{dirs: map[string]bool{}}
	mods := t.LookupDir("/usr/lib/modules")
	if mods == nil {
		return s
	}
	for name, d := range mods.Dirs {
		_, vmlinuz := d.Files["vmlinuz"]
		_, initramfs := d.Files["initramfs.img"]
		if vmlinuz || initramfs {
			s.dirs["/usr/lib/modules/"+name+"/"] = true
		}
	}
	return s
}

func (*kernelSource) kind() string { return "kernel" }

func (s *kernelSource) claim(_ int, p string, _ *ostree.File) string {
	const prefix = "/usr/lib/modules/"
	if !strings.HasPrefix(p, prefix) {
		return ""
	}
	i := strings.IndexByte(p[len(prefix):], '/')
	if i < 0 || !s.dirs[p[:len(prefix)+i+1]] {
		return ""
	}
	return KernelComponent
}

func (*kernelSource) info(string) sourceInfo {
	// Rebuilt with the kernel and with any of the packages it embeds.
	return sourceInfo{changesPerYear: 52}
}

// pkgDBSource claims the package databases themselves: they change whenever any
// package does, so they get a component of their own (rpm-ostree#5304).
type pkgDBSource struct {
	dirs []string // resolved directories with a trailing slash
}

func (*pkgDBSource) kind() string { return "pkgdb" }

func (s *pkgDBSource) claim(_ int, p string, _ *ostree.File) string {
	for _, d := range s.dirs {
		if strings.HasPrefix(p, d) {
			return PackageDBComponent
		}
	}
	return ""
}

func (*pkgDBSource) info(string) sourceInfo {
	return sourceInfo{alwaysChanges: true, changesPerYear: -1}
}
