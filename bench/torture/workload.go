//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// A workload is an application that writes while backups run, with a
// verifier that judges restored copies of its data.
type workload interface {
	name() string
	// template makes what every mode starts from (once per run), in dir.
	template(ctx context.Context, cfg *config, dir string) error
	// setup puts the initial data into e.src and starts any service the
	// application needs for this mode.
	setup(ctx context.Context, e *wlEnv) error
	// start starts the application for one backup window and returns once
	// it is writing.
	start(ctx context.Context, e *wlEnv, window int) (running, error)
	// writerEntry is the `writers:` entry of the job file of the writer mode.
	writerEntry(e *wlEnv) string
	// verify judges a restored copy of e.src.
	verify(ctx context.Context, e *wlEnv, restored string) verdict
	// teardown stops what setup started.
	teardown(e *wlEnv)
}

// wlEnv is where one workload runs in one mode.
type wlEnv struct {
	cfg      *config
	self     string // this program, for `torture work` and `torture ctl`
	src      string // the source directory: the application's data, backed up
	aux      string // the application's logs and control files, outside src
	scratch  string // a directory on src's filesystem, outside src
	template string // what template() made
	pg       *pgServer
}

// A running application, for one backup window.
type running interface {
	// stop asks it to stop at a safe point and waits for it.
	stop() error
	// ops returns what it timed (after stop).
	ops() ([]op, error)
}

// A verdict is what a verifier says about a restored copy.
type verdict struct {
	// torn: the restored data is not a state the application accepts as
	// consistent (the workload's invariant fails, or the data is damaged).
	torn   bool
	reason string
	// fileTorn lists files (relative to the source) that are not a state
	// that file itself ever had (a torn block, a record that never was).
	// Only workloads whose writer logs every write can tell.
	fileTorn []string
	// notOneMoment: the files together are not the state of one moment (as
	// a crash would have left them). For crash-safe applications (SQLite,
	// PostgreSQL) a one-moment state always recovers, so it is torn.
	notOneMoment bool
	// damaged: some file holds a block or record that no write ever left
	// whole there (a torn block, a write the writer never made to it). Not
	// even a crash leaves that, so a snapshot recorded as only
	// crash-consistent does not explain it.
	damaged bool
}

func tornf(format string, args ...any) verdict {
	return verdict{torn: true, notOneMoment: true, reason: fmt.Sprintf(format, args...)}
}

// procWriter is an application run as `torture work ...`, a separate
// process, so that stillpoint sees it as any other program.
type procWriter struct {
	cmd     *exec.Cmd
	done    chan error
	latPath string
}

// startWork starts `torture work args...` with its latency log at latPath
// and waits for its "ready" line.
func startWork(ctx context.Context, e *wlEnv, latPath string, args ...string) (*procWriter, error) {
	return startWorkIn(ctx, e, "", latPath, args...)
}

// startWorkIn is startWork with the writer's working directory in dir
// ("": the harness's).
func startWorkIn(ctx context.Context, e *wlEnv, dir, latPath string, args ...string) (*procWriter, error) {
	args = append([]string{"work"}, append(args, "-aux", e.aux, "-lat", latPath)...)
	cmd := exec.Command(e.self, args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Ctrl-C goes to the harness, which stops it
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	w := &procWriter{cmd: cmd, done: make(chan error, 1), latPath: latPath}
	untrack := trackProcess(cmd.Process)
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(out).ReadString('\n')
		if err == nil && strings.TrimSpace(line) != "ready" {
			err = fmt.Errorf("unexpected output %q", line)
		}
		ready <- err
	}()
	go func() { w.done <- cmd.Wait(); untrack() }()
	select {
	case err := <-ready:
		if err != nil {
			w.kill()
			return nil, fmt.Errorf("writer %s: %v", strings.Join(args, " "), err)
		}
	case <-time.After(60 * time.Second):
		w.kill()
		return nil, fmt.Errorf("writer %s: not ready after 60s", strings.Join(args, " "))
	case <-ctx.Done():
		w.kill()
		return nil, ctx.Err()
	}
	return w, nil
}

func (w *procWriter) kill() {
	w.cmd.Process.Kill()
	<-w.done
}

func (w *procWriter) stop() error {
	w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-w.done:
		if err != nil {
			return fmt.Errorf("writer: %v", err)
		}
		return nil
	case <-time.After(60 * time.Second):
		w.kill()
		return errors.New("writer did not stop within 60s; killed")
	}
}

func (w *procWriter) ops() ([]op, error) { return readLatencyLog(w.latPath) }

// latPath names the latency log of a window.
func latPath(e *wlEnv, window int) string {
	return filepath.Join(e.aux, fmt.Sprintf("latency-%03d.bin", window))
}

// runWork is `torture work WORKLOAD ...`.
func runWork(args []string) error {
	if len(args) < 1 {
		return errors.New("usage: torture work WORKLOAD [flags]")
	}
	switch args[0] {
	case "bank-sqlite":
		return workBankSQLite(args[1:])
	case "bank-files":
		return workBankFiles(args[1:])
	case "big-file":
		return workBigFile(args[1:])
	case "seq-rewrite":
		return workSeqRewrite(args[1:])
	case "git-churn":
		return workGitChurn(args[1:])
	}
	return fmt.Errorf("work: unknown workload %q", args[0])
}

// ready tells the harness the writer is writing.
func ready() { os.Stdout.WriteString("ready\n") }
