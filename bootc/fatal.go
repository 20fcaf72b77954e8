package bootc

import (
	"fmt"
	"path"
	"strings"

	"github.com/rechunker-dev/rechunker/ostree"
)

// The fatal lints of `bootc container lint`.
//
// bootc lints a container's root with fourteen checks (crates/lib/src/lints.rs in
// bootc's sources). Seven are fatal: bootc refuses the image, and a few of them also
// break installation or boot. Verify repeats each fatal lint the image itself decides,
// under bootc's name for it, and fails the image on the first that fails:
//
//	baseimage-root        /sysroot is a directory and /ostree a symlink to exactly
//	                      "sysroot/ostree", in the root and in the reference root bootc
//	                      ships as documentation (baseimageRef). Without /sysroot,
//	                      ostree-prepare-root cannot move the deployment's root there
//	                      and the boot stops in emergency mode.
//	api-base-directories  /dev, /proc, /sys, /run, /tmp and /var are directories.
//	var-run               /var/run, when present, is a symlink.
//	etc-usretc            no /usr/etc beside /etc.
//	kernel                at most one /usr/lib/modules/<version> holds a vmlinuz.
//	bootc-kargs           every kargs.d file parses (kargs.go).
//	utf8                  names and symlink targets are UTF-8. ostree cannot store
//	                      anything else, so the object and derived-layer checks refuse
//	                      such a tree before any lint runs.
//
// bootc's seven warnings (buildah-injected, baseimage-composefs, var-log, var-tmpfiles,
// sysusers, nonempty-boot, nonempty-run-tmp) are not repeated; verify's own warnings
// (lint.go) cover part of the same ground.
//
// The tree is a commit tree, where the /etc a container shows is /usr/etc. The
// etc-usretc conflict is therefore a top-level /etc beside /usr/etc in the commit, or
// a derived layer writing under usr/etc (a bootc container always has /etc).

// baseimageRef is the reference root bootc ships as documentation; its lint checks it
// like the root.
const baseimageRef = "/usr/share/doc/bootc/baseimage/base"

// apiDirs are the mount points of the API file systems, plus /var.
var apiDirs = []string{"dev", "proc", "sys", "run", "tmp", "var"}

// refused starts the consequence in every fatal lint message.
const refused = "bootc container lint refuses the image"

// RootLints applies to t, a commit tree, the fatal lints that need nothing but the tree
// (all but bootc-kargs and utf8). It returns one problem per failing lint, its check the
// lint's name and its message what is wrong, where, and what to add to the Containerfile.
func RootLints(t *ostree.Tree) []*Problem {
	var out []*Problem
	for _, l := range []struct{ check, msg string }{
		{CheckBaseimageRoot, baseimageRoot(t)},
		{CheckAPIDirs, lintAPIDirs(t.Root)},
		{CheckVarRun, lintVarRun(t)},
		{CheckEtcUsrEtc, lintEtcUsrEtc(t.Root)},
		{CheckKernel, lintKernels(t)},
	} {
		if l.msg != "" {
			out = append(out, &Problem{Check: l.check, Layer: -1, Message: l.msg})
		}
	}
	return out
}

// entry says what name is in d: "missing", "a directory", "a regular file" or
// "a symlink to ...".
func entry(d *ostree.Dir, name string) string {
	if d.Dirs[name] != nil {
		return "a directory"
	}
	switch f := d.Files[name]; {
	case f == nil:
		return "missing"
	case f.Header.IsSymlink():
		return fmt.Sprintf("a symlink to %q", f.Header.Target)
	}
	return "a regular file"
}

// baseimageRoot is the baseimage-root lint, on the root and on baseimageRef if present.
func baseimageRoot(t *ostree.Tree) string {
	msgs := []string{baseimageRootAt(t.Root, "")}
	if ref := t.LookupDir(baseimageRef); ref != nil {
		msgs = append(msgs, baseimageRootAt(ref, baseimageRef))
	}
	return joinNonEmpty(msgs)
}

// baseimageRootAt checks sysroot and ostree in d, the directory at path at ("" for the
// root).
func baseimageRootAt(d *ostree.Dir, at string) string {
	var bad, fix []string
	replace := func(name, want, cmd string) {
		p, what := at+"/"+name, entry(d, name)
		if what == "missing" {
			bad = append(bad, p+" is missing")
		} else {
			bad = append(bad, fmt.Sprintf("%s is %s, not %s", p, what, want))
			cmd = "rm -rf " + p + " && " + cmd
		}
		fix = append(fix, cmd)
	}
	noSysroot := d.Dirs["sysroot"] == nil
	if noSysroot {
		replace("sysroot", "a directory", "mkdir "+at+"/sysroot")
	}
	if f := d.Files["ostree"]; f == nil || !f.Header.IsSymlink() || f.Header.Target != "sysroot/ostree" {
		replace("ostree", "a symlink to sysroot/ostree", "ln -s sysroot/ostree "+at+"/ostree")
	}
	if len(bad) == 0 {
		return ""
	}
	msg := strings.Join(bad, " and ") + ": " + refused + " (baseimage-root)"
	if noSysroot && at == "" {
		msg += " and a deployment stops in emergency mode (ostree-prepare-root cannot move its root to /sysroot)"
	}
	return msg + "; add `" + strings.Join(fix, " && ") + "` to the Containerfile"
}

// lintAPIDirs is the api-base-directories lint.
func lintAPIDirs(root *ostree.Dir) string {
	var bad, rm, mk []string
	for _, n := range apiDirs {
		if root.Dirs[n] != nil {
			continue
		}
		p, what := "/"+n, entry(root, n)
		if what == "missing" {
			bad = append(bad, p+" is missing")
		} else {
			bad = append(bad, p+" is "+what)
			rm = append(rm, p)
		}
		mk = append(mk, p)
	}
	if len(bad) == 0 {
		return ""
	}
	fix := "mkdir " + strings.Join(mk, " ")
	if len(rm) > 0 {
		fix = "rm -f " + strings.Join(rm, " ") + " && " + fix
	}
	return fmt.Sprintf("%s: %s (api-base-directories: /dev, /proc, /sys, /run, /tmp and /var must be directories, "+
		"the system mounts its API file systems there); add `%s` to the Containerfile", strings.Join(bad, ", "), refused, fix)
}

// lintVarRun is the var-run lint. A derived layer's /var/run lands in
// /usr/share/factory/var/run on hosts whose ostree predates 2024.3.
func lintVarRun(t *ostree.Tree) string {
	for _, p := range []string{"/var/run", "/usr/share/factory/var/run"} {
		d := t.LookupDir(path.Dir(p))
		if d == nil {
			continue
		}
		if f := d.Files["run"]; d.Dirs["run"] == nil && (f == nil || f.Header.IsSymlink()) {
			continue
		}
		return fmt.Sprintf("%s is %s, not a symlink: %s (var-run); add `rm -rf /var/run && ln -s ../run /var/run` to the Containerfile",
			p, entry(d, "run"), refused)
	}
	return ""
}

// lintEtcUsrEtc is the etc-usretc lint on the commit: a top-level /etc beside
// /usr/etc. (A derived layer writing usr/etc is found while reading it.)
func lintEtcUsrEtc(root *ostree.Dir) string {
	usr := root.Dirs["usr"]
	if entry(root, "etc") == "missing" || usr == nil || entry(usr, "etc") == "missing" {
		return ""
	}
	return fmt.Sprintf("the commit has both /etc (%s) and /usr/etc: %s (etc-usretc) and ostree refuses to deploy it; "+
		"ship configuration in /etc only (the commit stores it as /usr/etc)", entry(root, "etc"), refused)
}

// derivedUsrEtc is the etc-usretc lint on derived layers.
func derivedUsrEtc(ds *derivedState) *Problem {
	if ds == nil || ds.usrEtc == "" {
		return nil
	}
	return problemf(CheckEtcUsrEtc, ds.usrEtcLayer, "the layer writes %s, but a bootc container has /etc: %s (etc-usretc), "+
		"/usr/etc is where ostree keeps the image's /etc; write to /etc instead", ds.usrEtc, refused)
}

// lintKernels is the kernel lint: more than one kernel (none is a warning, lint.go).
func lintKernels(t *ostree.Tree) string {
	ks := Kernels(t)
	if len(ks) <= 1 {
		return ""
	}
	return fmt.Sprintf("%d kernels in /usr/lib/modules (%s): %s (kernel), bootc boots exactly one; "+
		"remove all but one /usr/lib/modules/<version> directory with a vmlinuz", len(ks), strings.Join(ks, ", "), refused)
}

func joinNonEmpty(msgs []string) string {
	var out []string
	for _, m := range msgs {
		if m != "" {
			out = append(out, m)
		}
	}
	return strings.Join(out, "; ")
}
