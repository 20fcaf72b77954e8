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

func TestPercent(t *testing.T) {
	p := Policy{Bytes: 16 << 20, MinPercent: 20}
	for _, c := range []struct {
		name string
		live uint64
		want int
	}{
		{"no collection yet", 0, 400},
		{"tiny heap counts as the runtime's minimum", 1 << 10, 400},
		{"small heap gets the fixed headroom", 16 << 20, 100},
		{"2 GB image", 32 << 20, 50},
		{"desktop image", 80 << 20, 20},
		{"huge image keeps the minimum fraction", 400 << 20, 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, p.Percent(c.live))
		})
	}
}

func TestRunRestoresGOGC(t *testing.T) {
	old := debug.SetGCPercent(77)
	defer debug.SetGCPercent(old)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		Run(ctx, Policy{Bytes: 1 << 40, MinPercent: 20}, time.Millisecond)
		close(done)
	}()
	gogc := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	require.Eventually(t, func() bool {
		metrics.Read(gogc)
		return gogc[0].Value.Uint64() == maxPercent
	}, 5*time.Second, time.Millisecond, "the policy's value is applied")
	cancel()
	<-done
	assert.Equal(t, 77, debug.SetGCPercent(77), "the GOGC found at start is restored")
}
