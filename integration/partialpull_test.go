//go:build integration

package integration

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/signature"
	istorage "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage"
)

// TestZstdChunkedPartialPull measures what a client that pulls zstd:chunked layers file
// by file downloads for the security update: both releases, built plain with
// --compression zstd:chunked, are pushed to a local registry (Debian's docker-registry
// on 127.0.0.1, started and stopped here), then pulled into an overlay store with
// partial pulls enabled by containers/image and containers/storage, the libraries
// podman is made of (Debian 12's podman 4.3.1 does not pull these layers partially).
// What the registry served for release 2 is read from its access log.
func TestZstdChunkedPartialPull(t *testing.T) {
	requireRoot(t)
	requireTools(t, "debootstrap", "umoci", "tar", "zstd", "chroot", "skopeo", "docker-registry")
	c := newCLI(t)
	sp := newSecurityPair(t)
	v2, v3 := sp.v2, sp.v3
	trees := t.TempDir()
	extractTarball(t, sp.base, filepath.Join(trees, "v2"))
	extractTarball(t, sp.update.Tarball, filepath.Join(trees, "v3"))
	bound := diffTrees(t, filepath.Join(trees, "v2"), filepath.Join(trees, "v3")).Gzipped

	out := filepath.Join(t.TempDir(), "out")
	a, b := ociImage{Layout: out, Tag: "a"}, ociImage{Layout: out, Tag: "b"}
	flags := []string{"--bootc", "--image-format", "plain", "--compression", "zstd:chunked"}
	c.build(t, append(flags, "--from", v2.Ref(), "--output", a.Ref())...)
	c.build(t, append(flags, "--from", v3.Ref(), "--output", b.Ref(), "--previous-build", a.Ref())...)
	whole := c.diff(t, a.Ref(), b.Ref())

	reg := startRegistry(t)
	for _, img := range []ociImage{a, b} {
		run(t, "skopeo", "copy", "--quiet", "--dest-tls-verify=false", img.Ref(), "docker://"+reg.addr+"/os:"+img.Tag)
	}
	store, err := storage.GetStore(storage.StoreOptions{
		RunRoot: filepath.Join(t.TempDir(), "run"), GraphRoot: filepath.Join(t.TempDir(), "graph"),
		GraphDriverName: "overlay", PullOptions: map[string]string{"enable_partial_images": "true"},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = store.Shutdown(true) })

	pullPartial(t, store, reg.addr, "a")
	mark := reg.served(t)
	pullPartial(t, store, reg.addr, "b")
	served := reg.served(t) - mark
	t.Logf("security update, plain + zstd:chunked: partial pull of release 2 served %d B (%.2fx the changed-files bound %d B); whole changed layers %d B (%d of %d layers)",
		served, float64(served)/float64(bound), bound, whole.BytesFetched, whole.LayersFetched, whole.LayersTotal)
	require.NotZero(t, served)
	assert.Less(t, served, whole.BytesFetched, "a partial pull fetches less than the changed layers")
	assert.LessOrEqual(t, float64(served), 1.15*float64(bound), "partial pull of the security update against the changed-files bound")
}

// pullPartial pulls REG/os:TAG into store with partial pulls, as podman pull does.
func pullPartial(t *testing.T, store storage.Store, addr, tag string) {
	t.Helper()
	src, err := docker.ParseReference("//" + addr + "/os:" + tag)
	require.NoError(t, err)
	dst, err := istorage.Transport.ParseStoreReference(store, "localhost/os:"+tag)
	require.NoError(t, err)
	policy, err := signature.NewPolicyContext(&signature.Policy{Default: []signature.PolicyRequirement{signature.NewPRInsecureAcceptAnything()}})
	require.NoError(t, err)
	defer policy.Destroy()
	sys := &types.SystemContext{DockerInsecureSkipTLSVerify: types.OptionalBoolTrue}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	_, err = copy.Image(ctx, policy, dst, src, &copy.Options{SourceCtx: sys, DestinationCtx: sys})
	require.NoError(t, err, "pull %s into containers-storage", src.StringWithinTransport())
}

// registry is a docker-registry serving on 127.0.0.1 for one test.
type registry struct {
	addr string
	log  string
}

func startRegistry(t *testing.T) registry {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	dir := t.TempDir()
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o644))
	r := registry{addr: addr, log: filepath.Join(dir, "access.log")}
	logf, err := os.Create(r.log)
	require.NoError(t, err)
	cmd := exec.Command("docker-registry", "serve", filepath.Join(dir, "config.yml"))
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if conn, err := net.Dial("tcp", addr); err == nil {
			conn.Close()
			return r
		}
		require.True(t, time.Now().Before(deadline), "docker-registry did not listen on %s", addr)
	}
}

// accessLine is a GET of a blob in the registry's access log, with the bytes sent.
var accessLine = regexp.MustCompile(`"GET /v2/[^ ]+/blobs/[^ ]+ HTTP/[0-9.]+" (200|206) ([0-9]+) `)

// served sums the bytes of every blob GET the registry logged so far.
func (r registry) served(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open(r.log)
	require.NoError(t, err)
	defer f.Close()
	var n int64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if m := accessLine.FindStringSubmatch(sc.Text()); m != nil && !strings.Contains(sc.Text(), "HEAD ") {
			v, _ := strconv.ParseInt(m[2], 10, 64)
			n += v
		}
	}
	require.NoError(t, sc.Err())
	return n
}
