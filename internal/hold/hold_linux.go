package hold

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// testSleepEnv makes a hold sleep once every writer is stopped, so a test
// can kill stillpoint in the middle of a hold.
const testSleepEnv = "STILLPOINT_TEST_HOLD_SLEEP"

// maxRounds bounds the scans for writers that started after the one
// before: each round stops what the one before found.
const maxRounds = 4

// Hold is the writers of some filesystems, stopped. Release resumes them.
type Hold struct {
	opts    Options
	t       *target
	wd      *watchdog
	start   time.Time
	report  Report
	held    []heldProcess
	heldPid map[int]bool
	// known: the processes (pid → start time) the last full scan looked
	// at; the scans inside the hold look only at the others
	known map[int]uint64
	// unheld writers make the snapshot crash-consistent
	unheld      []string
	watch       *writeWatch
	wroteDuring bool
	failed      bool

	mu       sync.Mutex
	released bool
}

type heldProcess struct {
	procStat
	pidfd int
}

// Start prepares a hold and stops the writers at once (Prepare, then Stop).
func Start(ctx context.Context, mountpoints []string, opts Options) *Hold {
	h := Prepare(mountpoints, opts)
	h.Stop(ctx)
	return h
}

// Prepare starts the watchdog and the watch for writes, so that Stop has
// little left to do while the writers wait: a caller flushes the
// filesystems between the two. Stop holds the processes that write to the
// filesystems mounted at mountpoints (open for writing, mapped writable,
// or working in them). Never
// held: stillpoint, its ancestors and the processes it started, PID 1,
// kernel threads and what opts.Exclude names. A hold never fails the
// backup: what keeps it from holding goes into the report, and the
// snapshot is then crash-consistent. A nil Hold holds nothing.
func Prepare(mountpoints []string, opts Options) *Hold {
	if !opts.Enabled || len(mountpoints) == 0 {
		return nil
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	h := &Hold{opts: opts, heldPid: map[int]bool{}}
	var err error
	if h.t, err = newTarget(mountpoints); err != nil {
		h.report.Message = "no hold: " + err.Error()
		return h
	}
	if h.watch, err = watchWrites(mountpoints, opts.Within); err != nil {
		h.report.Message = "no hold: cannot watch for writes it would miss: " + err.Error()
		return h
	}
	if h.wd, err = startWatchdog(opts.Timeout); err != nil {
		h.watch.close()
		h.report.Message = "no hold: " + err.Error()
		return h
	}
	return h
}

// Stop finds the writers and stops them, then looks again for writers that
// started since, until it finds none. It returns once each held
// process has finished the system call it was in, or, past the timeout,
// with every process resumed and the reason in the report.
func (h *Hold) Stop(ctx context.Context) {
	if h == nil || h.wd == nil || h.released {
		return
	}
	// A last full look while the writers still run: what opened a file
	// for writing during the flush is held too. Inside the hold only
	// processes this scan did not see are looked at, so the writers do
	// not wait for a walk over every process's files; one that was seen
	// idle and writes during the hold anyway is caught by the watch.
	found, err := h.scan(true)
	if err != nil {
		h.fail("scanning processes: " + err.Error())
		return
	}
	h.start = time.Now()
	deadline := h.start.Add(h.opts.Timeout)
	for round := 0; round < maxRounds && len(found) > 0; round++ {
		for _, p := range found {
			if err := h.stop(p); err != nil {
				h.fail(err.Error())
				return
			}
		}
		if !h.waitStopped(ctx, deadline) {
			return
		}
		// the rescan is inside the hold: it passes over mappings (see useOf)
		if found, err = h.scanNew(); err != nil {
			h.fail("scanning processes: " + err.Error())
			return
		}
	}
	// writes queued so far were made before the writers stopped; from
	// now on any write is one the hold did not keep out
	if _, err := h.watch.drain(); err != nil {
		h.fail(err.Error())
		return
	}
	if d, err := time.ParseDuration(os.Getenv(testSleepEnv)); err == nil {
		time.Sleep(d)
	}
}

// scan lists the processes that use the target and are not held yet, and
// records the ones it must pass over.
func (h *Hold) scan(mappings bool) ([]procStat, error) { return h.scanProcs(mappings, false) }

// scanNew is scan over the processes the last full scan did not see
// (started since, or a reused pid), without mappings.
func (h *Hold) scanNew() ([]procStat, error) { return h.scanProcs(false, true) }

func (h *Hold) scanProcs(mappings, onlyNew bool) ([]procStat, error) {
	procs, err := listProcesses()
	if err != nil {
		return nil, err
	}
	ours := ownFamily(procs)
	known := h.known
	h.known = make(map[int]uint64, len(procs))
	for pid, p := range procs {
		h.known[pid] = p.start
	}
	var found []procStat
	for pid, p := range procs {
		if h.heldPid[pid] || pid == os.Getpid() || p.kernelThread() || p.state == 'Z' || p.state == 'X' {
			continue
		}
		if start, ok := known[pid]; onlyNew && ok && start == p.start {
			continue
		}
		u, where := h.t.useOf(pid, mappings)
		if u == noUse {
			continue
		}
		reason, downgrade := h.passOver(p, ours)
		if reason == "" {
			found = append(found, p)
			continue
		}
		if !h.skipped(pid) {
			h.report.Skipped = append(h.report.Skipped, Process{Pid: pid, Command: p.comm, Reason: reason + " (" + where + ")"})
			if downgrade && u == writes {
				h.unheld = append(h.unheld, p.String())
			}
		}
	}
	slices.SortFunc(found, func(a, b procStat) int { return a.pid - b.pid })
	return found, nil
}

func (h *Hold) skipped(pid int) bool {
	return slices.ContainsFunc(h.report.Skipped, func(p Process) bool { return p.Pid == pid })
}

// passOver says why p is not held ("" to hold it), and whether its writes
// then make the snapshot crash-consistent.
func (h *Hold) passOver(p procStat, ours map[int]string) (reason string, downgrade bool) {
	switch {
	case p.pid == 1:
		return "PID 1 is never held", true
	case ours[p.pid] != "":
		return ours[p.pid], false
	case h.excluded(p):
		return "hold-exclude", false
	case p.state == 'T':
		return "already stopped", false
	case p.state == 't':
		return "traced by a debugger", true
	case p.foregroundOfTerminal():
		return "foreground job of a terminal (its shell would take the terminal back)", true
	}
	return "", false
}

func (h *Hold) excluded(p procStat) bool {
	if len(h.opts.Exclude) == 0 {
		return false
	}
	exe := exePath(p.pid)
	for _, x := range h.opts.Exclude {
		if x == p.comm || (exe != "" && (x == exe || x == filepath.Base(exe))) {
			return true
		}
	}
	return false
}

// ownFamily names stillpoint's ancestors (they wait for it) and the
// processes it started (hooks, writer commands, the watchdog): holding
// them could only stall the run.
func ownFamily(procs map[int]procStat) map[int]string {
	out := map[int]string{}
	self := os.Getpid()
	for pid := procs[self].ppid; pid > 1; pid = procs[pid].ppid {
		if _, ok := procs[pid]; !ok || out[pid] != "" {
			break
		}
		out[pid] = "runs stillpoint"
	}
	children := map[int][]int{}
	for pid, p := range procs {
		children[p.ppid] = append(children[p.ppid], pid)
	}
	queue := slices.Clone(children[self])
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if out[pid] == "" {
			out[pid] = "started by stillpoint"
			queue = append(queue, children[pid]...)
		}
	}
	return out
}

// stop tells the watchdog, then stops p through a pidfd, so a pid reused
// since the scan is never signalled.
func (h *Hold) stop(p procStat) error {
	fd, err := unix.PidfdOpen(p.pid, 0)
	if err != nil {
		return nil // exited since the scan
	}
	if st, err := readStat("/proc/"+strconv.Itoa(p.pid)+"/stat", p.pid); err != nil || st.start != p.start {
		unix.Close(fd)
		return nil
	}
	if err := h.wd.hold(p); err != nil {
		unix.Close(fd)
		return fmt.Errorf("the hold watchdog is gone: %w", err)
	}
	if err := unix.PidfdSendSignal(fd, unix.SIGSTOP, nil, 0); err != nil {
		unix.Close(fd)
		if err == unix.ESRCH {
			return nil
		}
		return fmt.Errorf("stopping %s: %w", p, err)
	}
	h.held = append(h.held, heldProcess{p, fd})
	h.heldPid[p.pid] = true
	h.report.Held = append(h.report.Held, Process{Pid: p.pid, Command: p.comm})
	return nil
}

// waitStopped waits until every held process has stopped. Past the
// deadline (or on cancellation) it resumes them and says so.
func (h *Hold) waitStopped(ctx context.Context, deadline time.Time) bool {
	for pause := 50 * time.Microsecond; ; pause = min(2*pause, time.Millisecond) {
		var running []string
		for _, p := range h.held {
			if !allThreadsStopped(p.pid) {
				running = append(running, p.String())
			}
		}
		if len(running) == 0 {
			return true
		}
		if ctx.Err() != nil {
			h.fail("cancelled")
			return false
		}
		if time.Now().After(deadline) {
			h.report.TimedOut = true
			h.fail(fmt.Sprintf("%s did not stop within the hold timeout of %s (a system call that does not return, e.g. I/O on a hung device)",
				strings.Join(running, ", "), h.opts.Timeout))
			return false
		}
		time.Sleep(pause)
	}
}

// fail resumes everything now; the snapshot will be crash-consistent.
func (h *Hold) fail(why string) {
	h.failed = true
	h.report.Message = joinWhy(h.report.Message, why)
	h.resume()
}

func joinWhy(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// resume continues every held process, last stopped first, and ends the
// watchdog. It is idempotent.
func (h *Hold) resume() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.released {
		return
	}
	h.released = true
	if h.watch != nil {
		// before anyone is resumed: a write seen now was made during the hold
		who, err := h.watch.drain()
		if err != nil {
			h.report.Message = joinWhy(h.report.Message, err.Error())
		} else if len(who) > 0 && !h.failed {
			h.unheld = append(h.unheld, who...)
			h.wroteDuring = true
		}
		h.watch.close()
	}
	for i := len(h.held) - 1; i >= 0; i-- {
		unix.PidfdSendSignal(h.held[i].pidfd, unix.SIGCONT, nil, 0)
		unix.Close(h.held[i].pidfd)
	}
	if !h.start.IsZero() {
		h.report.HeldMs = float64(time.Since(h.start).Microseconds()) / 1000
	}
	if h.wd != nil {
		h.wd.done()
	}
}

// Release resumes every held process and reports the hold. It is
// idempotent, and safe to defer. A hold that ran past its timeout (the
// watchdog may have resumed the processes before the snapshot was made)
// is reported timed out.
func (h *Hold) Release() *Report {
	if h == nil {
		return nil
	}
	h.resume()
	if !h.start.IsZero() && h.report.HeldMs > float64(h.opts.Timeout.Microseconds())/1000 && !h.report.TimedOut {
		h.report.TimedOut = true
		h.report.Message = joinWhy(h.report.Message, fmt.Sprintf("the hold lasted %.0f ms, past its timeout of %s: the watchdog may have resumed the writers before the snapshot",
			h.report.HeldMs, h.opts.Timeout))
	}
	if len(h.unheld) > 0 && h.report.Message == "" {
		what := "writers not held: "
		if h.wroteDuring {
			what = "processes not held wrote during the hold: "
		}
		h.report.Message = what + strings.Join(h.unheld, ", ")
	}
	r := h.report
	return &r
}
