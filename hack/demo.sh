#!/usr/bin/env bash
# rechunker's main job on a real example. It builds a small Debian 12 bootc-style OS
# image (debootstrap: systemd, kernel, sshd), packs it as an OCI image with umoci, then
# makes release v2 the way most image builds do: rebuilt from scratch with one file
# changed (/etc/ssh/sshd_config.d/10-disable-password-auth.conf), so every byte of the
# plain image is new. It chunks both releases with rechunker (v2 with --previous-build
# v1), verifies v2 the way bootc imports it, and shows what `bootc upgrade` v1 -> v2
# downloads for the plain and the chunked images.
#
# Installs what it needs first (hack/setup.sh: packages, ./bin/rechunker). Needs root for
# debootstrap: run it as root, or as a user with sudo (it re-runs itself with sudo).
# Environment:
#   RECHUNKER_DEMO_CACHE   debootstrap tarball cache (default ~/.cache/rechunker-demo)
#   RECHUNKER_DEMO_DIR     work directory, kept afterwards (default: new dir in /var/tmp)
#   RECHUNKER_DEBIAN_MIRROR  (default http://deb.debian.org/debian)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

cache=${RECHUNKER_DEMO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rechunker-demo}
./hack/setup.sh
if [[ $(id -u) -ne 0 ]]; then
	command -v sudo >/dev/null || { echo "demo.sh: needs root for debootstrap, and there is no sudo here: run it as root" >&2; exit 1; }
	echo "demo.sh: needs root for debootstrap; re-running with sudo"
	exec sudo RECHUNKER_DEMO_CACHE="$cache" RECHUNKER_DEMO_DIR="${RECHUNKER_DEMO_DIR:-}" \
		RECHUNKER_DEBIAN_MIRROR="${RECHUNKER_DEBIAN_MIRROR:-}" "$0" "$@"
fi
die() { echo "demo.sh: $*" >&2; exit 1; }
step() { printf '\n==> %s\n' "$*"; }

rechunker=$repo/bin/rechunker
[[ -x $rechunker ]] || die "$rechunker missing after hack/setup.sh"
for tool in debootstrap umoci tar zstd; do
	command -v "$tool" >/dev/null || die "$tool missing after hack/setup.sh"
done
mirror=${RECHUNKER_DEBIAN_MIRROR:-http://deb.debian.org/debian}
work=${RECHUNKER_DEMO_DIR:-}
[[ -n $work ]] || work=$(mktemp -d /var/tmp/rechunker-demo.XXXXXX)
mkdir -p "$cache" "$work"
# rechunker's object store for this demo (reused across runs: the second build is faster).
store=$cache/store
start=$SECONDS

# 1. A Debian rootfs shaped like a bootc base image, cached as a tarball.
include=systemd,systemd-sysv,linux-image-amd64,openssh-server
rootfs=$cache/debian-bookworm-minbase-bootc-v2.tar.zst
if [[ ! -f $rootfs ]]; then
	step "debootstrap bookworm (minbase + $include); once, about 1-4 minutes"
	tmp=$(mktemp -d "$cache/debootstrap.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	debootstrap --variant=minbase --include="$include" bookworm "$tmp/rootfs" "$mirror" >"$tmp/log" 2>&1 ||
		{ tail -20 "$tmp/log"; die "debootstrap failed (log above)"; }
	r=$tmp/rootfs
	# bootc layout: no device nodes or apt caches, kernel + initramfs in /usr/lib/modules/<kver>/,
	# empty /boot, empty machine-id, /sysroot and /ostree -> sysroot/ostree (where
	# ostree-prepare-root moves the physical root; bootc's lint refuses images without them).
	for k in "$r"/boot/vmlinuz-*; do
		[[ -e $k ]] || continue
		kver=${k##*/vmlinuz-}
		mv "$k" "$r/usr/lib/modules/$kver/vmlinuz"
		[[ ! -e $r/boot/initrd.img-$kver ]] || mv "$r/boot/initrd.img-$kver" "$r/usr/lib/modules/$kver/initramfs.img"
	done
	for d in dev run tmp var/cache/apt var/lib/apt/lists boot; do
		find "$r/$d" -mindepth 1 -delete
	done
	rm -f "$r"/vmlinuz* "$r"/initrd.img*
	: >"$r/etc/machine-id"
	mkdir -p "$r/sysroot"
	ln -sfn sysroot/ostree "$r/ostree"
	tar --numeric-owner --xattrs --xattrs-include='*' -I 'zstd -T0 -3 -q' -C "$r" -cf "$rootfs.tmp" .
	mv "$rootfs.tmp" "$rootfs"
	rm -rf "$tmp"
	trap - EXIT
fi
echo "rootfs: $rootfs ($(du -h "$rootfs" | cut -f1) compressed)"

# 2. Two releases as plain OCI images, each built from scratch as one layer.
src=$work/src
step "umoci: plain OCI images $src:v1 and :v2"
rm -rf "$src" "$work/out" "$work/bundle"
umoci init --layout "$src"
for v in v1 v2; do
	umoci new --image "$src:$v"
	umoci config --image "$src:$v" --config.label containers.bootc=1 \
		--config.label org.opencontainers.image.version="$v" --config.cmd /sbin/init
	umoci unpack --image "$src:$v" "$work/bundle" >/dev/null
	tar --numeric-owner --xattrs --xattrs-include='*' -I 'zstd -T0 -q' -C "$work/bundle/rootfs" -xpf "$rootfs"
	if [[ $v == v2 ]]; then
		printf 'PasswordAuthentication no\nKbdInteractiveAuthentication no\n' \
			>"$work/bundle/rootfs/etc/ssh/sshd_config.d/10-disable-password-auth.conf"
	fi
	umoci repack --image "$src:$v" --history.created_by "debootstrap bookworm ($v)" "$work/bundle"
	rm -rf "$work/bundle"
done

# 3. Chunk both releases. v2 keeps v1's layout (--previous-build), as a release pipeline would.
out=$work/out
step "rechunker build --bootc --from oci:$src:v1 --output oci:$out:v1"
"$rechunker" build --store "$store" --bootc --from "oci:$src:v1" --output "oci:$out:v1"
step "rechunker build --bootc --from oci:$src:v2 --output oci:$out:v2 --previous-build oci:$out:v1"
"$rechunker" build --store "$store" --bootc --from "oci:$src:v2" --output "oci:$out:v2" --previous-build "oci:$out:v1"

# 4. Check v2 the way bootc imports it, and look at it.
step "rechunker verify oci:$out:v2"
"$rechunker" verify "oci:$out:v2"
step "rechunker inspect oci:$out:v2"
"$rechunker" inspect "oci:$out:v2"

# 5. What the upgrade downloads.
step "rechunker diff (plain images): bootc upgrade v1 -> v2"
"$rechunker" diff "oci:$src:v1" "oci:$src:v2"
step "rechunker diff (chunked images): bootc upgrade v1 -> v2"
"$rechunker" diff "oci:$out:v1" "oci:$out:v2"

step "done in $((SECONDS - start))s; images in $work (src: plain, out: chunked)"
