// Package vmtests boots chunked images in virtual machines and upgrades them,
// the end-to-end proof that rechunker's output is what a real ostree client
// accepts and boots.
//
// Two flows share it. The QEMU flow (qemu_test.go, build tag `qemuvm`, run by
// hack/test.sh) needs only root, QEMU and Debian's ostree: it builds a small
// bootable Debian image with dracut (bootimage.go, guest/), imports chunked
// releases with libostree through GObject introspection (client/), deploys
// them with `ostree admin deploy` and boots v1, the upgrade and the rollback,
// with KVM when a probe boot works and software emulation otherwise (qemu.go,
// ostreehost.go). The bcvk flow (vmtest_test.go, build tag `vmtest`) needs
// podman, bcvk, libvirt and KVM and runs `bootc upgrade` in a Fedora bootc
// guest.
//
// Everything the flows use that can be checked without a VM is in this
// untagged package and unit tested in normal CI: command construction, the
// parsers of bootc's, ostree's and the guest's output, console failure
// detection, host prerequisites, and the host side of the QEMU flow on
// deliberately broken images (client_test.go).
//
// This package owns no product code: it drives the built CLI as a user would.
package vmtests
