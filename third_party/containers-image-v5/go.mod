// The old module path of containers/image, which now lives at go.podman.io/image/v5.
// github.com/containers/tar-diff still imports github.com/containers/image/v5/pkg/compression,
// and the real old module drags in a second copy of containers/storage whose cgo code
// (pkg/unshare) clashes with go.podman.io/storage's at link time when cgo is on. The root
// go.mod replaces the old path with this module, which forwards the one function
// tar-diff uses to the maintained library.
module github.com/containers/image/v5

go 1.26.0

require go.podman.io/image/v5 v5.42.1
