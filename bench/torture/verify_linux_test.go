//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The verifiers must catch what they exist for: a stillpoint bug that
// stores a torn file as whole would otherwise pass unseen.

func TestJudgeBigFile(t *testing.T) {
	// writes 1..4 went to blocks 2, 0, 2, 1
	log := []uint32{2, 0, 2, 1}
	for _, c := range []struct {
		name string
		seqs []uint64
		torn bool
	}{
		{"initial", []uint64{0, 0, 0}, false},
		{"after write 2", []uint64{2, 0, 1}, false},
		{"after write 4", []uint64{2, 4, 3}, false},
		{"misses write 3", []uint64{2, 4, 1}, true},
		{"misses write 1", []uint64{0, 4, 3}, true}, // block 2 holds 3 but block 0 misses 2
		{"write that never went there", []uint64{3, 0, 0}, true},
		{"write from the future", []uint64{0, 0, 5}, true},
	} {
		if v := judgeBigFile(c.seqs, log); v.torn != c.torn {
			t.Errorf("%s: torn=%v (%s), want %v", c.name, v.torn, v.reason, c.torn)
		}
	}
}

func TestBigFileTornBlock(t *testing.T) {
	dir := t.TempDir()
	e := &wlEnv{cfg: &config{bigFileMiB: 1}, src: dir, aux: dir}
	if err := (bigFile{}).setup(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	if v := (bigFile{}).verify(t.Context(), e, dir); v.torn {
		t.Fatalf("fresh file torn: %s", v.reason)
	}
	// half of block 7 from write 1 (which went to block 7), half initial
	f, err := os.OpenFile(filepath.Join(dir, bigFileName), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	blk := make([]byte, blockSize)
	fillBlock(blk, 7, 1)
	f.WriteAt(blk[:blockSize/2], 7*blockSize)
	f.Close()
	os.WriteFile(filepath.Join(dir, writeLog), []byte{7, 0, 0, 0}, 0o644)
	v := (bigFile{}).verify(t.Context(), e, dir)
	if !v.torn || !strings.Contains(v.reason, "checksum") || len(v.fileTorn) != 1 {
		t.Fatalf("torn block not caught: %+v", v)
	}
}

func TestJudgeBank(t *testing.T) {
	// transfer 1: 0→1 10; transfer 2: 1→2 5
	ts := []transfer{{0, 1, 10}, {1, 2, 5}}
	rec := func(a, seq int, half byte, bal int64) acctRecord {
		return acctRecord{acct: a, seq: seq, half: half, balance: bal}
	}
	initial := func(a int) acctRecord { return rec(a, 0, 'I', bankStartBal) }
	for _, c := range []struct {
		name                     string
		recs                     []acctRecord
		torn, notOneMoment, file bool
	}{
		{"initial", []acctRecord{initial(0), initial(1), initial(2), initial(3)}, false, false, false},
		{"after transfer 2", []acctRecord{rec(0, 1, 'W', 990), rec(1, 2, 'W', 1005), rec(2, 2, 'D', 1005), initial(3)}, false, false, false},
		{"mid transfer 1", []acctRecord{rec(0, 1, 'W', 990), initial(1), initial(2), initial(3)}, true, false, false},
		{"deposit without withdrawal", []acctRecord{initial(0), rec(1, 1, 'D', 1010), initial(2), initial(3)}, true, true, false},
		{"a balance that never was", []acctRecord{rec(0, 1, 'W', 995), rec(1, 1, 'D', 1010), initial(2), initial(3)}, true, true, true},
	} {
		v := judgeBank(c.recs, ts)
		if v.torn != c.torn || v.notOneMoment != c.notOneMoment || (len(v.fileTorn) > 0) != c.file {
			t.Errorf("%s: %+v, want torn=%v notOneMoment=%v file=%v", c.name, v, c.torn, c.notOneMoment, c.file)
		}
	}
}

func TestBankRecordRoundTrip(t *testing.T) {
	r := acctRecord{acct: 3, seq: 17, half: 'D', balance: -42}
	b := encodeRecord(r)
	if len(b) != recordSize {
		t.Fatalf("record is %d bytes", len(b))
	}
	got, err := decodeRecord(b)
	if err != nil || got != r {
		t.Fatalf("decode: %+v, %v", got, err)
	}
	torn := append(encodeRecord(acctRecord{acct: 3, seq: 18, half: 'W', balance: -50})[:100], b[100:]...)
	if _, err := decodeRecord(torn); err == nil {
		t.Fatal("a record torn between two writes decoded")
	}
}

func TestClassify(t *testing.T) {
	live := mode{name: "read", tool: "stillpoint"}
	snap := mode{name: "btrfs", tool: "stillpoint"}
	writer := mode{name: "writer", tool: "stillpoint", job: "writer"}
	torn := verdict{torn: true, notOneMoment: true}
	fileTorn := verdict{torn: true, notOneMoment: true, fileTorn: []string{"big.dat"}}
	midTransfer := verdict{torn: true}
	none := backupResult{problems: map[string]string{}, consistency: "live"}
	vol := backupResult{problems: map[string]string{}, consistency: "volume"}
	flagged := backupResult{problems: map[string]string{"big.dat": "changed"}, consistency: "live"}
	for _, c := range []struct {
		name              string
		m                 mode
		v                 verdict
		br                backupResult
		silent, unflagged bool
	}{
		{"whole", live, verdict{}, none, false, false},
		{"torn file classed ok", live, fileTorn, none, true, false},
		{"torn file flagged", live, fileTorn, flagged, false, false},
		{"live files from different moments", live, torn, none, false, true},
		{"volume not one moment", snap, torn, vol, true, false},
		{"volume, real moment mid-transfer", snap, midTransfer, vol, false, true},
		{"writer, torn", writer, midTransfer, vol, true, false},
		{"cp never silent", mode{name: "cp", tool: "cp"}, fileTorn, none, false, false},
	} {
		s, u := classify(c.m, c.v, c.br)
		if s != c.silent || u != c.unflagged {
			t.Errorf("%s: silent=%v unflagged=%v, want %v %v", c.name, s, u, c.silent, c.unflagged)
		}
	}
}
