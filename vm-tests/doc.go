// Package vmtests boots chunked images in real virtual machines and upgrades
// them with bootc, the end-to-end proof that rechunker's output is what bootc
// expects.
//
// The VM flow itself lives in vmtest_test.go behind the `vmtest` build tag and
// needs podman, bcvk, libvirt and KVM (see README.md). Everything the flow uses
// that can be checked without a VM lives in this untagged package and is unit
// tested in normal CI: command construction for podman, rechunker, skopeo and
// bcvk; parsing of `bootc status --json`, `bootc upgrade` output, bootc's
// --progress-fd JSON lines, ostree blob refs and `rechunker diff --json`; the
// Containerfiles of the two image versions; and host prerequisite detection
// that turns into a one-line skip message.
//
// This package owns no product code: it drives the built CLI as a user would.
package vmtests
