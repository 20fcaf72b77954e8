// Package gctune sizes the Go garbage collector's headroom in bytes rather than as a
// fixed fraction of the live heap.
//
// rechunker's live heap is the image's tree (about 170 bytes per file) plus bounded
// buffers, and nearly all garbage is per entry. A fixed GOGC is wrong at both ends: at
// 50% a 20 MB tree collects every 10 MB of garbage, while a 300k-file desktop image
// (80 MB live) keeps 40 MB of headroom that shows up as resident memory. A headroom of
// a few tens of MB, never less than a small fraction of the live heap, collects rarely
// on small images and keeps big ones close to their live size.
package gctune

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Policy is the headroom the collector may leave: Bytes, or MinPercent of the live
// heap when that is more.
type Policy struct {
	Bytes      uint64
	MinPercent int
}

const (
	// minHeap is the Go runtime's smallest heap goal at GOGC=100.
	minHeap = 4 << 20
	// maxPercent bounds the GOGC value of a policy with a very large headroom.
	maxPercent = 10000
)

// Percent returns the GOGC value that gives a live heap of live bytes the policy's
// headroom.
func (p Policy) Percent(live uint64) int {
	// Before the first collection the live heap reads 0 and GOGC applies to the
	// runtime's 4 MiB minimum heap: a percentage for 0 bytes would let the first
	// collection wait for gigabytes.
	live = max(live, minHeap)
	pct := p.Bytes * 100 / live
	return int(min(max(pct, uint64(p.MinPercent)), maxPercent))
}

// Run applies the policy until ctx is done, re-reading the live heap every interval,
// and then restores the GOGC value it found.
func Run(ctx context.Context, p Policy, every time.Duration) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	current := debug.SetGCPercent(p.Percent(0))
	defer debug.SetGCPercent(current)
	last := -1
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			// Only changes of more than a tenth are applied: each one recomputes the
			// collector's pacing.
			if pct := p.Percent(sample[0].Value.Uint64()); last < 0 || pct*10 < last*9 || pct*10 > last*11 {
				debug.SetGCPercent(pct)
				last = pct
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
