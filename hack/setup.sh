#!/usr/bin/env bash
# Prepares a Debian 12 (bookworm) machine for rechunker: installs the tools the demo and
# the tests drive (ostree, skopeo, umoci, podman, buildah, debootstrap, rpm, ...), writes a
# containers.conf that makes podman/buildah work in sandboxes, and builds ./bin/rechunker.
# Run it as root or as a user with sudo: it asks for root (through sudo) only when it has
# something to install. Safe to re-run; it only installs what is missing. hack/demo.sh and
# hack/test.sh call it first, so a fresh machine needs nothing else.
#
# Environment:
#   RECHUNKER_CONTAINERS_CONF  where to write the containers.conf (default
#                              /etc/rechunker-test/containers.conf). Nothing is exported
#                              globally: tests and the demo point CONTAINERS_CONF at it.
set -euo pipefail

die() { echo "setup.sh: $*" >&2; exit 1; }
step() { echo "setup.sh: $*"; }

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

[[ -r /etc/debian_version ]] || die "expects Debian 12 (bookworm); /etc/debian_version is missing"

# Packages, all from bookworm main. podman's runtime is runc (crun fails on this kind of
# cgroup set-up, see containers.conf below); netavark/aardvark-dns/catatonit/fuse-overlayfs
# are what podman normally pulls in as recommends.
packages=(
	ostree skopeo umoci podman buildah runc conmon netavark aardvark-dns catatonit
	fuse-overlayfs uidmap debootstrap debian-archive-keyring gpgv rpm attr jq zstd
	sqlite3 pigz xz-utils tar git ca-certificates time bc curl
	# A real SELinux policy: its file contexts are the oracle for labelling tests.
	# Nothing is enforced; these machines have no SELinux LSM.
	selinux-policy-default
	# GLib's own GVariant encoder (through PyGObject) is the oracle for signed metadata.
	python3-gi
	# The QEMU boot suite (vm-tests): libostree through GObject introspection is the
	# importing client, QEMU (TCG where KVM does not work) boots the deployments, and
	# mkfs.ext4 -d makes their disks without a loop mount.
	gir1.2-ostree-1.0 qemu-system-x86 e2fsprogs
	# The release test runs the cross-built arm64 binary under qemu-aarch64-static.
	qemu-user-static
	# The zstd:chunked partial-pull test pushes to a registry it starts on 127.0.0.1.
	docker-registry
	# Headers for containers/storage's btrfs driver: `go test -tags
	# containers_image_openpgp ./...` with cgo on (Go's default) compiles it.
	libbtrfs-dev
)
missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
conf=${RECHUNKER_CONTAINERS_CONF:-/etc/rechunker-test/containers.conf}
want='[containers]
default_ulimits=["nofile=1024:1024","nproc=4096:4096"]
[engine]
runtime="runc"'
# Installing needs root: re-run as root through sudo when there is something to do.
if [[ $(id -u) -ne 0 ]] && { ((${#missing[@]})) || [[ ! -f $conf || $(cat "$conf") != "$want" ]]; }; then
	command -v sudo >/dev/null ||
		die "needs root to install ${missing[*]:-$conf}, and there is no sudo here: run it as root"
	step "installing needs root; re-running with sudo"
	exec sudo RECHUNKER_CONTAINERS_CONF="$conf" "$0" "$@"
fi
if ((${#missing[@]})); then
	step "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq || die "apt-get update failed"
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
		die "apt-get install ${missing[*]} failed"
else
	step "all ${#packages[@]} packages already installed"
fi
for tool in ostree skopeo umoci podman buildah runc debootstrap rpm rpmbuild setfattr getfattr jq zstd sqlite3 pigz docker-registry; do
	command -v "$tool" >/dev/null || die "$tool not found after installing packages"
done
# The package starts a registry on port 5000 for the whole machine; tests start their own.
if command -v systemctl >/dev/null && systemctl is-enabled docker-registry >/dev/null 2>&1; then
	systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi

# podman/buildah in containers and CI sandboxes: crun rejects hybrid cgroups and the
# default ulimits (nofile=1048576) exceed what the sandbox may set. runc plus lower
# limits works. Tests and the demo set CONTAINERS_CONF to this file.
if [[ ! -f $conf || $(cat "$conf") != "$want" ]]; then
	step "writing $conf"
	mkdir -p "$(dirname "$conf")"
	printf '%s\n' "$want" >"$conf.tmp"
	mv "$conf.tmp" "$conf"
fi

# Go: use the one on PATH, else the official tarball location.
gobin=$(command -v go || true)
[[ -n $gobin ]] || gobin=/usr/local/go/bin/go
[[ -x $gobin ]] || die "Go not found (install Go >= 1.26 to /usr/local/go)"
gov=$("$gobin" env GOVERSION)
[[ $gov =~ ^go1\.([0-9]+) ]] && ((BASH_REMATCH[1] >= 26)) || die "need Go >= 1.26, found $gov"

# Build as the invoking user when run through sudo, so bin/ and the module cache belong
# to the user who runs the tests and the demo.
as_user=()
if [[ -n ${SUDO_USER:-} && $SUDO_USER != root ]]; then
	as_user=(sudo -u "$SUDO_USER" -H)
fi
step "building bin/rechunker with $gov"
"${as_user[@]}" env CGO_ENABLED=0 GOFLAGS="-buildvcs=false -tags=containers_image_openpgp" \
	"$gobin" build -trimpath -o "$repo/bin/rechunker" ./cmd/rechunker || die "go build failed"
"$repo/bin/rechunker" --help >/dev/null || die "bin/rechunker does not run"
step "done: $repo/bin/rechunker; CONTAINERS_CONF for tests: $conf"
