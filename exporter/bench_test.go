package exporter

import (
	"context"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/pgzip"
	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/ostree"
	"github.com/rechunker-dev/rechunker/rechunk"
)

// textReader produces deterministic, compressible file content: words from a fixed
// vocabulary with some incompressible runs, roughly like a mix of text and binaries.
type textReader struct {
	rng   *rand.Rand
	words [][]byte
	left  int64
	buf   []byte
}

func newTextReader(seed int64, size int64, words [][]byte) *textReader {
	return &textReader{rng: rand.New(rand.NewSource(seed)), words: words, left: size}
}

func (r *textReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	for len(r.buf) < len(p) && int64(len(r.buf)) < r.left {
		if r.rng.Intn(10) == 0 {
			run := make([]byte, 64+r.rng.Intn(256))
			r.rng.Read(run)
			r.buf = append(r.buf, run...)
		} else {
			r.buf = append(r.buf, r.words[r.rng.Intn(len(r.words))]...)
			r.buf = append(r.buf, ' ')
		}
	}
	n := copy(p, r.buf)
	if int64(n) > r.left {
		n = int(r.left)
	}
	r.buf = r.buf[n:]
	r.left -= int64(n)
	return n, nil
}

func vocabulary() [][]byte {
	rng := rand.New(rand.NewSource(1))
	words := make([][]byte, 4096)
	for i := range words {
		w := make([]byte, 3+rng.Intn(9))
		for j := range w {
			w[j] = byte('a' + rng.Intn(26))
		}
		words[i] = w
	}
	return words
}

// benchInput generates a tree of nFiles files totalling about totalBytes in 32
// top-level directories (so topLevelPlan makes 32 chunks plus the reserved bin).
func benchInput(b testing.TB, store *ostree.Store, nFiles int, totalBytes int64) *Input {
	words := vocabulary()
	rng := rand.New(rand.NewSource(2))
	tree := ostree.NewTree()
	avg := totalBytes / int64(nFiles)
	for i := 0; i < nFiles; i++ {
		top := fmt.Sprintf("d%02d", i%32)
		sub := fmt.Sprintf("s%03d", (i/32)%100)
		d := tree.Root.Dirs[top]
		if d == nil {
			d = ostree.NewDir(ostree.DirMeta{Mode: ostree.ModeDir | 0o755})
			tree.Root.Dirs[top] = d
		}
		s := d.Dirs[sub]
		if s == nil {
			s = ostree.NewDir(ostree.DirMeta{Mode: ostree.ModeDir | 0o755})
			d.Dirs[sub] = s
		}
		size := rng.Int63n(2 * avg)
		h := ostree.FileHeader{Mode: ostree.ModeRegular | 0o644}
		sum, n, err := store.WriteContent(context.Background(), h, newTextReader(int64(i), size, words))
		require.NoError(b, err)
		s.Files[fmt.Sprintf("f%06d", i)] = &ostree.File{Header: &h, Size: n, Checksum: sum}
	}
	rt, rm, err := tree.Finalize(store)
	require.NoError(b, err)
	created := time.Unix(1700000000, 0).UTC()
	c := ostree.Commit{Timestamp: uint64(created.Unix()), RootTree: rt, RootMeta: rm}
	raw, err := c.Marshal()
	require.NoError(b, err)
	sum, err := store.WriteMetadata(ostree.ObjCommit, raw)
	require.NoError(b, err)
	in := &Input{Tree: tree, Commit: c, CommitSum: sum, Created: created}
	in.Config.Architecture, in.Config.OS = "amd64", "linux"
	return in
}

// cpuTime returns user+system CPU time of this process and of its waited-for children.
func cpuTime() time.Duration {
	var self, kids syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return tv(self.Utime) + tv(self.Stime) + tv(kids.Utime) + tv(kids.Stime)
}

// BenchmarkExport1GB measures a cold export of a generated 1 GB, 50,000-file tree with
// gzip -6 against compressing the same uncompressed layer bytes with pgzip -6 and
// pigz -6 in the same run, then rebuilds where every layer is reusable: from the previous
// build's blobs only (tar hashed, blobs copied) and from the local blob cache.
// Wall times are only meaningful on an otherwise idle machine; the *-cpu metrics (CPU
// seconds consumed by each step) are comparable under load too.
// Run with: go test ./exporter -run '^$' -bench Export1GB -benchtime 1x -cpu 2
func BenchmarkExport1GB(b *testing.B) {
	dir := b.TempDir()
	store, err := ostree.OpenStore(filepath.Join(dir, "store"))
	require.NoError(b, err)
	files, size := 50000, int64(1<<30)
	if os.Getenv("RECHUNKER_BENCH_SMALL") != "" {
		files, size = 10000, 200<<20
	}
	in := benchInput(b, store, files, size)
	plan := topLevelPlan(in)

	// The exact uncompressed bytes: every layer's tar stream, concatenated.
	e, err := newExport(in, store, plan, Options{Output: "oci:" + filepath.Join(dir, "unused")})
	require.NoError(b, err)
	tarPath := filepath.Join(dir, "all.tar")
	f, err := os.Create(tarPath)
	require.NoError(b, err)
	for i := range e.layers {
		require.NoError(b, writeLayer(context.Background(), f, in.Tree, store, e.cd, e.layers[i].spec, 2, false))
	}
	st, _ := f.Stat()
	require.NoError(b, f.Close())
	tarBytes := st.Size()

	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		// Baseline 1: pgzip level 6 over the same bytes, GOMAXPROCS workers.
		t0, c0 := time.Now(), cpuTime()
		src, err := os.Open(tarPath)
		require.NoError(b, err)
		out, err := os.Create(filepath.Join(dir, "all.tar.gz"))
		require.NoError(b, err)
		zw, err := pgzip.NewWriterLevel(out, 6)
		require.NoError(b, err)
		require.NoError(b, zw.SetConcurrency(1<<20, runtime.GOMAXPROCS(0)))
		_, err = io.Copy(zw, src)
		require.NoError(b, err)
		require.NoError(b, zw.Close())
		out.Close()
		src.Close()
		pgz, pgzCPU := time.Since(t0), cpuTime()-c0

		// Baseline 2: pigz -6 with as many threads.
		var pigz, pigzCPU time.Duration
		if _, err := exec.LookPath("pigz"); err == nil {
			t0, c0 = time.Now(), cpuTime()
			cmd := exec.Command("sh", "-c", fmt.Sprintf("pigz -6 -p %d < %s > %s.pigz", runtime.GOMAXPROCS(0), tarPath, tarPath))
			require.NoError(b, cmd.Run())
			pigz, pigzCPU = time.Since(t0), cpuTime()-c0
		}

		// Cold export: fresh cache.
		os.RemoveAll(store.Path("blobs"))
		b.StartTimer()
		t0, c0 = time.Now(), cpuTime()
		coldRef := fmt.Sprintf("oci:%s/cold%d:latest", dir, i)
		coldRes, err := Export(context.Background(), in, store, plan, Options{Output: coldRef})
		require.NoError(b, err)
		cold, coldCPU := time.Since(t0), cpuTime()-c0
		b.StopTimer()

		// Rebuild from a previous build only (no local cache): every layer's tar is
		// hashed, then the previous blob is copied.
		t0, c0 = time.Now(), cpuTime()
		res, err := Export(context.Background(), in, store, plan, Options{Output: fmt.Sprintf("oci:%s/prev%d:latest", dir, i),
			NoBlobCache: true, Previous: []rechunk.Previous{previousOf(coldRef, coldRes)}})
		require.NoError(b, err)
		prev, prevCPU := time.Since(t0), cpuTime()-c0
		for _, l := range res.Layers {
			require.Equal(b, "previous-build", l.Reused)
		}

		// Rebuild: every layer in the blob cache.
		t0, c0 = time.Now(), cpuTime()
		res, err = Export(context.Background(), in, store, plan, Options{Output: fmt.Sprintf("oci:%s/warm%d:latest", dir, i)})
		require.NoError(b, err)
		warm, warmCPU := time.Since(t0), cpuTime()-c0
		for _, l := range res.Layers {
			require.Equal(b, "cache", l.Reused)
		}

		var ru syscall.Rusage
		require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
		b.ReportMetric(float64(tarBytes)/1e6, "tar-MB")
		b.ReportMetric(cold.Seconds(), "cold-s")
		b.ReportMetric(pgz.Seconds(), "pgzip6-s")
		b.ReportMetric(cold.Seconds()/pgz.Seconds(), "cold/pgzip")
		if pigz > 0 {
			b.ReportMetric(pigz.Seconds(), "pigz6-s")
			b.ReportMetric(cold.Seconds()/pigz.Seconds(), "cold/pigz")
		}
		b.ReportMetric(prev.Seconds(), "prevbuild-s")
		b.ReportMetric(prev.Seconds()/cold.Seconds(), "prevbuild/cold")
		b.ReportMetric(warm.Seconds(), "rebuild-s")
		b.ReportMetric(warm.Seconds()/cold.Seconds(), "rebuild/cold")
		b.ReportMetric(float64(ru.Maxrss)/1024, "maxrss-MB")
		b.ReportMetric(coldCPU.Seconds(), "cold-cpu-s")
		b.ReportMetric(pgzCPU.Seconds(), "pgzip6-cpu-s")
		b.ReportMetric(pigzCPU.Seconds(), "pigz6-cpu-s")
		b.ReportMetric(prevCPU.Seconds(), "prevbuild-cpu-s")
		b.ReportMetric(warmCPU.Seconds(), "rebuild-cpu-s")
		b.StartTimer()
	}
}
