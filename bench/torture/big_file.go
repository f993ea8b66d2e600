//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"
)

// bigFile is one large file rewritten in place at random offsets, a block
// at a time, like a mail store or a VM image. Every block carries its
// index, the sequence number of the write that made it (0: the initial
// content) and a CRC. The writer numbers its writes globally and logs the
// block of each write (in aux), so the verifier can decide whether a
// restored copy is a state the file really had: every block whole, and a
// sequence number S such that every block holds exactly the last write to
// it with a number ≤ S.
//
// Blocks are one page (4 KiB): a page is written atomically with respect to
// a snapshot, so a crash-consistent copy is always point in time.
type bigFile struct{}

const (
	bigFileName = "big.dat"
	blockSize   = 4096
	writeLog    = "writes.log" // one little-endian uint32 block index per write; write n is entry n-1
	blockMagic  = "SPBLOCK1"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (bigFile) name() string { return "big-file" }

func (bigFile) template(ctx context.Context, cfg *config, dir string) error { return nil }

func (bigFile) setup(ctx context.Context, e *wlEnv) error {
	f, err := os.Create(filepath.Join(e.src, bigFileName))
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	blk := make([]byte, blockSize)
	for i := range e.cfg.bigFileMiB << 20 / blockSize {
		fillBlock(blk, uint64(i), 0)
		if _, err := w.Write(blk); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(e.aux, writeLog), nil, 0o644)
}

func (bigFile) start(ctx context.Context, e *wlEnv, window int) (running, error) {
	return startWork(ctx, e, latPath(e, window), "big-file", "-file", filepath.Join(e.src, bigFileName),
		"-rate", fmt.Sprint(e.cfg.bigRate))
}

func (bigFile) writerEntry(e *wlEnv) string { return ctlWriterEntry(e) }

func (bigFile) teardown(*wlEnv) {}

// fillBlock makes block idx as write seq left it: magic, index, sequence,
// CRC-32C, then bytes that depend on both.
func fillBlock(b []byte, idx, seq uint64) {
	copy(b, blockMagic)
	binary.LittleEndian.PutUint64(b[8:], idx)
	binary.LittleEndian.PutUint64(b[16:], seq)
	x := idx<<40 ^ seq ^ 0x9e3779b97f4a7c15
	for i := 32; i < len(b); i += 8 {
		x += 0x9e3779b97f4a7c15 // splitmix64
		z := x
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		binary.LittleEndian.PutUint64(b[i:], z^z>>31)
	}
	binary.LittleEndian.PutUint32(b[24:], blockCRC(b))
}

func blockCRC(b []byte) uint32 {
	c := crc32.Update(0, castagnoli, b[:24])
	return crc32.Update(c, castagnoli, b[28:])
}

func (bigFile) verify(ctx context.Context, e *wlEnv, restored string) verdict {
	v := verifyBigFile(filepath.Join(restored, bigFileName), filepath.Join(e.aux, writeLog), e.cfg.bigFileMiB<<20/blockSize)
	if v.torn {
		v.fileTorn = []string{bigFileName}
	}
	return v
}

func verifyBigFile(path, logPath string, blocks int) verdict {
	seqs, err := readBlockSeqs(path, blocks)
	if err != nil {
		v := tornf("%v", err)
		v.damaged = true
		return v
	}
	lb, err := os.ReadFile(logPath)
	if err != nil {
		return tornf("write log: %v", err)
	}
	log := make([]uint32, len(lb)/4)
	for i := range log {
		log[i] = binary.LittleEndian.Uint32(lb[4*i:])
	}
	return judgeBigFile(seqs, log)
}

// readBlockSeqs checks every block of the file and returns the sequence
// number each holds.
func readBlockSeqs(path string, blocks int) ([]uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() != int64(blocks)*blockSize {
		return nil, fmt.Errorf("size %d, want %d", fi.Size(), int64(blocks)*blockSize)
	}
	r := bufio.NewReaderSize(f, 1<<20)
	b := make([]byte, blockSize)
	seqs := make([]uint64, blocks)
	for i := range seqs {
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		if string(b[:8]) != blockMagic || binary.LittleEndian.Uint64(b[8:]) != uint64(i) {
			return nil, fmt.Errorf("block %d: not a block of this file (torn or misplaced)", i)
		}
		if binary.LittleEndian.Uint32(b[24:]) != blockCRC(b) {
			return nil, fmt.Errorf("block %d: checksum mismatch (torn)", i)
		}
		seqs[i] = binary.LittleEndian.Uint64(b[16:])
	}
	return seqs, nil
}

// judgeBigFile: the copy is point in time iff every block's write is in the
// log for that block, and no block misses a write numbered at most the
// newest write the copy holds.
func judgeBigFile(seqs []uint64, log []uint32) verdict {
	var newest uint64
	for i, s := range seqs {
		if s > uint64(len(log)) || (s > 0 && log[s-1] != uint32(i)) {
			v := tornf("block %d holds write %d, which the writer never made to it", i, s)
			v.damaged = true
			return v
		}
		newest = max(newest, s)
	}
	for n := uint64(1); n <= newest; n++ {
		if b := log[n-1]; seqs[b] < n {
			return tornf("not one moment: block %d holds write %d but misses write %d, older than write %d held elsewhere", b, seqs[b], n, newest)
		}
	}
	return verdict{}
}

// workBigFile is the application: rate block writes a second at random
// blocks until stopped.
func workBigFile(args []string) error {
	fs := flag.NewFlagSet("big-file", flag.ContinueOnError)
	path := fs.String("file", "", "the file")
	rate := fs.Int("rate", 100, "block writes per second")
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
	lf, err := os.OpenFile(filepath.Join(*wf.aux, writeLog), os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	defer lf.Close()
	lfi, err := lf.Stat()
	if err != nil {
		return err
	}
	seq := uint64(lfi.Size() / 4)
	logw := bufio.NewWriter(lf)
	defer logw.Flush()
	ctl, err := newAppControl(*wf.aux, lat)
	if err != nil {
		return err
	}
	defer ctl.close()
	ready()
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid())))
	blk := make([]byte, blockSize)
	interval := time.Second / time.Duration(*rate)
	next := time.Now()
	for ctl.safePoint() {
		seq++
		b := r.Int64N(blocks)
		var e [4]byte
		binary.LittleEndian.PutUint32(e[:], uint32(b))
		logw.Write(e[:])
		fillBlock(blk, uint64(b), seq)
		start := time.Now()
		if _, err := f.WriteAt(blk, b*blockSize); err != nil {
			return err
		}
		lat.add(start, time.Since(start))
		next = next.Add(interval)
		if d := time.Until(next); d > 0 {
			if !ctl.idle(d) {
				break
			}
		} else {
			next = time.Now() // fell behind (stalled): do not burst to catch up
		}
	}
	return logw.Flush()
}
