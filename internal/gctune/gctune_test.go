package gctune

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMemoryLimit(t *testing.T) {
	p := Policy{GOGC: 100, Limit: 128 << 20, MinPercent: 30}
	for _, c := range []struct {
		name string
		live uint64
		want uint64
	}{
		{"no collection yet", 0, 128 << 20},
		{"2 GB image", 25 << 20, 128 << 20},
		{"desktop image", 80 << 20, 128 << 20},
		{"live heap near the limit raises it", 100 << 20, 130 << 20},
		{"huge image", 1 << 30, 1<<30 + (1<<30)*30/100},
	} {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, p.MemoryLimit(c.live))
		})
	}
}

func TestRunAppliesAndRestores(t *testing.T) {
	oldGOGC := debug.SetGCPercent(77)
	defer debug.SetGCPercent(oldGOGC)
	oldLimit := debug.SetMemoryLimit(1 << 40)
	defer debug.SetMemoryLimit(oldLimit)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		Run(ctx, Policy{GOGC: 123, Limit: 1 << 30, MinPercent: 30}, time.Millisecond)
		close(done)
	}()
	read := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}}
	require.Eventually(t, func() bool {
		metrics.Read(read)
		return read[0].Value.Uint64() == 123 && read[1].Value.Uint64() == 1<<30
	}, 5*time.Second, time.Millisecond, "the policy is applied")
	cancel()
	<-done
	assert.Equal(t, 77, debug.SetGCPercent(77), "GOGC is restored")
	assert.Equal(t, int64(1<<40), debug.SetMemoryLimit(1<<40), "the memory limit is restored")
}
