//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// startPressure starts the dirty-page pressure of a cell of wl, if wl runs
// under it (nil otherwise: its methods do nothing).
func (h *harness) startPressure(wl workload, e *wlEnv) (*pressure, error) {
	if !slices.Contains(h.cfg.pressure, wl.name()) {
		return nil, nil
	}
	dir := e.scratch
	if h.cfg.pressureOn == "workdir" {
		dir = filepath.Dir(e.aux)
	}
	return startPressure(filepath.Join(dir, "pressure.dat"), h.cfg.pressureMiB)
}

// stopPressure stops p and notes a dd that failed.
func (h *harness) stopPressure(wl workload, p *pressure) {
	if p == nil {
		return
	}
	rounds, err := p.stop()
	logf("%s: pressure: %d dd rounds of %d MiB in %s", wl.name(), rounds, h.cfg.pressureMiB, time.Since(p.started).Round(time.Second))
	if err != nil {
		h.notes = append(h.notes, fmt.Sprintf("%s: the pressure's dd failed: %v", wl.name(), err))
	}
}

// pressure keeps the kernel writing back dirty pages all the time, so that
// a snapshot meets pages under writeback: one core kept busy (`yes
// >/dev/null`) and a loop of `dd if=/dev/zero of=FILE bs=1M count=N
// conv=fsync`. Without it an idle machine has written a workload's pages
// back, or not yet started to, by the time a snapshot is taken.
//
// It is paused (SIGSTOP) while the harness restores and verifies: it is
// there for the backup, and would only slow the rest down.
type pressure struct {
	file    string
	started time.Time
	yes     *exec.Cmd
	done    chan struct{}
	mu      sync.Mutex
	stopped bool
	paused  bool
	dd      *exec.Cmd
	rounds  int
	err     error // the last dd that failed (not one stop killed)
	untrack func()
}

// startPressure starts the busy core and the dd loop writing mib MiB to
// file, again and again (stop removes the file).
func startPressure(file string, mib int) (*pressure, error) {
	p := &pressure{file: file, started: time.Now(), done: make(chan struct{})}
	p.yes = exec.Command("yes")
	p.yes.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.yes.Start(); err != nil { // stdout: /dev/null (nil)
		return nil, fmt.Errorf("pressure: yes: %v", err)
	}
	p.untrack = trackProcess(p.yes.Process)
	go p.ddLoop(mib)
	return p, nil
}

func (p *pressure) ddLoop(mib int) {
	defer close(p.done)
	for {
		cmd := exec.Command("dd", "if=/dev/zero", "of="+p.file, "bs=1M", "count="+strconv.Itoa(mib), "conv=fsync", "status=none")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		p.mu.Lock()
		for p.paused && !p.stopped {
			p.mu.Unlock()
			time.Sleep(10 * time.Millisecond)
			p.mu.Lock()
		}
		if p.stopped {
			p.mu.Unlock()
			return
		}
		err := cmd.Start()
		p.dd = cmd
		p.mu.Unlock()
		if err == nil {
			untrack := trackProcess(cmd.Process)
			err = cmd.Wait()
			untrack()
		}
		p.mu.Lock()
		p.dd = nil
		stopped := p.stopped
		if !stopped {
			p.rounds++
			if err != nil {
				p.err = fmt.Errorf("dd of=%s: %v", p.file, err)
			}
		}
		p.mu.Unlock()
		if err != nil && !stopped {
			time.Sleep(time.Second) // do not spin on a dd that cannot run
		}
	}
}

// pause stops the busy core and the dd in progress; resume goes on.
func (p *pressure) pause() { p.signal(true) }

func (p *pressure) resume() { p.signal(false) }

func (p *pressure) signal(pause bool) {
	if p == nil {
		return
	}
	sig := syscall.SIGCONT
	if pause {
		sig = syscall.SIGSTOP
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = pause
	p.yes.Process.Signal(sig)
	if p.dd != nil && p.dd.Process != nil {
		p.dd.Process.Signal(sig)
	}
}

// stop ends the busy core and the dd loop (a dd in progress is killed) and
// removes the file. It reports how many dd rounds completed, and the last
// dd error.
func (p *pressure) stop() (rounds int, err error) {
	p.mu.Lock()
	p.stopped = true
	if p.dd != nil && p.dd.Process != nil {
		p.dd.Process.Kill()
	}
	p.mu.Unlock()
	p.resume()
	<-p.done
	p.yes.Process.Kill()
	p.yes.Wait()
	p.untrack()
	os.Remove(p.file)
	return p.rounds, p.err
}
