package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"runtime/trace"
	"time"
)

// startProfiles starts the profiles developers ask for through the
// environment (docs/benchmarks.md): STILLPOINT_CPUPROFILE=FILE writes a CPU
// profile of the whole run; STILLPOINT_HEAPPROFILE=FILE writes a heap
// profile taken when the heap in use was largest, which is what peak RSS
// follows; STILLPOINT_TRACE=FILE writes an execution trace, which shows
// where goroutines wait (go tool trace -pprof=sync|syscall|sched FILE).
// The returned function finishes them.
func startProfiles() (stop func()) {
	var stops []func()
	toFile := func(env, what string, start func(io.Writer) error, stop func()) {
		path := os.Getenv(env)
		if path == "" {
			return
		}
		f, err := os.Create(path)
		if err == nil {
			err = start(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "stillpoint: %s: %v\n", what, err)
			return
		}
		stops = append(stops, func() { stop(); f.Close() })
	}
	toFile("STILLPOINT_CPUPROFILE", "cpu profile", pprof.StartCPUProfile, pprof.StopCPUProfile)
	toFile("STILLPOINT_TRACE", "trace", trace.Start, trace.Stop)
	if path := os.Getenv("STILLPOINT_HEAPPROFILE"); path != "" {
		runtime.MemProfileRate = 64 << 10
		done := make(chan struct{})
		finished := make(chan struct{})
		go watchHeapPeak(path, done, finished)
		stops = append(stops, func() { close(done); <-finished })
	}
	return func() {
		for _, s := range stops {
			s()
		}
	}
}

// watchHeapPeak samples the heap every 20 ms and rewrites the profile at
// each new peak.
func watchHeapPeak(path string, done <-chan struct{}, finished chan<- struct{}) {
	defer close(finished)
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var peak uint64
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		metrics.Read(sample)
		if v := sample[0].Value.Uint64(); v > peak+peak/20 {
			peak = v
			if f, err := os.Create(path); err == nil {
				pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
			}
		}
	}
}
