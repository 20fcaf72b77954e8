package bootc

import (
	"fmt"

	digest "github.com/opencontainers/go-digest"
)

// Check names group problems by the rule they break; tests and scripts match on them.
const (
	CheckManifest    = "manifest"       // manifest/config inconsistent, bad media type
	CheckBootable    = "bootable"       // no ostree.bootable / containers.bootc label
	CheckArch        = "architecture"   // config architecture differs from the client's
	CheckHistory     = "history"        // fewer history entries than layers
	CheckLayout      = "layout"         // ostree.final-diffid split
	CheckBlob        = "blob"           // blob digest, size or diff_id mismatch; unreadable blob
	CheckTar         = "tar"            // malformed or unexpected tar entries
	CheckObject      = "object"         // object checksum mismatch, bad encoding
	CheckXattrs      = "xattrs"         // missing or dangling .file-xattrs-link
	CheckCommit      = "commit"         // commit object missing, misplaced or not ostree.commit
	CheckTree        = "tree"           // commit tree incomplete
	CheckContainer   = "container-view" // checkout paths disagree with the commit
	CheckDerived     = "derived"        // derived layer cannot be applied
	CheckTOC         = "toc"            // zstd:chunked table of contents disagrees with the blob or the layer
	CheckKernel      = "kernel"         // lint: no kernel (warning); several kernels (fatal, as bootc's kernel lint)
	CheckSysroot     = "sysroot"        // lint: content in /sysroot
	CheckVar         = "var"            // lint: /var content
	CheckSELinux     = "selinux"        // lint: policy shipped but files unlabelled
	CheckLabels      = "labels"         // lint: label conventions
	CheckLayerCount  = "layer-count"    // lint: too many layers
	CheckNotChunked  = "not-ostree"     // lint: plain image, every layer derived
	CheckBoundImages = "bound-images"   // inspect: unparsable bound image units

	// Fatal lints of `bootc container lint`, named as bootc names them (see fatal.go).
	CheckBaseimageRoot = "baseimage-root"       // /sysroot not a directory, /ostree not a symlink to sysroot/ostree
	CheckAPIDirs       = "api-base-directories" // /dev, /proc, /sys, /run, /tmp or /var not a directory
	CheckVarRun        = "var-run"              // /var/run not a symlink
	CheckEtcUsrEtc     = "etc-usretc"           // both /etc and /usr/etc
	CheckKargs         = "bootc-kargs"          // unparsable /usr/lib/bootc/kargs.d file
)

// Problem is one finding. As a failure it is what bootc would refuse (or what makes the
// image wrong); as a warning it is a lint finding.
type Problem struct {
	Check   string `json:"check"`
	Layer   int    `json:"layer"` // -1 when not about one layer
	Message string `json:"message"`
}

func (p *Problem) Error() string {
	if p.Layer >= 0 {
		return fmt.Sprintf("%s: layer %d: %s", p.Check, p.Layer, p.Message)
	}
	return fmt.Sprintf("%s: %s", p.Check, p.Message)
}

func problemf(check string, layer int, format string, args ...any) *Problem {
	return &Problem{Check: check, Layer: layer, Message: fmt.Sprintf(format, args...)}
}

// LayerReport describes one verified layer.
type LayerReport struct {
	Index      int           `json:"index"`
	Role       Role          `json:"role"`
	Digest     digest.Digest `json:"digest"`
	DiffID     digest.Digest `json:"diff_id"`
	Size       int64         `json:"size"`
	MediaType  string        `json:"media_type"`
	Components []string      `json:"components,omitempty"`
	// Objects is the number of content objects in an ostree layer; Bytes their payload.
	Objects int   `json:"objects"`
	Bytes   int64 `json:"bytes"`
	// Entries is the number of tar entries read.
	Entries int  `json:"entries"`
	Checked bool `json:"checked"` // read and verified to the end
}

// TreeSummary counts the final filesystem tree (after derived layers).
type TreeSummary struct {
	Dirs     int   `json:"dirs"`
	Files    int   `json:"files"`
	Symlinks int   `json:"symlinks"`
	Bytes    int64 `json:"bytes"`
}

// DerivedSummary says what the derived layers changed, as bootc applies them.
type DerivedSummary struct {
	Layers   int      `json:"layers"`
	Added    int      `json:"added"`              // paths created
	Replaced int      `json:"replaced"`           // paths whose content or metadata changed
	Removed  int      `json:"removed"`            // paths removed by whiteouts
	Filtered []string `json:"filtered,omitempty"` // top-level paths bootc drops, e.g. "opt"
}

// Report is the outcome of Verify.
type Report struct {
	Image          string          `json:"image"`
	ManifestDigest digest.Digest   `json:"manifest_digest"`
	ConfigDigest   digest.Digest   `json:"config_digest"`
	Architecture   string          `json:"architecture"`
	OK             bool            `json:"ok"`
	Failure        *Problem        `json:"failure,omitempty"`
	Warnings       []Problem       `json:"warnings"`
	Commit         string          `json:"commit,omitempty"`
	Signatures     int             `json:"ed25519_signatures,omitempty"`
	Layers         []LayerReport   `json:"layers"`
	Tree           *TreeSummary    `json:"tree,omitempty"`
	Derived        *DerivedSummary `json:"derived,omitempty"`
}

func (r *Report) warn(check string, layer int, format string, args ...any) {
	r.Warnings = append(r.Warnings, *problemf(check, layer, format, args...))
}
