package soak

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Summary is the report's figures.
type Summary struct {
	Backups, FirstBackups int
	// steady-state backups (each client's first, which reads its whole
	// tree, left out), by the part of their time a prune ran
	DuringPrune, NoPrune, Partly, All Throughput
	// the prune loop (not the final commands)
	Commands, Prunes, SnapshotsRemoved  int
	MarksSwept, PendingSeen, KeptPacks  int
	RemovedPacks, RepackPacks           int
	RemovedBytes, RepackBytes           int64
	RepackWritten                       int64 // the new packs repacking wrote
	PruneWallMedian, PruneWallMax       time.Duration
	FinalRemovedBytes                   int64 // by the final prune and prune --now
	SizeStart, SizeMax, SizeEnd, Source int64
}

// Throughput is one class of backups.
type Throughput struct {
	N             int
	MedianMBps    float64 // of bytes read / the backup's duration
	MedianSeconds float64
	MedianRead    int64 // bytes read
}

func throughput(bs []Backup) Throughput {
	t := Throughput{N: len(bs)}
	if len(bs) == 0 {
		return t
	}
	var rates, secs, read []float64
	for _, b := range bs {
		rates = append(rates, b.MBps())
		secs = append(secs, b.Seconds)
		read = append(read, float64(b.BytesRead))
	}
	t.MedianMBps, t.MedianSeconds, t.MedianRead = median(rates), median(secs), int64(median(read))
	return t
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Summarize computes the figures.
func (r *Report) Summarize() Summary {
	var s Summary
	var during, none, partly []Backup
	firstDone := time.Duration(0)
	for _, b := range r.Backups {
		s.Backups++
		if b.Round == 0 {
			s.FirstBackups++
			firstDone = max(firstDone, b.Start+b.Wall)
			continue
		}
		switch {
		case b.PruneOverlap >= 0.5:
			during = append(during, b)
		case b.PruneOverlap == 0:
			none = append(none, b)
		default:
			partly = append(partly, b)
		}
	}
	s.DuringPrune, s.NoPrune, s.Partly = throughput(during), throughput(none), throughput(partly)
	s.All = throughput(append(append(append([]Backup(nil), during...), none...), partly...))
	var walls []float64
	for _, p := range r.Prunes {
		if p.Final {
			s.FinalRemovedBytes += p.Result.RemovedBytes
			continue
		}
		s.Commands++
		s.SnapshotsRemoved += len(p.Removed)
		if !p.Pruned {
			continue
		}
		x := p.Result
		s.Prunes++
		walls = append(walls, p.Wall.Seconds())
		s.PruneWallMax = max(s.PruneWallMax, p.Wall)
		s.MarksSwept += x.MarksSwept
		if x.MarksPending > 0 {
			s.PendingSeen++
		}
		s.KeptPacks += x.KeptPacks
		s.RemovedPacks += x.RemovedPacks
		s.RemovedBytes += x.RemovedBytes
		s.RepackPacks += x.RepackPacks
		s.RepackBytes += x.RepackBytes
		s.RepackWritten += x.RepackWritten
	}
	s.PruneWallMedian = time.Duration(median(walls) * float64(time.Second))
	for _, sm := range r.Sizes {
		if s.SizeStart == 0 && sm.At >= firstDone && firstDone > 0 {
			s.SizeStart = sm.Bytes
		}
		s.SizeMax = max(s.SizeMax, sm.Bytes)
	}
	s.SizeEnd = r.Final["loops"]
	for _, n := range r.Sources {
		s.Source += n
	}
	return s
}

// WriteMarkdown writes the figures and the verdict.
func (r *Report) WriteMarkdown(w io.Writer) {
	s := r.Summarize()
	c := r.Config
	pause := "back to back"
	if c.PrunePause > 0 {
		pause = fmt.Sprintf("with a pause of %s after each that pruned", c.PrunePause)
	}
	fmt.Fprintf(w, "%d clients, %d files each at the start (largest file up to %s), %s of sources in all; `%s` in a loop, %s; loops ran %s\n\n",
		c.Clients, c.Files, mib(c.MaxSize), mib(s.Source), pruneLoopText(c.PruneLoop), pause, r.Loop.Round(time.Second))
	verdict := "**passed**"
	if len(r.Failures) > 0 {
		verdict = fmt.Sprintf("**FAILED** (%d failures, below)", len(r.Failures))
	}
	fmt.Fprintf(w, "Result: %s. %d snapshots left, %d restored and compared byte for byte with their manifests (%s); `check --read-data` %s (%s); final `prune` and `prune --now` completed: %s.\n\n",
		verdict, r.Left, r.Restored, r.Restore.Round(time.Second), passFail(r, "check --read-data"), r.Check.Round(time.Second), yesNo(r.Pruned))
	fmt.Fprintf(w, "| | |\n|---|--:|\n")
	row := func(k string, v any) { fmt.Fprintf(w, "| %s | %v |\n", k, v) }
	row("backups (each client's first included)", s.Backups)
	row("forget --prune runs that pruned / loop commands", fmt.Sprintf("%d / %d", s.Prunes, s.Commands))
	row("snapshots removed by forget", s.SnapshotsRemoved)
	row("marks swept / prunes that found a mark waiting for a backup", fmt.Sprintf("%d / %d", s.MarksSwept, s.PendingSeen))
	row("packs deleted by the loop", fmt.Sprintf("%d (%s)", s.RemovedPacks, mib(s.RemovedBytes)))
	row("packs repacked (their used blobs copied into new packs)", fmt.Sprintf("%d (%s, %s written)", s.RepackPacks, mib(s.RepackBytes), mib(s.RepackWritten)))
	row("space reclaimed by the loop (deleted − written by repacking)", mib(s.RemovedBytes-s.RepackWritten))
	row("marked packs kept because a newer snapshot used them", s.KeptPacks)
	row("freed by the final prune and prune --now", mib(s.FinalRemovedBytes))
	row("prune run wall time, median / max", fmt.Sprintf("%.1f s / %.1f s", s.PruneWallMedian.Seconds(), s.PruneWallMax.Seconds()))
	row("repository after the first backups / max / at the end of the loops", fmt.Sprintf("%s / %s / %s", mib(s.SizeStart), mib(s.SizeMax), mib(s.SizeEnd)))
	row("repository after the last forget / prune / prune --now", fmt.Sprintf("%s / %s / %s", mib(r.Final["forget"]), mib(r.Final["prune"]), mib(r.Final["prune --now"])))
	fmt.Fprintf(w, "\nThe repository's size, at the end of each minute of the loops (max in that minute):\n\n| minute | size | max |\n|--:|--:|--:|\n")
	for _, m := range r.minutes() {
		fmt.Fprintf(w, "| %d | %s | %s |\n", m.n, mib(m.last), mib(m.max))
	}
	fmt.Fprintf(w, "\nBackups after each client's first, by the part of their time a prune ran (medians):\n\n")
	fmt.Fprintf(w, "| backups | n | read MB/s | backup s | read per backup |\n|---|--:|--:|--:|--:|\n")
	for _, x := range []struct {
		k string
		t Throughput
	}{{"no prune running", s.NoPrune}, {"a prune running ≥ half the time", s.DuringPrune}, {"a prune running < half the time", s.Partly}, {"all", s.All}} {
		fmt.Fprintf(w, "| %s | %d | %.1f | %.2f | %s |\n", x.k, x.t.N, x.t.MedianMBps, x.t.MedianSeconds, mib(x.t.MedianRead))
	}
	if len(r.Failures) > 0 {
		fmt.Fprintf(w, "\nFailures:\n\n")
		for _, f := range r.Failures {
			fmt.Fprintf(w, "- %s\n", f)
		}
	}
}

type minute struct {
	n         int
	last, max int64
}

// minutes groups the size samples by minute of the loops.
func (r *Report) minutes() []minute {
	var ms []minute
	for _, sm := range r.Sizes {
		n := int(sm.At/time.Minute) + 1
		if len(ms) == 0 || ms[len(ms)-1].n != n {
			ms = append(ms, minute{n: n})
		}
		m := &ms[len(ms)-1]
		m.last, m.max = sm.Bytes, max(m.max, sm.Bytes)
	}
	return ms
}

func passFail(r *Report, what string) string {
	for _, f := range r.Failures {
		if len(f) >= len(what) && f[:len(what)] == what {
			return "failed"
		}
	}
	return "clean"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func pruneLoopText(loop [][]string) string {
	var parts []string
	for _, args := range loop {
		parts = append(parts, "stillpoint "+strings.Join(args, " "))
	}
	return strings.Join(parts, "; ")
}
