package exporter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/rechunker-dev/rechunker/ostree"
)

// A previous build in a local OCI layout (the usual CI setup: `skopeo copy` of the last
// release into oci:DIR, then a build with --previous-build oci:DIR) holds the reused
// blobs as files. When the output is on the same file system, such a blob is checked
// where it lies and then hard-linked into the output: reading it is unavoidable (its
// digest and diff_id are checked), writing a second copy is not. The link names exactly
// the inode that was read (linkat through /proc/self/fd), and the file's identity must
// not change between the check and the link, so a file swapped or edited meanwhile is
// never linked unchecked.

// ociLayoutDir returns the directory of an oci:DIR[:TAG] reference, or "".
func ociLayoutDir(ref string) string {
	out, err := parseOutput(ref)
	if err != nil {
		return ""
	}
	return out.ociDir
}

// errNoLink says a blob could not be linked (another file system, no such file, no
// /proc): the caller copies it instead.
var errNoLink = errors.New("blob cannot be linked")

// linkVerified checks the blob file src (digest d, decompressing to diff_id want, of
// the size its descriptor declares unless that is <= 0) and hard-links it into dst as
// blob d. It returns the blob's size.
func linkVerified(ctx context.Context, src string, d, want digest.Digest, declared int64, comp compressor, dst blobDir) (int64, error) {
	f, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return 0, errNoLink
	}
	defer f.Close()
	before, err := identity(f)
	if err != nil || !sameDevice(f, string(dst)) {
		return 0, errNoLink
	}
	if declared > 0 && before.Size != declared {
		// What the transport's sized reader says of such a blob, in the same words.
		return 0, fmt.Errorf("blob %s is %d bytes, the manifest declares %d", d, before.Size, declared)
	}
	n, err := checkBlob(ctx, f, io.Discard, d, want, comp)
	if err != nil {
		return 0, err
	}
	if after, err := identity(f); err != nil || after != before {
		return 0, fmt.Errorf("blob file %s changed while it was checked", src)
	}
	target := dst.path(d)
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return 0, err
	}
	os.Remove(target) // a file of that name in a shared layout is not trusted
	err = unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(int(f.Fd())), unix.AT_FDCWD, target, unix.AT_SYMLINK_FOLLOW)
	if err != nil {
		return 0, errNoLink
	}
	return n, nil
}

// identity is the regular file f's identity (ostree.FileIdentity: what changes when a
// file is replaced or written).
func identity(f *os.File) (ostree.FileIdentity, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return ostree.FileIdentity{}, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return ostree.FileIdentity{}, errNoLink
	}
	return ostree.IdentityOf(&st), nil
}

// sameDevice reports whether f is on the file system of directory dir (or of the
// nearest existing parent of it).
func sameDevice(f *os.File, dir string) bool {
	var a, b unix.Stat_t
	if unix.Fstat(int(f.Fd()), &a) != nil {
		return false
	}
	for p := dir; ; p = filepath.Dir(p) {
		if unix.Stat(p, &b) == nil {
			return a.Dev == b.Dev
		}
		if p == filepath.Dir(p) {
			return false
		}
	}
}
