package main

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rechunker-dev/rechunker/exporter"
	"github.com/rechunker-dev/rechunker/internal/units"
)

// logInterval is how often a build on a non-terminal (a CI log) says how it is doing.
const logInterval = 15 * time.Second

// progressLog writes one line per interval to a log: phase, layers and bytes done,
// rate and ETA. A terminal gets progressDisplay instead.
type progressLog struct {
	w        io.Writer
	interval time.Duration
	start    time.Time
	bytes    atomic.Int64
	done     atomic.Int64

	mu      sync.Mutex
	phase   string
	layers  int
	total   int64
	started bool
	stop    chan struct{}
	exited  chan struct{}
}

func newProgressLog(w io.Writer, interval time.Duration) *progressLog {
	return &progressLog{w: w, interval: interval, phase: "layers",
		stop: make(chan struct{}), exited: make(chan struct{})}
}

func (p *progressLog) Start(layers int, total int64) {
	p.mu.Lock()
	p.layers, p.total, p.started = layers, total, true
	p.mu.Unlock()
	p.start = time.Now() // rates over the layers, not the import before them
	go p.run()
}

func (p *progressLog) run() {
	defer close(p.exited)
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			fmt.Fprintln(p.w, p.line(time.Since(p.start)))
		}
	}
}

// line describes the progress after elapsed.
func (p *progressLog) line(elapsed time.Duration) string {
	p.mu.Lock()
	phase, layers, total := p.phase, p.layers, p.total
	p.mu.Unlock()
	n := p.bytes.Load()
	s := fmt.Sprintf("rechunker: %s: %d/%d layers, %s", phase, p.done.Load(), layers, units.Bytes(n))
	if total > 0 {
		s += fmt.Sprintf(" of about %s", units.Bytes(total))
	}
	secs := elapsed.Seconds()
	if secs <= 0 || n <= 0 {
		return s
	}
	rate := float64(n) / secs
	s += fmt.Sprintf(", %s/s", units.Bytes(int64(rate)))
	if total > n {
		s += fmt.Sprintf(", ETA %s", time.Duration(float64(total-n)/rate*float64(time.Second)).Round(time.Second))
	}
	return s
}

func (p *progressLog) Bytes(n int64)                  { p.bytes.Add(n) }
func (p *progressLog) LayerDone(exporter.LayerResult) { p.done.Add(1) }

func (p *progressLog) Phase(name string) {
	p.mu.Lock()
	p.phase = name
	p.mu.Unlock()
}

// finish stops the log lines; safe when Start was never called.
func (p *progressLog) finish() {
	close(p.stop)
	p.mu.Lock()
	started := p.started
	p.mu.Unlock()
	if started {
		<-p.exited
	}
}
