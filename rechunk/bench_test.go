package rechunk

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/ostree"
)

// benchTree builds 100,000 files in 2,000 dpkg packages (50 files each) with a real
// dpkg database in the store. File contents are not written: only the database is
// read by the planner, so the other files get distinct synthetic checksums. With
// sharedObjects > 0, that many files of each package are shared libraries, so every
// package is split into stable and volatile parts.
func benchTree(b *testing.B, sharedObjects ...int) (*ostree.Tree, *ostree.Store) {
	libs := 0
	if len(sharedObjects) > 0 {
		libs = sharedObjects[0]
	}
	store, err := ostree.OpenStore(b.TempDir())
	require.NoError(b, err)
	tb := newTestTree(b, store)
	var pkgs []dpkgPkg
	for i := 0; i < 2000; i++ {
		pkgs = append(pkgs, dpkgPkg{name: fmt.Sprintf("pkg%04d", i), version: "1", files: map[string]int{}})
	}
	// The database alone, then the files as tree entries.
	tb.addDpkg(nil)
	var status []byte
	for i, p := range pkgs {
		status = fmt.Appendf(status, "Package: %s\nStatus: install ok installed\nArchitecture: amd64\nSource: src%04d\n\n", p.name, i/2)
		var list []byte
		list = fmt.Appendf(list, "/usr/lib/%s\n", p.name)
		for j := 0; j < 49; j++ {
			name := fmt.Sprintf("file%02d", j)
			if j < libs {
				name = fmt.Sprintf("lib%02d.so.1", j)
			}
			path := "/usr/lib/" + p.name + "/" + name
			list = fmt.Appendf(list, "%s\n", path)
			var sum ostree.Checksum
			copy(sum[:], fmt.Sprintf("%06d%06d", i, j))
			tb.dir("/usr/lib/" + p.name).Files[name] = &ostree.File{
				Header: &ostree.FileHeader{Mode: ostree.ModeRegular | 0o644}, Size: int64(1000 + (i*j)%50000), Checksum: sum,
			}
		}
		tb.file("/var/lib/dpkg/info/"+p.name+".list", list)
	}
	tb.file("/var/lib/dpkg/status", status)
	return tb.tree, store
}

// BenchmarkPlan100k plans 100,000 files of 2,000 packages (1,000 source packages).
func BenchmarkPlan100k(b *testing.B) { benchPlan(b, 0) }

// BenchmarkPlan100kSplit is the same tree with 10 shared objects per package: every
// source package is split into stable and volatile parts (2,000 components).
func BenchmarkPlan100kSplit(b *testing.B) { benchPlan(b, 10) }

func benchPlan(b *testing.B, sharedObjects int) {
	tree, store := benchTree(b, sharedObjects)
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
				runtime.ReadMemStats(&m)
				if m.HeapAlloc > peak.Load() {
					peak.Store(m.HeapAlloc)
				}
			}
		}
	}()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		p, err := NewPlan(context.Background(), tree, store, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if len(p.Layers) == 0 {
			b.Fatal("no layers")
		}
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
	b.ReportMetric(float64(peak.Load()-min(peak.Load(), base.HeapAlloc))/(1<<20), "peak-heap-MiB-above-tree")
	b.ReportMetric(float64(base.HeapAlloc)/(1<<20), "tree-heap-MiB")
}

// TestPlanLabelSize keeps the history label small for a Fedora-sized image.
func TestPlanLabelSize(t *testing.T) {
	comps := make([]componentRecord, 1000)
	for i := range comps {
		comps[i] = componentRecord{Name: fmt.Sprintf("package-name-%04d", i), Digest: fmt.Sprintf("%016x", uint64(i)*0x9e3779b97f4a7c15), Layer: 1 + i%63, History: uint64(i) * 0x12345, Seen: 40}
	}
	s, err := encodePlanRecord(&planRecord{Version: planRecordVersion, Layers: 64, Reserved: []int{64}, Components: comps})
	require.NoError(t, err)
	t.Logf("label for 1,000 components: %d bytes", len(s))
	require.Less(t, len(s), 48<<10)
	back, err := decodePlanRecord(s)
	require.NoError(t, err)
	require.Equal(t, comps, back.Components)
	for _, bad := range []string{"", "!!!", "aGVsbG8="} {
		_, err := decodePlanRecord(bad)
		require.Error(t, err)
	}
}

// BenchmarkPlan100kPrevious plans the same tree with a previous build whose label says
// every component changed: the worst case of repacking, every layer refilled.
func BenchmarkPlan100kPrevious(b *testing.B) {
	tree, store := benchTree(b)
	ctx := context.Background()
	p1, err := NewPlan(ctx, tree, store, Options{})
	require.NoError(b, err)
	rec, err := decodePlanRecord(p1.Labels[PlanLabel])
	require.NoError(b, err)
	for i := range rec.Components {
		rec.Components[i].Digest = "0000000000000000"
	}
	label, err := encodePlanRecord(rec)
	require.NoError(b, err)
	prev := asPrevious("v1", p1, false, true)
	prev.Labels[PlanLabel] = label
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		p, err := NewPlan(ctx, tree, store, Options{Previous: []Previous{prev}})
		if err != nil {
			b.Fatal(err)
		}
		if p.FromPrevious != "v1" {
			b.Fatal("previous layout not used")
		}
	}
}
