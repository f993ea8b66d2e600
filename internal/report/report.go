// Package report turns a run's counters and results into what a person or
// a program reads: a progress bar on a terminal, one JSON object per event
// with --json, nothing but errors with --quiet, and a summary at the end.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Mode selects the output style.
type Mode int

// Output modes.
const (
	Human Mode = iota
	JSON
	Quiet
)

// Status is a progress sample.
type Status struct {
	FilesDone  int64
	FilesTotal int64 // 0 while unknown
	BytesDone  int64
	BytesTotal int64
	ScanDone   bool
	Current    string
	// Unit names what FilesDone counts on the bar ("" is "files")
	Unit string
}

// Reporter writes progress, events and summaries.
type Reporter struct {
	Mode Mode
	Out  io.Writer // results: summaries, listings
	Err  io.Writer // progress, warnings, errors

	mu  sync.Mutex
	bar *progressbar.ProgressBar
	tty bool
}

// New returns a reporter on stdout/stderr.
func New(mode Mode) *Reporter {
	return &Reporter{Mode: mode, Out: os.Stdout, Err: os.Stderr, tty: term.IsTerminal(int(os.Stderr.Fd()))}
}

// Event writes one JSON object (a line) in JSON mode.
func (r *Reporter) Event(v any) {
	if r.Mode != JSON {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	data, _ := json.Marshal(v)
	fmt.Fprintf(r.Out, "%s\n", data)
}

// Warn prints a warning: on stderr for people, as an event for programs.
func (r *Reporter) Warn(path, kind, msg string) {
	switch r.Mode {
	case JSON:
		r.Event(map[string]string{"type": "warning", "kind": kind, "path": path, "message": msg})
	case Human:
		if path == "" {
			r.printErr("warning: %s\n", msg)
			return
		}
		r.printErr("warning: %s: %s\n", path, msg)
	}
}

// Error prints an error; it is shown in every mode.
func (r *Reporter) Error(path, msg string) {
	if r.Mode == JSON {
		r.Event(map[string]string{"type": "error", "path": path, "message": msg})
		return
	}
	r.printErr("error: %s: %s\n", path, msg)
}

func (r *Reporter) printErr(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bar != nil {
		_ = r.bar.Clear()
	}
	fmt.Fprintf(r.Err, format, args...)
}

// Step says on Err which phase a long command has reached, in human mode
// only. It is written before Step returns, so what follows it on Out, the
// verdict, comes after it even when Out and Err are one terminal.
func (r *Reporter) Step(msg string) {
	if r.Mode != Human {
		return
	}
	r.printErr("%s\n", msg)
}

// Printf writes to Out in human mode only.
func (r *Reporter) Printf(format string, args ...any) {
	if r.Mode != Human {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.Out, format, args...)
}

// Track samples sample() until the returned stop is called: a bar on a
// terminal, a status event every second with --json, nothing otherwise.
func (r *Reporter) Track(verb string, sample func() Status) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	switch {
	case r.Mode == JSON:
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					r.Event(statusEvent(verb, sample(), time.Since(start)))
				}
			}
		}()
	case r.Mode == Human && r.tty:
		r.mu.Lock()
		r.bar = progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(r.Err),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionFullWidth(),
			progressbar.OptionUseIECUnits(true),
			progressbar.OptionSetDescription(verb))
		bar := r.bar
		r.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(250 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					s := sample()
					r.mu.Lock()
					if s.ScanDone && s.BytesTotal > 0 {
						bar.ChangeMax64(s.BytesTotal)
					}
					unit := s.Unit
					if unit == "" {
						unit = "files"
					}
					files := fmt.Sprintf("%d %s", s.FilesDone, unit)
					if s.FilesTotal > 0 {
						files = fmt.Sprintf("%d/%d %s", s.FilesDone, s.FilesTotal, unit)
					}
					bar.Describe(fmt.Sprintf("%s %s", verb, files))
					_ = bar.Set64(s.BytesDone)
					r.mu.Unlock()
				}
			}
		}()
	}
	return func() {
		close(done)
		wg.Wait()
		r.mu.Lock()
		if r.bar != nil {
			_ = r.bar.Clear()
			r.bar = nil
		}
		r.mu.Unlock()
	}
}

func statusEvent(verb string, s Status, elapsed time.Duration) map[string]any {
	ev := map[string]any{
		"type": "status", "action": verb,
		"files_done": s.FilesDone, "bytes_done": s.BytesDone,
		"elapsed_secs": elapsed.Seconds(),
	}
	if s.Unit != "" {
		ev["unit"] = s.Unit // what files_done counts
	}
	if s.ScanDone {
		ev["files_total"], ev["bytes_total"] = s.FilesTotal, s.BytesTotal
		if s.BytesTotal > 0 && s.BytesDone > 0 {
			frac := float64(s.BytesDone) / float64(s.BytesTotal)
			ev["percent"] = 100 * frac
			ev["eta_secs"] = elapsed.Seconds() * (1 - frac) / frac
		}
	}
	if s.Current != "" {
		ev["current"] = s.Current
	}
	return ev
}

// Count is n and the noun, in the plural unless n is 1: "1 snapshot",
// "3 packs". The noun's plural takes an s.
func Count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// Bytes formats a byte count for people.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
