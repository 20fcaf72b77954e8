#!/bin/bash
# Turns a debootstrap'ed Debian bookworm tree (minbase, systemd-sysv, udev) into a bootable
# bootc-style test image for the QEMU suite: kernel, dracut initramfs with ostree's
# prepare-root module, ostree and libostree's introspection data (the guest-side client
# uses it for rollback), the report unit, and the bootc layout (/sysroot, /ostree link,
# empty /boot, kernel and initramfs in /usr/lib/modules/$KV/). Kernel modules, docs and
# locales a virtio guest does not need are dropped so that a TCG boot stays near a minute.
#
#   build-image.sh ROOT GUEST_DIR      (as root; GUEST_DIR holds rechunker-report*)
set -euo pipefail
root=$1
guest=$2
[[ -d $root/usr && -x $guest/rechunker-report ]] || { echo "usage: build-image.sh ROOT GUEST_DIR" >&2; exit 2; }

mounted=()
cleanup() {
	local i
	for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" || true; done
}
trap cleanup EXIT
for fs in proc sys dev; do
	case $fs in
	proc) mount -t proc proc "$root/proc" ;;
	sys) mount -t sysfs sys "$root/sys" ;;
	dev) mount --bind /dev "$root/dev" ;;
	esac
	mounted+=("$root/$fs")
done

# INITRD=No: the kernel's postinst would build a generic initramfs that is thrown away;
# the one the image boots is built below, after the module cut.
in_root() { chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C INITRD=No PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
# The mirror's Release files can look expired against a skewed clock.
apt_opts=(-o Acquire::Check-Valid-Until=false -o Dpkg::Use-Pty=0 -qq)
in_root apt-get "${apt_opts[@]}" update
in_root apt-get "${apt_opts[@]}" install -y --no-install-recommends \
	linux-image-amd64 dracut ostree ostree-boot python3-gi gir1.2-ostree-1.0 >/dev/null

kvers=("$root"/usr/lib/modules/*)
[[ ${#kvers[@]} -eq 1 ]] || { echo "build-image.sh: want one kernel, found ${#kvers[@]}" >&2; exit 1; }
kv=$(basename "${kvers[0]}")
mods=$root/usr/lib/modules/$kv

# Keep only what a virtio guest with an ext4 root needs.
keep=$(mktemp -d)
for d in kernel/fs/ext4 kernel/fs/jbd2 kernel/fs/mbcache.ko kernel/lib kernel/crypto kernel/arch \
	kernel/drivers/virtio kernel/drivers/block/virtio_blk.ko kernel/drivers/char/virtio_console.ko; do
	if [[ -e $mods/$d ]]; then
		mkdir -p "$keep/$(dirname "$d")"
		mv "$mods/$d" "$keep/$d"
	fi
done
rm -rf "$mods/kernel"
mv "$keep/kernel" "$mods/kernel"
rmdir "$keep"
in_root depmod "$kv"

in_root dracut --force --quiet --no-hostonly --add ostree \
	--omit "plymouth i18n crypt lvm mdraid multipath nfs iscsi nbd network dmraid" \
	"/usr/lib/modules/$kv/initramfs.img" "$kv"
cp "$root/boot/vmlinuz-$kv" "$mods/vmlinuz"

in_root apt-get "${apt_opts[@]}" clean
rm -rf "$root"/boot/* "$root"/vmlinuz* "$root"/initrd.img* \
	"$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
	"$root"/usr/share/locale/* "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* \
	"$root"/var/log/*.log "$root"/var/log/apt/*

install -m 0755 "$guest/rechunker-report" "$root/usr/libexec/rechunker-report"
install -m 0644 "$guest/rechunker-report.service" "$root/usr/lib/systemd/system/rechunker-report.service"
mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
ln -sf /usr/lib/systemd/system/rechunker-report.service \
	"$root/etc/systemd/system/multi-user.target.wants/rechunker-report.service"
# Timers that may fire during a one-minute boot and only cost time.
for t in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer; do
	ln -sf /dev/null "$root/etc/systemd/system/$t"
done

# The bootc layout: ostree-prepare-root moves the physical root to /sysroot.
mkdir -p "$root/sysroot"
ln -sfn sysroot/ostree "$root/ostree"
: >"$root/etc/machine-id"
echo "build-image.sh: kernel $kv, initramfs $(du -h "$mods/initramfs.img" | cut -f1), tree $(du -sh "$root" | cut -f1)"
