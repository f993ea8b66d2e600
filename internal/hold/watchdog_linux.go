package hold

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// watchdogEnv selects the watchdog in a run of this program; its value is
// the hold's timeout in nanoseconds.
const watchdogEnv = "STILLPOINT_HOLD_WATCHDOG"

// The watchdog is this same program started again, so every binary that
// can hold (stillpoint, and the test binaries of packages that use this
// one) can also be its own watchdog: the check runs before main or
// TestMain.
func init() {
	if v := os.Getenv(watchdogEnv); v != "" {
		timeout, err := strconv.ParseInt(v, 10, 64)
		if err != nil || timeout <= 0 {
			fmt.Fprintf(os.Stderr, "stillpoint hold watchdog: bad %s=%q\n", watchdogEnv, v)
			os.Exit(2)
		}
		os.Exit(watchdogMain(os.Stdin, os.Stdout, time.Duration(timeout)))
	}
}

// watchdog is the parent's end of a watchdog process. The parent writes
// "hold PID START" before it stops a process and "done" once it resumed
// them all. When the pipe closes without "done" (the parent died, even by
// kill -9), or timeout after the first hold, the watchdog resumes every
// process it was told of.
type watchdog struct {
	cmd *exec.Cmd
	in  io.WriteCloser
}

func startWatchdog(timeout time.Duration) (*watchdog, error) {
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{"stillpoint-hold-watchdog"}
	cmd.Env = append(withoutEnv(os.Environ(), watchdogEnv), watchdogEnv+"="+strconv.FormatInt(int64(timeout), 10))
	// its own process group: a Ctrl-C to stillpoint's job does not reach it
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the hold watchdog: %w", err)
	}
	w := &watchdog{cmd: cmd, in: in}
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(out).ReadString('\n')
		if err == nil && line != "ready\n" {
			err = fmt.Errorf("said %q", line)
		}
		ready <- err
	}()
	select {
	case err = <-ready:
	case <-time.After(5 * time.Second):
		err = errors.New("not ready within 5 s")
	}
	if err != nil {
		w.close()
		return nil, fmt.Errorf("the hold watchdog did not start: %w", err)
	}
	return w, nil
}

func (w *watchdog) hold(p procStat) error {
	_, err := fmt.Fprintf(w.in, "hold %d %d\n", p.pid, p.start)
	return err
}

// done tells the watchdog that every process was resumed, and reaps it.
func (w *watchdog) done() {
	io.WriteString(w.in, "done\n")
	w.close()
}

func (w *watchdog) close() {
	w.in.Close()
	if w.cmd.Wait() != nil {
		w.cmd.Process.Kill()
	}
}

func withoutEnv(env []string, name string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// watchdogMain is the watchdog process.
func watchdogMain(in io.Reader, out io.Writer, timeout time.Duration) int {
	// the signals that end stillpoint must not end the one that undoes its hold
	signal.Ignore(unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGPIPE, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU)
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	if _, err := io.WriteString(out, "ready\n"); err != nil {
		return 1
	}
	var held []int // pidfds
	resume := func() {
		for _, fd := range held {
			unix.PidfdSendSignal(fd, unix.SIGCONT, nil, 0)
			unix.Close(fd)
		}
		held = nil
	}
	var deadline <-chan time.Time
	for {
		select {
		case <-deadline:
			resume()
			deadline = nil
		case line, ok := <-lines:
			switch {
			case !ok: // the parent is gone
				resume()
				return 0
			case line == "done":
				for _, fd := range held {
					unix.Close(fd)
				}
				return 0
			case strings.HasPrefix(line, "hold "):
				if fd, ok := openHeld(line); ok {
					held = append(held, fd)
				}
				if deadline == nil {
					deadline = time.After(timeout)
				}
			}
		}
	}
}

// openHeld opens a pidfd for the process of a "hold PID START" line, if it
// is still the process the parent meant (not a reused pid).
func openHeld(line string) (int, bool) {
	var pid int
	var start uint64
	if _, err := fmt.Sscanf(line, "hold %d %d", &pid, &start); err != nil {
		return -1, false
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return -1, false
	}
	if st, err := readStat("/proc/"+strconv.Itoa(pid)+"/stat", pid); err != nil || st.start != start {
		unix.Close(fd)
		return -1, false
	}
	return fd, true
}
