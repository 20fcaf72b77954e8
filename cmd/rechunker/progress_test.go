package main

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/rechunker-dev/rechunker/exporter"
)

// syncBuffer is a bytes.Buffer safe for the log goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestProgressLogLine(t *testing.T) {
	cases := []struct {
		name    string
		total   int64
		bytes   int64
		done    int
		elapsed time.Duration
		want    string
	}{
		{"nothing yet", 2_000_000_000, 0, 0, time.Second, "rechunker: layers: 0/65 layers, 0 B of about 2.0 GB"},
		{"half way", 2_000_000_000, 1_000_000_000, 30, 20 * time.Second, "rechunker: layers: 30/65 layers, 1.0 GB of about 2.0 GB, 50.0 MB/s, ETA 20s"},
		{"past the estimate", 1_000, 2_000, 65, 2 * time.Second, "rechunker: layers: 65/65 layers, 2.0 kB of about 1.0 kB, 1.0 kB/s"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := newProgressLog(&syncBuffer{}, time.Hour)
			p.layers, p.total = 65, c.total
			p.Bytes(c.bytes)
			for range c.done {
				p.LayerDone(exporter.LayerResult{})
			}
			assert.Equal(t, c.want, p.line(c.elapsed))
		})
	}
}

func TestProgressLogWritesLines(t *testing.T) {
	var buf syncBuffer
	p := newProgressLog(&buf, 10*time.Millisecond)
	p.Start(3, 3000)
	p.Bytes(1500)
	p.Phase("writing image")
	assert.Eventually(t, func() bool {
		return strings.Contains(buf.String(), "rechunker: writing image: 0/3 layers, 1.5 kB of about 3.0 kB")
	},
		2*time.Second, 5*time.Millisecond)
	p.finish()
	n := strings.Count(buf.String(), "\n")
	time.Sleep(30 * time.Millisecond)
	assert.Equal(t, n, strings.Count(buf.String(), "\n"), "no line after finish")

	newProgressLog(&buf, time.Millisecond).finish() // never started: returns at once
}
