package rechunk

import (
	"fmt"
	"math/rand"
	"testing"
)

// TestPlanLabelSizeWithParts states the plan label's size for 1,000 and 5,000 packages, a third
// of them split into stable and volatile parts, with incompressible digests and
// history (a pessimistic bound), and keeps it under 256 KiB at 5,000.
func TestPlanLabelSizeWithParts(t *testing.T) {
	for _, n := range []int{1000, 5000} {
		for _, split := range []bool{false, true} {
			rng := rand.New(rand.NewSource(1))
			rec := &planRecord{Version: planRecordVersion, Layers: 64}
			for i := 0; i < n; i++ {
				name := fmt.Sprintf("package-name-%d", i)
				names := []string{name}
				if split && i%3 == 0 {
					names = append(names, name+VolatileSuffix)
				}
				for _, nm := range names {
					rec.Components = append(rec.Components, componentRecord{Name: nm, Digest: fmt.Sprintf("%016x", rng.Uint64()), Layer: 1 + rng.Intn(64), History: rng.Uint64() & 0xfff, Seen: 12})
				}
			}
			s, err := encodePlanRecord(rec)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d packages, split a third: %v -> %d components, label %d bytes", n, split, len(rec.Components), len(s))
			if len(s) > 256<<10 {
				t.Errorf("plan label of %d components is %d bytes, over 256 KiB", len(rec.Components), len(s))
			}
		}
	}
}
