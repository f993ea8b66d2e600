//go:build linux

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// seqRewrite is one file rewritten in place, block after block, as fast as
// a process can: each pass stamps every block with its pass number (and
// its index and a CRC, as big-file's blocks). A state the file really had
// is a cut: blocks [0,k) from pass G+1, [k,n) from pass G. A volume
// snapshot that lets in-flight writes land page by page catches older
// blocks between newer ones, which no moment of the file ever held.
//
// The writer never syncs: under dirty-page pressure (see pressure.go) the
// kernel writes its pages back while the snapshot is taken.
type seqRewrite struct{}

const (
	seqFileName = "seq.dat"
	// seqState (in aux) is "PASS NEXT": the pass being written and its next
	// block. The writer reads it when it starts and writes it when it stops.
	seqState = "seq.state"
	// seqOpBlocks block writes make one op of the latency log: single
	// block writes take microseconds, and a log of each would be millions
	// of ops per backup.
	seqOpBlocks = 64
)

func (seqRewrite) name() string { return "seq-rewrite" }

func (seqRewrite) template(ctx context.Context, cfg *config, dir string) error { return nil }

func (seqRewrite) setup(ctx context.Context, e *wlEnv) error {
	if err := writeBlockFile(filepath.Join(e.src, seqFileName), e.cfg.seqBlocks); err != nil {
		return err
	}
	return writeSeqState(e.aux, 1, 0)
}

func (seqRewrite) start(ctx context.Context, e *wlEnv, window int) (running, error) {
	return startWork(ctx, e, latPath(e, window), "seq-rewrite", "-file", filepath.Join(e.src, seqFileName))
}

// writerEntry pauses the writer between two block writes (any such state
// is a cut) through its pause API.
func (seqRewrite) writerEntry(e *wlEnv) string { return ctlWriterEntry(e) }

func (seqRewrite) teardown(*wlEnv) {}

func (seqRewrite) verify(ctx context.Context, e *wlEnv, restored string) verdict {
	pass, _, err := readSeqState(e.aux)
	if err != nil {
		return tornf("writer state: %v", err) // a harness problem; counted torn so it is seen
	}
	v := verifySeqRewrite(filepath.Join(restored, seqFileName), e.cfg.seqBlocks, pass)
	if v.torn {
		v.fileTorn = []string{seqFileName}
	}
	return v
}

func verifySeqRewrite(path string, blocks int, lastPass uint64) verdict {
	passes, err := readBlockSeqs(path, blocks)
	if err != nil {
		v := tornf("%v", err)
		v.damaged = true
		return v
	}
	return judgeCut(passes, lastPass)
}

// judgeCut: the file is a state it had iff no block holds a pass after
// lastPass (the pass the writer was on when it stopped) and the passes
// are one cut: non-increasing from the first block to the last, and at
// most one apart.
func judgeCut(passes []uint64, lastPass uint64) verdict {
	if len(passes) == 0 {
		return verdict{}
	}
	for i, p := range passes {
		if p > lastPass {
			v := tornf("block %d holds pass %d; the writer never got past pass %d", i, p, lastPass)
			v.damaged = true
			return v
		}
	}
	newer, older := passes[0], passes[len(passes)-1]
	for i := 1; i < len(passes); i++ {
		if passes[i] > passes[i-1] {
			return tornf("not a cut: %s", passRuns(passes))
		}
	}
	if newer-older > 1 {
		return tornf("not a cut: more than two passes: %s", passRuns(passes))
	}
	return verdict{}
}

// passRuns describes passes as runs of blocks: "blocks 0–2498 pass 384,
// 2499–2599 pass 383, 2600–4095 pass 384" (at most 8 runs).
func passRuns(passes []uint64) string {
	var runs []string
	for i := 0; i < len(passes); {
		j := i
		for j+1 < len(passes) && passes[j+1] == passes[i] {
			j++
		}
		if len(runs) == 8 {
			runs = append(runs, "…")
			break
		}
		runs = append(runs, fmt.Sprintf("%d–%d pass %d", i, j, passes[i]))
		i = j + 1
	}
	return "blocks " + strings.Join(runs, ", ")
}

// writeBlockFile makes a file of blocks blocks of pass 0.
func writeBlockFile(path string, blocks int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	blk := make([]byte, blockSize)
	buf := make([]byte, 0, 256*blockSize)
	for i := range blocks {
		fillBlock(blk, uint64(i), 0)
		buf = append(buf, blk...)
		if len(buf) == cap(buf) || i == blocks-1 {
			if _, err := f.Write(buf); err != nil {
				f.Close()
				return err
			}
			buf = buf[:0]
		}
	}
	return f.Close()
}

func writeSeqState(aux string, pass uint64, next int64) error {
	p := filepath.Join(aux, seqState)
	if err := os.WriteFile(p+".tmp", fmt.Appendf(nil, "%d %d\n", pass, next), 0o644); err != nil {
		return err
	}
	return os.Rename(p+".tmp", p)
}

func readSeqState(aux string) (pass uint64, next int64, err error) {
	b, err := os.ReadFile(filepath.Join(aux, seqState))
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("%s: %q", seqState, b)
	}
	if pass, err = strconv.ParseUint(f[0], 10, 64); err == nil {
		next, err = strconv.ParseInt(f[1], 10, 64)
	}
	return pass, next, err
}

// workSeqRewrite is the application: passes over the file, block after
// block, without a pause, until stopped. Between two block writes it is at
// a safe point (the file is a cut), where it answers pause and stop.
func workSeqRewrite(args []string) error {
	fs := flag.NewFlagSet("seq-rewrite", flag.ContinueOnError)
	path := fs.String("file", "", "the file")
	wf := addWriterFlags(fs)
	lat, err := wf.parse(fs, args)
	if err != nil {
		return err
	}
	defer lat.close()
	f, err := os.OpenFile(*path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	blocks := fi.Size() / blockSize
	if blocks == 0 {
		return errors.New("seq-rewrite: empty file")
	}
	pass, next, err := readSeqState(*wf.aux)
	if err != nil {
		return err
	}
	ctl, err := newAppControl(*wf.aux, lat)
	if err != nil {
		return err
	}
	defer ctl.close()
	ready()
	blk := make([]byte, blockSize)
	opStart, opBlocks := time.Now(), 0
	for ctl.safePoint() {
		fillBlock(blk, uint64(next), pass)
		if _, err := f.WriteAt(blk, next*blockSize); err != nil {
			return err
		}
		if next++; next == blocks {
			pass, next = pass+1, 0
		}
		if opBlocks++; opBlocks == seqOpBlocks {
			lat.add(opStart, time.Since(opStart))
			opStart, opBlocks = time.Now(), 0
		}
		if ctl.pause.Load() {
			// the pause is an op of its own; the blocks before it are one too
			if opBlocks > 0 {
				lat.add(opStart, time.Since(opStart))
			}
			ctl.safePoint()
			opStart, opBlocks = time.Now(), 0
		}
	}
	return writeSeqState(*wf.aux, pass, next)
}
