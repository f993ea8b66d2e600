//go:build linux

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/testutil/ci"
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

func TestJudgeCut(t *testing.T) {
	for _, c := range []struct {
		name    string
		passes  []uint64
		last    uint64
		torn    bool
		damaged bool
	}{
		{"initial", []uint64{0, 0, 0, 0}, 1, false, false},
		{"mid pass", []uint64{3, 3, 2, 2}, 3, false, false},
		{"pass done", []uint64{3, 3, 3, 3}, 4, false, false},
		{"one block in", []uint64{3, 2, 2, 2}, 3, false, false},
		{"older blocks between newer", []uint64{3, 2, 3, 2}, 3, true, false},
		{"newer at the end", []uint64{2, 2, 2, 3}, 3, true, false},
		{"three passes", []uint64{4, 3, 3, 2}, 4, true, false},
		{"a pass the writer never made", []uint64{5, 4, 4, 4}, 4, true, true},
	} {
		v := judgeCut(c.passes, c.last)
		if v.torn != c.torn || v.damaged != c.damaged {
			t.Errorf("%s: torn=%v damaged=%v (%s), want %v %v", c.name, v.torn, v.damaged, v.reason, c.torn, c.damaged)
		}
	}
}

func TestSeqRewriteVerify(t *testing.T) {
	dir := t.TempDir()
	e := &wlEnv{cfg: &config{seqBlocks: 64}, src: dir, aux: dir}
	if err := (seqRewrite{}).setup(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	if v := (seqRewrite{}).verify(t.Context(), e, dir); v.torn {
		t.Fatalf("fresh file torn: %s", v.reason)
	}
	f, err := os.OpenFile(filepath.Join(dir, seqFileName), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	blk := make([]byte, blockSize)
	write := func(i int, pass uint64, n int) {
		fillBlock(blk, uint64(i), pass)
		if _, err := f.WriteAt(blk[:n], int64(i)*blockSize); err != nil {
			t.Fatal(err)
		}
	}
	// pass 1 up to block 9: a cut
	for i := range 10 {
		write(i, 1, blockSize)
	}
	if v := (seqRewrite{}).verify(t.Context(), e, dir); v.torn {
		t.Fatalf("a cut rejected: %s", v.reason)
	}
	// block 20 from pass 1 too: older blocks 10–19 between newer ones
	write(20, 1, blockSize)
	v := (seqRewrite{}).verify(t.Context(), e, dir)
	if !v.torn || v.damaged || !strings.Contains(v.reason, "not a cut") || len(v.fileTorn) != 1 {
		t.Fatalf("a non-cut accepted: %+v", v)
	}
	// half of block 20 from pass 1, half from pass 0: torn
	write(20, 0, blockSize)
	write(20, 1, blockSize/2)
	v = (seqRewrite{}).verify(t.Context(), e, dir)
	if !v.torn || !v.damaged || !strings.Contains(v.reason, "checksum") {
		t.Fatalf("a torn block accepted: %+v", v)
	}
}

func TestGitRepoVerify(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		if ci.Enabled() {
			t.Fatal("git is missing (bench/torture.sh installs it)")
		}
		t.Skip("needs git")
	}
	dir := t.TempDir()
	repo := filepath.Join(dir, gitRepo)
	if err := makeGitRepo(t.Context(), repo, dir); err != nil {
		t.Fatal(err)
	}
	// a loose object, as the churn leaves them
	os.WriteFile(filepath.Join(repo, churnFile(0)), []byte("changed\n"), 0o644)
	for _, args := range [][]string{{"add", "-A"}, {"commit", "-q", "-m", "change"}} {
		if _, err := git(t.Context(), dir, repo, args...); err != nil {
			t.Fatal(err)
		}
	}
	if v := verifyGitRepo(t.Context(), repo, dir); v.torn {
		t.Fatalf("a whole repository torn: %s", v.reason)
	}
	// the commit's blob written empty, as a snapshot that took the rename
	// of the object file but not its data leaves it
	out, err := git(t.Context(), dir, repo, "rev-parse", "HEAD:"+churnFile(0))
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(out)
	obj := filepath.Join(repo, ".git", "objects", id[:2], id[2:])
	if err := os.Chmod(obj, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(obj, 0); err != nil {
		t.Fatal(err)
	}
	if v := verifyGitRepo(t.Context(), repo, dir); !v.torn {
		t.Fatal("a repository with an empty object passed")
	}
	// HEAD naming a commit that does not exist
	os.Remove(obj)
	if _, err := git(t.Context(), dir, repo, "reset", "-q", "--hard", "HEAD~1"); err != nil {
		t.Fatal(err)
	}
	ref := filepath.Join(repo, ".git", "refs", "heads", "main")
	if err := os.WriteFile(ref, []byte(strings.Repeat("ab", 20)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if v := verifyGitRepo(t.Context(), repo, dir); !v.torn {
		t.Fatal("a repository whose HEAD names no commit passed")
	}
}

func TestClassify(t *testing.T) {
	live := mode{name: "read", tool: "stillpoint"}
	snap := mode{name: "btrfs", tool: "stillpoint"}
	writer := mode{name: "writer", tool: "stillpoint", job: "writer"}
	torn := verdict{torn: true, notOneMoment: true}
	fileTorn := verdict{torn: true, notOneMoment: true, fileTorn: []string{"big.dat"}}
	damaged := verdict{torn: true, notOneMoment: true, damaged: true, fileTorn: []string{"big.dat"}}
	midTransfer := verdict{torn: true}
	none := backupResult{problems: map[string]string{}, consistency: "live"}
	vol := backupResult{problems: map[string]string{}, consistency: "volume"}
	crash := backupResult{problems: map[string]string{}, consistency: "crash"}
	app := backupResult{problems: map[string]string{}, consistency: "application"}
	flagged := backupResult{problems: map[string]string{"big.dat": "changed"}, consistency: "live"}
	for _, c := range []struct {
		name                       string
		m                          mode
		v                          verdict
		br                         backupResult
		silent, unflagged, byCrash bool
	}{
		{"whole", live, verdict{}, none, false, false, false},
		{"torn file classed ok", live, fileTorn, none, true, false, false},
		{"torn file flagged", live, fileTorn, flagged, false, false, false},
		{"live files from different moments", live, torn, none, false, true, false},
		{"volume not one moment", snap, torn, vol, true, false, false},
		{"volume, file no state it had (a non-cut)", snap, fileTorn, vol, true, false, false},
		{"volume, real moment mid-transfer", snap, midTransfer, vol, false, true, false},
		{"crash, not one moment", snap, torn, crash, false, false, true},
		{"crash, file no state it had", snap, fileTorn, crash, false, false, true},
		{"crash, damaged block", snap, damaged, crash, true, false, false},
		{"crash, real moment mid-transfer", snap, midTransfer, crash, false, false, true},
		{"application, torn", snap, midTransfer, app, true, false, false},
		{"writer, torn", writer, midTransfer, vol, true, false, false},
		{"cp never silent", mode{name: "cp", tool: "cp"}, fileTorn, none, false, false, false},
	} {
		s, u, b := classify(c.m, c.v, c.br)
		if s != c.silent || u != c.unflagged || b != c.byCrash {
			t.Errorf("%s: silent=%v unflagged=%v byCrash=%v, want %v %v %v", c.name, s, u, b, c.silent, c.unflagged, c.byCrash)
		}
	}
}

func TestBreaksPromise(t *testing.T) {
	hold := mode{name: "hold", tool: "stillpoint", hold: "writers"}
	btrfs := mode{name: "btrfs", tool: "stillpoint", hold: "off"}
	torn := verdict{torn: true, notOneMoment: true}
	for _, c := range []struct {
		name string
		m    mode
		wl   string
		r    backupRun
		want bool
	}{
		{"hold, whole", hold, "git-churn", backupRun{}, false},
		{"hold, torn under volume", hold, "git-churn", backupRun{v: torn, silent: true}, true},
		{"hold timed out (crash), torn git", hold, "git-churn", backupRun{v: torn, byCrash: true}, false},
		{"hold timed out (crash), torn SQLite", hold, "bank-sqlite-wal", backupRun{v: torn, byCrash: true}, true},
		{"btrfs, torn SQLite", btrfs, "bank-sqlite-wal", backupRun{v: torn, byCrash: true}, true},
		{"btrfs promises no git", btrfs, "git-churn", backupRun{v: torn, byCrash: true}, false},
	} {
		if got := breaksPromise(c.m, c.wl, c.r); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
