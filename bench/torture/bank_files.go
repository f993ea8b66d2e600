//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// bankFiles is an application that knows nothing of snapshots: accounts
// are files, and a transfer writes the withdrawal to one file and, a few
// milliseconds later, the deposit to another, then pauses. The sum over
// the files is right only between transfers.
//
// Each file holds one record of recordSize bytes, rewritten in place:
// account, transfer number, which half of the transfer (I initial, W
// withdrawal, D deposit), balance, and a CRC. The application appends every
// transfer to a log in its aux directory before making it, which lets the
// verifier tell whether each restored file is a state that file had, and
// whether the files together are the state of one moment.
//
// Within a backup window the application is busy for a burst of random
// length and then idle until stopped: the pattern a write-inactivity wait
// is made for.
type bankFiles struct{}

const (
	bankFileAccounts = 4
	recordSize       = 512
	transferLog      = "transfers.log"
)

func (bankFiles) name() string { return "bank-files" }

func acctFile(i int) string { return fmt.Sprintf("acct-%d.dat", i) }

func (bankFiles) template(ctx context.Context, cfg *config, dir string) error { return nil }

func (bankFiles) setup(ctx context.Context, e *wlEnv) error {
	for i := range bankFileAccounts {
		if err := os.WriteFile(filepath.Join(e.src, acctFile(i)), encodeRecord(acctRecord{acct: i, half: 'I', balance: bankStartBal}), 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(e.aux, transferLog), nil, 0o644)
}

func (bankFiles) start(ctx context.Context, e *wlEnv, window int) (running, error) {
	c := e.cfg
	return startWork(ctx, e, latPath(e, window), "bank-files", "-dir", e.src,
		"-burst-min", c.burstMin.String(), "-burst-max", c.burstMax.String())
}

// writerEntry pauses the application between two transfers through its
// pause API (torture ctl), the way an `app-ctl pause` would.
func (bankFiles) writerEntry(e *wlEnv) string { return ctlWriterEntry(e) }

func ctlWriterEntry(e *wlEnv) string {
	ctl := func(verb string) string {
		return yamlQuote(fmt.Sprintf("%s ctl %s -dir %s", shellQuote(e.self), verb, shellQuote(e.aux)))
	}
	return fmt.Sprintf("- command: {freeze: %s, thaw: %s, timeout: 30s}", ctl("pause"), ctl("resume"))
}

func (bankFiles) verify(ctx context.Context, e *wlEnv, restored string) verdict {
	transfers, err := readTransfers(filepath.Join(e.aux, transferLog))
	if err != nil {
		return tornf("transfer log: %v", err) // a harness problem; counted torn so it is seen
	}
	var recs []acctRecord
	for i := range bankFileAccounts {
		b, err := os.ReadFile(filepath.Join(restored, acctFile(i)))
		if err != nil {
			return verdict{torn: true, notOneMoment: true, damaged: true, fileTorn: []string{acctFile(i)}, reason: err.Error()}
		}
		r, err := decodeRecord(b)
		if err == nil && r.acct != i {
			err = fmt.Errorf("record of account %d", r.acct)
		}
		if err != nil {
			return verdict{torn: true, notOneMoment: true, damaged: true, fileTorn: []string{acctFile(i)}, reason: acctFile(i) + ": " + err.Error()}
		}
		recs = append(recs, r)
	}
	return judgeBank(recs, transfers)
}

func (bankFiles) teardown(*wlEnv) {}

type acctRecord struct {
	acct    int
	seq     int  // the transfer that wrote it; 0 for the initial record
	half    byte // I, W or D
	balance int64
}

type transfer struct {
	from, to int
	amount   int64
}

func encodeRecord(r acctRecord) []byte {
	body := fmt.Sprintf("bank-files acct=%d seq=%d half=%c balance=%d", r.acct, r.seq, r.half, r.balance)
	b := make([]byte, 0, recordSize)
	b = append(b, body...)
	for len(b) < recordSize-14 {
		b = append(b, ' ')
	}
	b = append(b, '\n')
	return fmt.Appendf(b, "crc=%08x\n", crc32.ChecksumIEEE(b))
}

func decodeRecord(b []byte) (acctRecord, error) {
	var r acctRecord
	if len(b) != recordSize {
		return r, fmt.Errorf("%d bytes, want %d", len(b), recordSize)
	}
	body := b[:recordSize-13]
	var crc uint32
	if _, err := fmt.Sscanf(string(b[recordSize-13:]), "crc=%08x\n", &crc); err != nil || crc != crc32.ChecksumIEEE(body) {
		return r, errors.New("checksum mismatch (a torn record)")
	}
	_, err := fmt.Sscanf(strings.TrimRight(string(body), " \n"), "bank-files acct=%d seq=%d half=%c balance=%d", &r.acct, &r.seq, &r.half, &r.balance)
	return r, err
}

func readTransfers(path string) ([]transfer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ts []transfer
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var seq int
		var t transfer
		if _, err := fmt.Sscanf(sc.Text(), "%d %d %d %d", &seq, &t.from, &t.to, &t.amount); err != nil || seq != len(ts)+1 {
			return nil, fmt.Errorf("line %d: %q", len(ts)+1, sc.Text())
		}
		ts = append(ts, t)
	}
	return ts, sc.Err()
}

// judgeBank decides, from the log, whether each record is a state its file
// had, whether the records are one moment, and whether that moment lies
// between transfers. Event 2t-1 is the withdrawal of transfer t, event 2t
// its deposit; a record's position is the event that wrote it.
func judgeBank(recs []acctRecord, ts []transfer) verdict {
	// balance[a][p]: account a's balance after each event p touching it
	type event struct {
		pos     int
		balance int64
	}
	hist := make([][]event, len(recs))
	bal := make([]int64, len(recs))
	for a := range recs {
		bal[a] = bankStartBal
		hist[a] = []event{{0, bankStartBal}}
	}
	for i, t := range ts {
		if t.from < 0 || t.from >= len(recs) || t.to < 0 || t.to >= len(recs) {
			return tornf("transfer log: transfer %d names account out of range", i+1)
		}
		bal[t.from] -= t.amount
		hist[t.from] = append(hist[t.from], event{2*(i+1) - 1, bal[t.from]})
		bal[t.to] += t.amount
		hist[t.to] = append(hist[t.to], event{2 * (i + 1), bal[t.to]})
	}
	pos := make([]int, len(recs))
	var v verdict
	var reasons []string
	for a, r := range recs {
		p := 0
		switch r.half {
		case 'W':
			p = 2*r.seq - 1
		case 'D':
			p = 2 * r.seq
		}
		k := -1
		for j, ev := range hist[a] {
			if ev.pos == p {
				k = j
			}
		}
		if k < 0 || hist[a][k].balance != r.balance || (r.half == 'I') != (r.seq == 0) {
			v.fileTorn = append(v.fileTorn, acctFile(a))
			reasons = append(reasons, fmt.Sprintf("%s: transfer %d %c balance %d is no state the file had", acctFile(a), r.seq, r.half, r.balance))
			continue
		}
		pos[a] = p
	}
	if len(v.fileTorn) > 0 {
		v.torn, v.notOneMoment, v.damaged = true, true, true
		v.reason = strings.Join(reasons, "; ")
		return v
	}
	moment := 0
	for _, p := range pos {
		moment = max(moment, p)
	}
	for a := range recs {
		for _, ev := range hist[a] {
			if ev.pos > pos[a] && ev.pos <= moment {
				v.torn, v.notOneMoment = true, true
				reasons = append(reasons, fmt.Sprintf("%s misses event %d of a moment at event %d", acctFile(a), ev.pos, moment))
				break
			}
		}
	}
	if v.notOneMoment {
		v.reason = "not one moment: " + strings.Join(reasons, "; ")
		return v
	}
	var sum int64
	for _, r := range recs {
		sum += r.balance
	}
	if moment%2 == 1 {
		v.torn = true
		v.reason = fmt.Sprintf("mid-transfer: withdrawal of transfer %d without its deposit (sum %d, want %d)", (moment+1)/2, sum, int64(len(recs))*bankStartBal)
	} else if sum != int64(len(recs))*bankStartBal {
		v.torn = true
		v.reason = fmt.Sprintf("sum %d, want %d", sum, int64(len(recs))*bankStartBal)
	}
	return v
}

// workBankFiles is the application.
func workBankFiles(args []string) error {
	fs := flag.NewFlagSet("bank-files", flag.ContinueOnError)
	dir := fs.String("dir", "", "the accounts' directory")
	burstMin := fs.Duration("burst-min", time.Second, "shortest busy burst")
	burstMax := fs.Duration("burst-max", 3*time.Second, "longest busy burst")
	gap := fs.Duration("gap", 5*time.Millisecond, "time between withdrawal and deposit")
	idleMin := fs.Duration("idle-min", 0, "gaps mode: shortest idle time after each transfer (0: one burst, then idle)")
	idleMax := fs.Duration("idle-max", 0, "gaps mode: longest idle time after each transfer")
	wf := addWriterFlags(fs)
	lat, err := wf.parse(fs, args)
	if err != nil {
		return err
	}
	defer lat.close()
	ts, err := readTransfers(filepath.Join(*wf.aux, transferLog))
	if err != nil {
		return err
	}
	files := make([]*os.File, bankFileAccounts)
	recs := make([]acctRecord, bankFileAccounts)
	for i := range files {
		if files[i], err = os.OpenFile(filepath.Join(*dir, acctFile(i)), os.O_RDWR, 0); err != nil {
			return err
		}
		defer files[i].Close()
		b := make([]byte, recordSize)
		if _, err := files[i].ReadAt(b, 0); err != nil {
			return err
		}
		if recs[i], err = decodeRecord(b); err != nil {
			return fmt.Errorf("%s: %v", acctFile(i), err)
		}
	}
	logf, err := os.OpenFile(filepath.Join(*wf.aux, transferLog), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	defer logf.Close()
	ctl, err := newAppControl(*wf.aux, lat)
	if err != nil {
		return err
	}
	defer ctl.close()
	ready()
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid())))
	put := func(a int) error {
		start := time.Now()
		_, err := files[a].WriteAt(encodeRecord(recs[a]), 0)
		lat.add(start, time.Since(start))
		return err
	}
	end := time.Now().Add(*burstMin + time.Duration(r.Int64N(int64(*burstMax-*burstMin)+1)))
	if *idleMin > 0 {
		end = time.Now().Add(time.Duration(1<<62 - 1)) // until stopped
	}
	for seq := len(ts) + 1; time.Now().Before(end) && ctl.safePoint(); seq++ {
		from := r.IntN(bankFileAccounts)
		to := (from + 1 + r.IntN(bankFileAccounts-1)) % bankFileAccounts
		amount := 1 + r.Int64N(50)
		if _, err := logf.WriteString(strconv.Itoa(seq) + " " + strconv.Itoa(from) + " " + strconv.Itoa(to) + " " + strconv.FormatInt(amount, 10) + "\n"); err != nil {
			return err
		}
		recs[from] = acctRecord{acct: from, seq: seq, half: 'W', balance: recs[from].balance - amount}
		if err := put(from); err != nil {
			return err
		}
		time.Sleep(*gap) // not a safe point: the money is in neither file
		recs[to] = acctRecord{acct: to, seq: seq, half: 'D', balance: recs[to].balance + amount}
		if err := put(to); err != nil {
			return err
		}
		pause := time.Duration(10+r.IntN(20)) * time.Millisecond
		if *idleMin > 0 {
			pause = *idleMin + time.Duration(r.Int64N(int64(*idleMax-*idleMin)+1))
		}
		if !ctl.idle(pause) {
			break
		}
	}
	for ctl.idle(time.Second) {
	}
	return nil
}

// bankGaps is bank-files with one transfer at a time, each followed by an
// idle time just longer than the inactivity period: the wait sees a quiet
// period end again and again, and the next transfer starts a few
// milliseconds after it, while the snapshot is being made. A wait that
// snapped at the end of the quiet period and did not look again would
// catch withdrawals without their deposits.
type bankGaps struct{ bankFiles }

func (bankGaps) name() string { return "bank-gaps" }

// The withdrawal-to-deposit gap is long enough for a snapshot to land in.
const bankGapsWD = 20 * time.Millisecond

func (bankGaps) start(ctx context.Context, e *wlEnv, window int) (running, error) {
	c := e.cfg
	return startWork(ctx, e, latPath(e, window), "bank-files", "-dir", e.src, "-gap", bankGapsWD.String(),
		"-idle-min", (c.inactivity + 5*time.Millisecond).String(), "-idle-max", (c.inactivity + 40*time.Millisecond).String())
}
