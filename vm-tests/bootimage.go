package vmtests

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// BootImage is the recipe of the QEMU suite's bootable Debian image: debootstrap
// of Suite (minbase, systemd-sysv, udev), then guest/build-image.sh, which adds the
// kernel, a dracut initramfs with ostree's prepare-root, ostree and the report unit.
type BootImage struct {
	Suite    string
	Mirror   string
	GuestDir string // vm-tests/guest: build-image.sh and the report unit
}

// cacheKey covers everything that shapes the image, so an edit to the guest
// files rebuilds it.
func (b BootImage) cacheKey() (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", b.Suite, b.Mirror)
	for _, name := range []string{"build-image.sh", "rechunker-report", "rechunker-report.service"} {
		f, err := os.Open(filepath.Join(b.GuestDir, name))
		if err != nil {
			return "", err
		}
		_, err = io.Copy(h, f)
		_ = f.Close()
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:6]), nil
}

// Tarball returns a zstd tarball of the image's root file system in cacheDir,
// building it first when it is not there (about 4 minutes, as root). Concurrent
// callers build it once.
func (b BootImage) Tarball(ctx context.Context, cacheDir string, log io.Writer) (string, error) {
	key, err := b.cacheKey()
	if err != nil {
		return "", fmt.Errorf("hash the boot image recipe: %w", err)
	}
	path := filepath.Join(cacheDir, fmt.Sprintf("qemu-boot-%s-%s.tar.zst", b.Suite, key))
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", path, err)
	}
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	work, err := os.MkdirTemp(cacheDir, "qemu-boot-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	root := filepath.Join(work, "rootfs")
	start := time.Now()
	fmt.Fprintf(log, "building the QEMU boot image (first run only; cached as %s)\n", path)
	steps := []Cmd{
		{Name: "debootstrap", Args: []string{"--variant=minbase", "--include=systemd-sysv,udev", b.Suite, root, b.Mirror}},
		{Name: filepath.Join(b.GuestDir, "build-image.sh"), Args: []string{root, b.GuestDir}},
		{Name: "tar", Args: []string{"--numeric-owner", "--xattrs", "--xattrs-include=*", "-I", "zstd -T0 -3 -q",
			"-C", root, "-cf", path + ".tmp", "."}},
	}
	for _, s := range steps {
		if _, err := Run(ctx, s, log); err != nil {
			return "", fmt.Errorf("build the QEMU boot image: %w", err)
		}
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		return "", err
	}
	fmt.Fprintf(log, "built %s in %.0f s\n", path, time.Since(start).Seconds())
	return path, nil
}
