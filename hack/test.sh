#!/usr/bin/env bash
# Runs rechunker's checks, installing what they need first (hack/setup.sh): gofmt, go
# vet, unit tests, the end-to-end integration suite (package integration, build tag
# "integration": the built CLI with debootstrap, umoci, skopeo, rpm, podman), then the
# QEMU boot suite (vm-tests, build tag "qemuvm": boots, upgrades and rolls back real
# deployments of chunked images). Both need root and the tools from hack/setup.sh; tests
# skip with a message when a tool is missing, and fail instead when CI=true.
#
#   ./hack/test.sh          everything (unit + integration + QEMU boots)
#   ./hack/test.sh -short   gofmt, vet and unit tests with go test -short (no integration)
#   ./hack/test.sh -vm      only the QEMU boot suite
#
# Exits non-zero on any failure. The last line is "test.sh: PASS ..." or "test.sh: FAIL ...".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

short=0
vmonly=0
for arg in "$@"; do
	case $arg in
	-short | --short) short=1 ;;
	-vm | --vm) vmonly=1 ;;
	-h | --help)
		sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "test.sh: unknown argument $arg (use -short or -vm)" >&2
		exit 2
		;;
	esac
done

command -v go >/dev/null || PATH=/usr/local/go/bin:$PATH
# Install what the tests need first (packages, containers.conf, bin/rechunker); setup.sh
# asks for root only when something is missing. The integration suite and the QEMU
# boots need root: a user with sudo gets them through sudo; without root or sudo they
# skip with a message (and fail when CI=true).
if ((!short)) && [[ -z ${RECHUNKER_SETUP_DONE:-} ]]; then
	./hack/setup.sh
	export RECHUNKER_SETUP_DONE=1
fi
if ((!short)) && [[ $(id -u) -ne 0 ]]; then
	if command -v sudo >/dev/null; then
		echo "test.sh: the integration tests and QEMU boots need root; re-running with sudo"
		exec sudo env CI="${CI:-}" RECHUNKER_SETUP_DONE=1 PATH="$PATH" \
			${RECHUNKER_TEST_CACHE:+RECHUNKER_TEST_CACHE="$RECHUNKER_TEST_CACHE"} "$0" "$@"
	fi
	echo "test.sh: not root and no sudo here: the tests that need root skip"
fi
export CGO_ENABLED=0 GOFLAGS="-buildvcs=false -tags=containers_image_openpgp"
tags=containers_image_openpgp,integration
[[ -f /etc/rechunker-test/containers.conf && -z ${CONTAINERS_CONF:-} ]] &&
	export CONTAINERS_CONF=/etc/rechunker-test/containers.conf

start=$SECONDS
stage=""
trap 'rc=$?; if ((rc != 0)); then echo "test.sh: FAIL in ${stage:-setup} after $((SECONDS - start))s"; fi' EXIT

# The QEMU suite: three TCG boots of real deployments (about a minute each); the boot
# image is built once (debootstrap + dracut, about 4 minutes) and cached in
# $RECHUNKER_TEST_CACHE. Console logs of a failed boot are kept under the test's work
# directory, named in the failure.
vm_suite() {
	stage="QEMU boot suite"
	echo "== QEMU boot suite: go test -tags=containers_image_openpgp,qemuvm ./vm-tests/ -run TestQEMU -count=1 -timeout 45m -v"
	go test -tags=containers_image_openpgp,qemuvm ./vm-tests/ -run TestQEMU -count=1 -timeout 45m -v
}
if ((vmonly)); then
	vm_suite
	echo "test.sh: PASS (QEMU boot suite) in $((SECONDS - start))s"
	exit 0
fi

stage="gofmt"
echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*'))
if [[ -n $unformatted ]]; then
	echo "gofmt needed on:"
	echo "$unformatted"
	exit 1
fi

stage="go vet"
echo "== go vet"
go vet ./...
go vet -tags="$tags" ./integration/...
go vet -tags=containers_image_openpgp,qemuvm ./vm-tests/

stage="unit tests"
if ((short)); then
	# -short also skips the slower in-package tests that check testing.Short().
	echo "== unit tests: go test -short ./..."
	go test -short ./...
else
	echo "== unit tests: go test ./..."
	go test ./...
fi

if ((short)); then
	echo "test.sh: PASS (gofmt, vet, unit tests; integration skipped with -short) in $((SECONDS - start))s"
	exit 0
fi

stage="integration tests"
echo "== integration tests: go test -tags=$tags ./integration/... -count=1 -timeout 50m -v"
# -v streams progress (CI logs); the summary lines are repeated at the end.
log=$(mktemp)
trap 'rc=$?; rm -f "$log"; if ((rc != 0)); then echo "test.sh: FAIL in ${stage:-setup} after $((SECONDS - start))s"; fi' EXIT
set +e
go test -tags="$tags" ./integration/... -count=1 -timeout 50m -v 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
echo "== integration summary"
grep -E '^(--- (PASS|FAIL|SKIP)|ok |FAIL|PASS$)' "$log" | grep -v '^    ' || true
# One line per upgrade scenario: bytes fetched chunked and plain, lower bound, build times.
grep -o 'scenario summary: .*' "$log" || true
skips=$(grep -c -- '--- SKIP' "$log" || true)
((rc == 0)) || exit "$rc"
vm_log=$(mktemp)
trap 'rc=$?; rm -f "$log" "$vm_log"; if ((rc != 0)); then echo "test.sh: FAIL in ${stage:-setup} after $((SECONDS - start))s"; fi' EXIT
set +e
vm_suite 2>&1 | tee "$vm_log"
rc=${PIPESTATUS[0]}
set -e
((rc == 0)) || exit "$rc"
skips=$((skips + $(grep -c -- '--- SKIP' "$vm_log" || true)))
grep -o 'boot [0-9a-z-]*: .* report after [0-9]* s' "$vm_log" || true
echo "test.sh: PASS (gofmt, vet, unit tests, integration tests, QEMU boots; $skips skipped) in $((SECONDS - start))s"
