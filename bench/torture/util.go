//go:build linux

package main

import (
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// syncFS writes the dirty data of the filesystem that holds dir to disk.
func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}

// yamlQuote makes s a double-quoted YAML scalar.
func yamlQuote(s string) string { return strconv.Quote(s) }

// shellQuote makes s one word for /bin/sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// The processes this program started and has not seen exit: on an
// interrupt they are killed before the filesystems they use are unmounted.
var (
	procMu sync.Mutex
	procs  = map[int]*os.Process{}
)

func trackProcess(p *os.Process) (untrack func()) {
	procMu.Lock()
	procs[p.Pid] = p
	procMu.Unlock()
	return func() {
		procMu.Lock()
		delete(procs, p.Pid)
		procMu.Unlock()
	}
}

// killTracked ends every tracked process (and its process group, which it
// leads: each was started with Setpgid).
func killTracked() {
	procMu.Lock()
	defer procMu.Unlock()
	for pid, p := range procs {
		syscall.Kill(-pid, syscall.SIGKILL)
		p.Kill()
	}
}
