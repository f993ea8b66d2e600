//go:build linux

package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"io"
	"os"
	"slices"
	"time"
)

// An op is one application operation (a transaction, a transfer, a block
// write, or the time the application was held paused) as its writer timed it.
type op struct {
	start time.Time
	dur   time.Duration
}

func (o op) end() time.Time { return o.start.Add(o.dur) }

// latencyLog appends ops to a file as pairs of little-endian int64: start
// (Unix ns) and duration (ns). Writers flush it when they stop.
type latencyLog struct {
	f *os.File
	w *bufio.Writer
}

func createLatencyLog(path string) (*latencyLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &latencyLog{f: f, w: bufio.NewWriterSize(f, 64<<10)}, nil
}

func (l *latencyLog) add(start time.Time, dur time.Duration) {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], uint64(start.UnixNano()))
	binary.LittleEndian.PutUint64(b[8:], uint64(dur))
	l.w.Write(b[:]) // errors surface at close
}

func (l *latencyLog) close() error {
	err := l.w.Flush()
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// readLatencyLog reads what a latencyLog wrote; a missing file is no ops.
func readLatencyLog(path string) ([]op, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var ops []op
	var b [16]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return ops, nil
			}
			return ops, err
		}
		ops = append(ops, op{
			start: time.Unix(0, int64(binary.LittleEndian.Uint64(b[:8]))),
			dur:   time.Duration(binary.LittleEndian.Uint64(b[8:])),
		})
	}
}

// inWindow keeps the ops that overlap [from, to].
func inWindow(ops []op, from, to time.Time) []op {
	var out []op
	for _, o := range ops {
		if o.start.Before(to) && o.end().After(from) {
			out = append(out, o)
		}
	}
	return out
}

// latencyStats summarises ops: median, 99th percentile and the longest
// single op (the longest stall the application saw).
type latencyStats struct {
	n             int
	p50, p99, max time.Duration
}

func statsOf(ops []op) latencyStats {
	if len(ops) == 0 {
		return latencyStats{}
	}
	d := make([]time.Duration, len(ops))
	for i, o := range ops {
		d[i] = o.dur
	}
	slices.Sort(d)
	return latencyStats{n: len(d), p50: percentile(d, 50), p99: percentile(d, 99), max: d[len(d)-1]}
}

// percentile of sorted values, nearest rank.
func percentile(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100
	return sorted[max(i-1, 0)]
}

// writerFlags are the flags every writer takes: where its aux files go
// (logs outside the backed-up data) and where it logs its latencies.
type writerFlags struct {
	aux, lat *string
}

func addWriterFlags(fs *flag.FlagSet) writerFlags {
	return writerFlags{aux: fs.String("aux", "", "aux directory"), lat: fs.String("lat", "", "latency log")}
}

// parse parses a writer's arguments and opens its latency log.
func (w writerFlags) parse(fs *flag.FlagSet, args []string) (*latencyLog, error) {
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return createLatencyLog(*w.lat)
}
