package rootfs

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// vmHWM returns the process's peak resident set size in bytes from /proc/self/status.
func vmHWM(tb testing.TB) int64 {
	f, err := os.Open("/proc/self/status")
	require.NoError(tb, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			require.NoError(tb, err)
			return kb << 10
		}
	}
	tb.Skip("no VmHWM in /proc/self/status")
	return 0
}

// BenchmarkImportLargeFile imports a directory holding one 2 GiB sparse file and reports
// how much the peak RSS grew: contents are streamed, so it stays a few MiB regardless of
// the file size.
//
//	go test -run '^$' -bench ImportLargeFile -benchtime 1x -benchmem ./ostree/rootfs
func BenchmarkImportLargeFile(b *testing.B) {
	const size = 2 << 30
	dir := b.TempDir()
	tree := filepath.Join(dir, "tree")
	require.NoError(b, os.Mkdir(tree, 0o755))
	f, err := os.Create(filepath.Join(tree, "big"))
	require.NoError(b, err)
	require.NoError(b, f.Truncate(size))
	require.NoError(b, f.Close())
	before := vmHWM(b)
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s, err := os.MkdirTemp(dir, "store")
		require.NoError(b, err)
		b.StopTimer()
		st := newStoreAt(b, s)
		b.StartTimer()
		tr, err := Import(context.Background(), tree, st, Options{})
		require.NoError(b, err)
		require.Equal(b, int64(size), tr.LookupFile("/big").Size)
		b.StopTimer()
		require.NoError(b, os.RemoveAll(s))
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(vmHWM(b)-before)/(1<<20), "peak-RSS-growth-MiB")
}
