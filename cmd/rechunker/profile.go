package main

import (
	"bytes"
	"fmt"
	"os"
	"runtime/metrics"
	"runtime/pprof"
	"time"

	"github.com/spf13/cobra"
)

// profileFlags are hidden flags for performance work: CPU and heap profiles of one run,
// readable with `go tool pprof`.
type profileFlags struct {
	cpu, mem string
	cpuFile  *os.File
	stopMem  chan struct{}
	memDone  chan error
}

func (p *profileFlags) register(root *cobra.Command) {
	fs := root.PersistentFlags()
	fs.StringVar(&p.cpu, "cpuprofile", "", "write a CPU profile to this file")
	fs.StringVar(&p.mem, "memprofile", "", "write a heap profile taken at the largest heap seen to this file, and one taken at exit (all allocations of the run) to this file + \".allocs\"")
	_ = fs.MarkHidden("cpuprofile")
	_ = fs.MarkHidden("memprofile")
	root.PersistentPreRunE = func(*cobra.Command, []string) error { return p.start() }
	root.PersistentPostRunE = func(*cobra.Command, []string) error { return p.stop() }
}

func (p *profileFlags) start() error {
	if p.mem != "" {
		p.stopMem, p.memDone = make(chan struct{}), make(chan error, 1)
		go p.watchHeap()
	}
	if p.cpu == "" {
		return nil
	}
	f, err := os.Create(p.cpu)
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return fmt.Errorf("cpu profile: %w", err)
	}
	p.cpuFile = f
	return nil
}

// watchHeap keeps the heap profile of the moment the live heap was largest: a profile
// at exit shows nothing, since everything is freed by then.
func (p *profileFlags) watchHeap() {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var best uint64
	var prof bytes.Buffer
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-p.stopMem:
			err := os.WriteFile(p.mem, prof.Bytes(), 0o644)
			prof.Reset()
			if err == nil {
				err = pprof.Lookup("allocs").WriteTo(&prof, 0)
			}
			if err == nil {
				err = os.WriteFile(p.mem+".allocs", prof.Bytes(), 0o644)
			}
			p.memDone <- err
			return
		case <-tick.C:
		}
		metrics.Read(sample)
		if v := sample[0].Value.Uint64(); v > best+best/20 {
			best = v
			prof.Reset()
			_ = pprof.WriteHeapProfile(&prof)
		}
	}
}

func (p *profileFlags) stop() error {
	if p.cpuFile != nil {
		pprof.StopCPUProfile()
		if err := p.cpuFile.Close(); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		p.cpuFile = nil
	}
	if p.stopMem != nil {
		close(p.stopMem)
		p.stopMem = nil
		if err := <-p.memDone; err != nil {
			return fmt.Errorf("heap profile: %w", err)
		}
	}
	return nil
}
