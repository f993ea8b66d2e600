//go:build linux

package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Files in a writer's aux directory (outside the backed-up sources, so that
// they never count as writes to the data).
const (
	pidFile   = "writer.pid"
	stateFile = "writer.state" // "running" or "paused"
)

// appControl is what every writer application shares: SIGTERM or SIGINT
// ask it to stop at the next safe point (between two operations), SIGUSR1
// pauses it there and SIGUSR2 resumes it (this is the pause API that
// `torture ctl`, and through it stillpoint's command writer, uses). The
// time spent paused is logged as one op, so it shows as a stall.
type appControl struct {
	aux   string
	lat   *latencyLog
	stop  atomic.Bool
	pause atomic.Bool
	wake  chan struct{}
}

func newAppControl(aux string, lat *latencyLog) (*appControl, error) {
	c := &appControl{aux: aux, lat: lat, wake: make(chan struct{}, 1)}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1, syscall.SIGUSR2)
	go func() {
		for s := range sigs {
			switch s {
			case syscall.SIGUSR1:
				c.pause.Store(true)
			case syscall.SIGUSR2:
				c.pause.Store(false)
			default:
				c.stop.Store(true)
			}
			select {
			case c.wake <- struct{}{}:
			default:
			}
		}
	}()
	if err := c.setState("running"); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(aux, pidFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *appControl) setState(s string) error {
	p := filepath.Join(c.aux, stateFile)
	if err := os.WriteFile(p+".tmp", []byte(s), 0o644); err != nil {
		return err
	}
	return os.Rename(p+".tmp", p)
}

// safePoint is called between operations. It holds the application while a
// pause is asked for and reports whether it should go on.
func (c *appControl) safePoint() bool {
	if c.stop.Load() {
		return false
	}
	if !c.pause.Load() {
		return true
	}
	start := time.Now()
	c.setState("paused")
	for c.pause.Load() && !c.stop.Load() {
		select {
		case <-c.wake:
		case <-time.After(100 * time.Millisecond):
		}
	}
	c.setState("running")
	c.lat.add(start, time.Since(start))
	return !c.stop.Load()
}

// idle sleeps for d at a safe point: a pause or stop is answered at once.
func (c *appControl) idle(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if !c.safePoint() {
			return false
		}
		left := time.Until(deadline)
		if left <= 0 {
			return true
		}
		t := time.NewTimer(left)
		select {
		case <-t.C:
		case <-c.wake:
		}
		t.Stop()
	}
}

func (c *appControl) close() {
	os.Remove(filepath.Join(c.aux, pidFile))
	os.Remove(filepath.Join(c.aux, stateFile))
}

// runCtl is `torture ctl pause|resume -dir AUX`: the freeze and thaw
// commands of the command writer. pause returns once the writer is held at
// a safe point; both succeed when no writer runs (thaw must always be safe).
func runCtl(args []string) error {
	if len(args) < 1 || (args[0] != "pause" && args[0] != "resume") {
		return errors.New("usage: torture ctl pause|resume -dir AUX [-timeout D]")
	}
	fs := flag.NewFlagSet("ctl", flag.ContinueOnError)
	dir := fs.String("dir", "", "the writer's aux directory")
	timeout := fs.Duration("timeout", 20*time.Second, "how long to wait for the writer")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("ctl: -dir is required")
	}
	b, err := os.ReadFile(filepath.Join(*dir, pidFile))
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintln(os.Stderr, "ctl: no writer running")
		return nil
	}
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("ctl: bad pid file: %v", err)
	}
	sig, want := syscall.SIGUSR1, "paused"
	if args[0] == "resume" {
		sig, want = syscall.SIGUSR2, "running"
	}
	if err := syscall.Kill(pid, sig); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			fmt.Fprintln(os.Stderr, "ctl: the writer has exited")
			return nil
		}
		return err
	}
	deadline := time.Now().Add(*timeout)
	for time.Now().Before(deadline) {
		s, err := os.ReadFile(filepath.Join(*dir, stateFile))
		if err == nil && string(s) == want {
			return nil
		}
		if errors.Is(err, os.ErrNotExist) {
			return nil // the writer stopped
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("ctl: writer %d not %s after %s", pid, want, *timeout)
}
