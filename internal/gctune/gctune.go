// Package gctune bounds the Go heap by a memory limit that follows the live heap,
// instead of a fixed GOGC fraction alone.
//
// rechunker's live heap is the image's tree (about 170 bytes per file) plus bounded
// buffers, and nearly all garbage is per entry. GOGC alone is wrong at both ends: a
// low value makes the collector run all the time while a 300k-file tree is built or
// replayed (a rebuild spent a third of its CPU there at GOGC=15), a high one lets the
// heap of a big image grow to twice its live size. A limit of Limit bytes, raised to
// MinPercent over the live heap when that is more, lets the collector rest until the
// heap nears the limit, and GOGC still keeps small images small.
package gctune

import (
	"context"
	"math"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Policy is a memory limit of Limit bytes, or MinPercent over the live heap when that
// is more, with GOGC as the collector's percentage below it.
type Policy struct {
	GOGC       int
	Limit      uint64
	MinPercent int
}

// MemoryLimit returns the limit for a live heap of live bytes.
func (p Policy) MemoryLimit(live uint64) uint64 {
	return max(p.Limit, live+live*uint64(p.MinPercent)/100)
}

// Run applies the policy until ctx is done, re-reading the live heap every interval,
// and then restores the GOGC and memory limit it found.
func Run(ctx context.Context, p Policy, every time.Duration) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	oldGOGC := debug.SetGCPercent(p.GOGC)
	defer debug.SetGCPercent(oldGOGC)
	limit := p.MemoryLimit(0)
	oldLimit := debug.SetMemoryLimit(int64(min(limit, math.MaxInt64)))
	defer debug.SetMemoryLimit(oldLimit)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			continue
		}
		// The limit only moves by more than 1/32: each change recomputes the
		// collector's pacing.
		if l := p.MemoryLimit(sample[0].Value.Uint64()); l > limit+limit/32 || l < limit-limit/32 {
			limit = l
			debug.SetMemoryLimit(int64(min(limit, math.MaxInt64)))
		}
	}
}
