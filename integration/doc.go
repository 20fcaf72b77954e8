// Package integration holds end-to-end tests that drive the built rechunker binary the way
// a user does, against real tools: debootstrap builds a Debian rootfs, umoci turns it into
// a multi-layer OCI image, skopeo embeds bound images, rpmbuild/rpm make package
// databases, podman builds inputs and runs the results. The tests carry the build tag
// "integration", so `go test ./...` skips them; ./hack/test.sh runs them:
//
//	go test -tags=containers_image_openpgp,integration ./integration/... -v
//
// The scenarios:
//
//   - TestSeedScenario: a Debian bootc image with a bound image gets one new file;
//   - TestRPMPackageUpgrade: one rpm package of ten is upgraded;
//   - TestSecurityUpdate: the Debian image rebuilt with bookworm-security and
//     bookworm-updates (apt-get upgrade in a chroot), against the lower bound computed
//     from the files that really changed;
//   - TestPartialComponentUpdate: one blob of a large component changes (an embedded
//     image's layer, a big package's file);
//   - TestPodmanBuildInput: a `podman build` image read from containers-storage;
//   - TestTransportRoundTrips: containers-storage, oci-archive and docker-archive
//     outputs read back by podman and skopeo, and reproducible manifests.
//
// Each upgrade scenario logs one "scenario summary:" line (bytes fetched chunked and
// plain, lower bound, layers, build times); hack/test.sh repeats them at the end.
//
// They need root (debootstrap, umoci unpack with real ownership, chroot). Each test
// skips with a message when a tool it needs is missing, except under CI=true (.ci/run
// installs every tool first), where that is a failure. Slow inputs are cached under
// $RECHUNKER_TEST_CACHE (default ~/.cache/rechunker-test): the debootstrap rootfs, its
// security-updated rebuild (the first run needs deb.debian.org, including
// debian-security; RECHUNKER_DEBIAN_MIRROR and RECHUNKER_DEBIAN_SECURITY_MIRROR
// override them) and one-layer OCI images of both. Set RECHUNKER_BIN to test a prebuilt
// binary instead of building ./cmd/rechunker.
package integration
