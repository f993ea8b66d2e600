package quiesce

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/testutil/ci"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/loopfs"
)

// Writer timing: bursts of writes separated by quiet gaps well above the
// inactivity period the tests ask for.
const (
	burstLen   = 300 * time.Millisecond
	burstGap   = time.Second
	writeEvery = 10 * time.Millisecond
	testQuiet  = 300 * time.Millisecond
)

// TestInactivityWriterHelper is not a test: it is the writer process the
// inactivity tests start (a real process, so fanotify reports its pid).
// It logs "start NANOS" before the first write of a burst and "end NANOS"
// after the last one.
func TestInactivityWriterHelper(t *testing.T) {
	mode := os.Getenv("SP_INACTIVITY_WRITER")
	if mode == "" {
		t.Skip("helper process only")
	}
	f, err := os.OpenFile(os.Getenv("SP_INACTIVITY_FILE"), os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	logf, err := os.OpenFile(os.Getenv("SP_INACTIVITY_LOG"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	block := make([]byte, 4096)
	logLine := func(what string) { fmt.Fprintf(logf, "%s %d\n", what, time.Now().UnixNano()) }
	for i := 0; ; i++ {
		logLine("start")
		for end := time.Now().Add(burstLen); mode == "constant" || time.Now().Before(end); {
			if _, err := f.WriteAt(block, int64(i%64)*4096); err != nil {
				os.Exit(3)
			}
			time.Sleep(writeEvery)
		}
		logLine("end")
		time.Sleep(burstGap)
	}
}

type writerProc struct {
	cmd *exec.Cmd
	log string
}

func startWriter(t *testing.T, mode, file string) *writerProc {
	t.Helper()
	w := &writerProc{log: filepath.Join(t.TempDir(), "writer.log")}
	w.cmd = exec.Command(os.Args[0], "-test.run=^TestInactivityWriterHelper$", "-test.count=1")
	w.cmd.Env = append(os.Environ(), "SP_INACTIVITY_WRITER="+mode, "SP_INACTIVITY_FILE="+file, "SP_INACTIVITY_LOG="+w.log)
	w.cmd.Stderr = os.Stderr
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.cmd.Process.Kill(); w.cmd.Wait() })
	w.waitStarts(t, 1)
	return w
}

type burst struct{ start, end int64 } // end is MaxInt64 while in flight

func (w *writerProc) bursts(t *testing.T) []burst {
	f, err := os.Open(w.log)
	if err != nil {
		return nil
	}
	defer f.Close()
	var bs []burst
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		what, ns, ok := strings.Cut(sc.Text(), " ")
		n, err := strconv.ParseInt(ns, 10, 64)
		if !ok || err != nil {
			continue // a line being written
		}
		switch what {
		case "start":
			bs = append(bs, burst{n, 1<<63 - 1})
		case "end":
			if len(bs) > 0 {
				bs[len(bs)-1].end = n
			}
		}
	}
	return bs
}

// waitStarts waits until the writer has started n bursts.
func (w *writerProc) waitStarts(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(w.bursts(t)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the writer did not start burst %d", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func sourceOn(t *testing.T, mnt string) (src, file string) {
	src = filepath.Join(mnt, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	return src, filepath.Join(src, "data.bin")
}

// Every WaitQuiet called during a burst returns inside the following gap:
// never while the writer is in the middle of a burst.
func testBurstsReturnInGaps(t *testing.T, opts InactivityOptions, want Method) {
	ci.NeedRoot(t)
	t.Parallel()
	src, file := sourceOn(t, loopfs.Ext4(t, 16))
	w := startWriter(t, "bursts", file)
	var returns []time.Time
	var results []InactivityResult
	for i := 0; i < 5; i++ {
		w.waitStarts(t, i+2) // a fresh burst is in flight
		called := time.Now()
		res, err := WaitQuiet(context.Background(), []string{src}, testQuiet, 10*time.Second, opts)
		// when WaitQuiet decided, by its own clock: on a loaded machine this
		// goroutine may run again only once the next burst has begun
		returns = append(returns, called.Add(res.Waited))
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, res)
	}
	bs := w.bursts(t)
	for i, ret := range returns {
		res := results[i]
		t.Logf("return %d: %s", i, res.Message)
		if !res.Quiet || res.Method != want || res.Writes == 0 {
			t.Errorf("return %d: %+v", i, res)
		}
		if want == MethodFanotify && (res.LastWriter == nil || res.LastWriter.Pid != w.cmd.Process.Pid || res.LastWriter.Path != file) {
			t.Errorf("return %d: last writer %v, want pid %d writing %s", i, res.LastWriter, w.cmd.Process.Pid, file)
		}
		r := ret.UnixNano()
		prevEnd := int64(0)
		for _, b := range bs {
			if b.start <= r && r <= b.end {
				t.Errorf("return %d at %d is inside the burst %d..%d", i, r, b.start, b.end)
			}
			if b.end < r {
				prevEnd = b.end
			}
		}
		if gap := time.Duration(r - prevEnd); gap < testQuiet-20*time.Millisecond {
			t.Errorf("return %d came %s after the last burst ended, before the quiet period of %s", i, gap, testQuiet)
		}
	}
}

func TestWaitQuietFanotifyBursts(t *testing.T) {
	testBurstsReturnInGaps(t, InactivityOptions{}, MethodFanotify)
}

func TestWaitQuietPollingBursts(t *testing.T) {
	testBurstsReturnInGaps(t, InactivityOptions{ForcePoll: true}, MethodPoll)
}

// A writer that never pauses: max-wait is honoured on each filesystem.
func TestWaitQuietMaxWait(t *testing.T) {
	ci.NeedRoot(t)
	t.Parallel()
	for name, mk := range map[string]func(testing.TB, int) string{"ext4": loopfs.Ext4, "btrfs": loopfs.Btrfs, "xfs": loopfs.XFS} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			src, file := sourceOn(t, mk(t, 0))
			w := startWriter(t, "constant", file)
			t0 := time.Now()
			res, err := WaitQuiet(context.Background(), []string{src}, testQuiet, time.Second, InactivityOptions{})
			took := time.Since(t0)
			if err != nil {
				t.Fatal(err)
			}
			if res.Quiet || res.Method != MethodFanotify || took < time.Second || took > 2500*time.Millisecond {
				t.Fatalf("after %s: %+v", took, res)
			}
			if !strings.Contains(res.Message, "no quiet period of 300ms within 1s") || !strings.Contains(res.Message, "crash-consistent") {
				t.Errorf("message %q", res.Message)
			}
			if res.LastWriter == nil || res.LastWriter.Pid != w.cmd.Process.Pid || res.LastWriter.Comm == "" {
				t.Errorf("last writer %v, want pid %d", res.LastWriter, w.cmd.Process.Pid)
			}
		})
	}
}

// Writes by stillpoint itself, and writes elsewhere on the same filesystem,
// do not delay the snapshot.
func TestWaitQuietIgnoresOwnAndUnrelatedWrites(t *testing.T) {
	ci.NeedRoot(t)
	t.Parallel()
	mnt := loopfs.Ext4(t, 16)
	src, _ := sourceOn(t, mnt)
	other := filepath.Join(mnt, "other")
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}
	startWriter(t, "constant", filepath.Join(other, "busy.log"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // our own writes, inside the source
		for ctx.Err() == nil {
			os.WriteFile(filepath.Join(src, "own"), []byte(time.Now().String()), 0o644)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	t0 := time.Now()
	res, err := WaitQuiet(ctx, []string{src}, 200*time.Millisecond, 3*time.Second, InactivityOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Quiet || res.Writes != 0 || res.Method != MethodFanotify || time.Since(t0) > time.Second {
		t.Fatalf("after %s: %+v", time.Since(t0), res)
	}
}

// A write that lands while the snapshot is made (after the quiet period
// ended) spoils that snapshot: it is released and the wait goes on, and
// the next snapshot, made in quiet, is kept. Writes made between the
// start of Snap and ready count, unless ready forgives them (writers
// freezing their applications). Past max-wait the spoilt snapshot is kept
// and said not quiet.
func TestWaitQuietSnapshotSpoiltByALateWrite(t *testing.T) {
	ci.NeedRoot(t)
	for _, poll := range []bool{false, true} {
		t.Run(fmt.Sprintf("poll=%v", poll), func(t *testing.T) {
			src, file := sourceOn(t, loopfs.Ext4(t, 16))
			write := func() {
				if out, err := exec.Command("sh", "-c", `echo late >> "$0"`, file).CombinedOutput(); err != nil {
					t.Fatalf("%v %s", err, out)
				}
			}
			var snaps, released int
			opts := InactivityOptions{ForcePoll: poll, PollInterval: 20 * time.Millisecond}
			// spoiltOnce runs a wait whose first snapshot does what first
			// does, before a snapshot made in quiet: the first must be
			// released and the second kept
			spoiltOnce := func(what string, first func(ready func(bool))) {
				t.Helper()
				snaps, released = 0, 0
				opts.Snap = func(_ context.Context, ready func(bool)) (func(), error) {
					snaps++
					if snaps == 1 {
						first(ready)
					} else {
						write() // a writer's freeze: forgiven
						ready(true)
					}
					time.Sleep(30 * time.Millisecond)
					return func() { released++ }, nil
				}
				res, err := WaitQuiet(context.Background(), []string{src}, 100*time.Millisecond, 5*time.Second, opts)
				if err != nil {
					t.Fatal(err)
				}
				if !res.Quiet || snaps != 2 || released != 1 || res.Resnapped != 1 {
					t.Fatalf("%s: snaps %d, released %d: %+v", what, snaps, released, res)
				}
			}
			spoiltOnce("a write while the snapshot is made", func(ready func(bool)) {
				write() // a writer's freeze: before ready, does not count
				ready(true)
				write() // lands while the first snapshot is made
			})
			// without writers to forgive, a write while Snap prepares (before
			// ready) spoils the snapshot too
			spoiltOnce("a write before ready, not forgiven", func(ready func(bool)) {
				write()
				ready(false)
			})
			// looked at twice: an application's write before the writers
			// freeze counts, the writers' own while they freeze does not
			spoiltOnce("a write before the freeze, one in it", func(ready func(bool)) {
				write()
				ready(false)
				write()
				ready(true)
			})

			// a write during every snapshot, and too little time for another
			snaps, released = 0, 0
			always := func(_ context.Context, ready func(bool)) (func(), error) {
				snaps++
				ready(false)
				write()
				time.Sleep(30 * time.Millisecond)
				return func() { released++ }, nil
			}
			opts.Snap = always
			res, err := WaitQuiet(context.Background(), []string{src}, 100*time.Millisecond, 400*time.Millisecond, opts)
			if err != nil {
				t.Fatal(err)
			}
			if res.Quiet || snaps < 1 || released != snaps-1 || !strings.Contains(res.Message, "crash-consistent") {
				t.Fatalf("snaps %d, released %d: %+v", snaps, released, res)
			}
		})
	}
}
