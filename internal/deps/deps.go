//go:build tools

// Package deps pins the modules the project builds on so that go mod tidy keeps them
// while packages that use them are being written.
package deps

import (
	_ "github.com/coreos/go-systemd/v22/unit"
	_ "github.com/google/go-containerregistry/pkg/registry"
	_ "github.com/klauspost/compress/gzip"
	_ "github.com/klauspost/compress/zstd"
	_ "github.com/klauspost/pgzip"
	_ "github.com/knqyf263/go-rpmdb/pkg"
	_ "github.com/opencontainers/go-digest"
	_ "github.com/opencontainers/image-spec/specs-go/v1"
	_ "github.com/spf13/cobra"
	_ "github.com/stretchr/testify/require"
	_ "github.com/ulikunitz/xz"
	_ "github.com/vbauerster/mpb/v8"
	_ "go.podman.io/image/v5/copy"
	_ "go.podman.io/image/v5/transports/alltransports"
	_ "go.podman.io/storage/pkg/reexec"
	_ "golang.org/x/sync/errgroup"
	_ "golang.org/x/sys/unix"
	_ "modernc.org/sqlite"
)
