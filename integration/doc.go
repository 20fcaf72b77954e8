// Package integration holds end-to-end tests that drive the built rechunker binary the way
// a user does, against real tools: debootstrap builds a Debian rootfs, umoci turns it into
// a multi-layer OCI image, skopeo embeds bound images, rpmbuild/rpm make package
// databases, podman runs the results. The tests carry the build tag "integration", so
// `go test ./...` skips them; ./hack/test.sh runs them:
//
//	go test -tags=containers_image_openpgp,integration ./integration/... -v
//
// They need root (debootstrap, umoci unpack with real ownership). Each test skips with a
// message when a tool it needs is missing, except under CI=true (.ci/run installs every
// tool first), where that is a failure. Slow inputs (the debootstrap rootfs) are cached
// under $RECHUNKER_TEST_CACHE (default ~/.cache/rechunker-test); set RECHUNKER_BIN to test
// a prebuilt binary instead of building ./cmd/rechunker.
package integration
