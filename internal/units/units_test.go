package units

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{
		-1: "?", 0: "0 B", 999: "999 B", 1000: "1.0 kB", 12_345_678: "12.3 MB",
		999_960: "1.0 MB", 697_000_000: "697.0 MB", 1_500_000_000: "1.5 GB",
	} {
		assert.Equal(t, want, Bytes(n), "%d", n)
	}
}
