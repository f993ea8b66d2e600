package hold

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// pfKthread is PF_KTHREAD in the flags field of /proc/PID/stat.
const pfKthread = 0x00200000

// procStat is what the hold needs from /proc/PID/stat.
type procStat struct {
	pid   int
	comm  string
	state byte
	ppid  int
	pgrp  int
	tty   int // tty_nr: 0 when the process has no controlling terminal
	tpgid int // foreground process group of that terminal
	flags uint64
	start uint64 // start time in clock ticks since boot: with pid, a process's identity
}

func (p procStat) kernelThread() bool { return p.flags&pfKthread != 0 }

// foregroundOfTerminal: the process is in the foreground job of a
// terminal. A job-control shell waits for that job with WUNTRACED, so a
// SIGSTOP would make the shell take the terminal back.
func (p procStat) foregroundOfTerminal() bool { return p.tty != 0 && p.pgrp == p.tpgid }

func (p procStat) String() string { return fmt.Sprintf("%s[%d]", p.comm, p.pid) }

// readStat parses /proc/<pid>/stat, or /proc/<pid>/task/<tid>/stat when
// path says so.
func readStat(path string, pid int) (procStat, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return procStat{}, err
	}
	return parseStat(b, pid)
}

func parseStat(b []byte, pid int) (procStat, error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')') // comm may hold spaces and parentheses
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[end+1:]))
	// after the name: state ppid pgrp session tty_nr tpgid flags … starttime (field 22)
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields after the command name", pid, len(f))
	}
	p := procStat{pid: pid, comm: string(b[open+1 : end]), state: f[0][0]}
	p.ppid, _ = strconv.Atoi(f[1])
	p.pgrp, _ = strconv.Atoi(f[2])
	p.tty, _ = strconv.Atoi(f[4])
	p.tpgid, _ = strconv.Atoi(f[5])
	p.flags, _ = strconv.ParseUint(f[6], 10, 64)
	p.start, _ = strconv.ParseUint(f[19], 10, 64)
	return p, nil
}

// listProcesses reads the stat of every process; those that exit meanwhile
// are left out.
func listProcesses() (map[int]procStat, error) {
	d, err := os.Open("/proc")
	if err != nil {
		return nil, err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, fmt.Errorf("listing /proc: %w", err)
	}
	out := make(map[int]procStat, len(names))
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		if st, err := readStat("/proc/"+n+"/stat", pid); err == nil {
			out[pid] = st
		}
	}
	return out, nil
}

// allThreadsStopped tells whether every thread of pid is in the stopped
// state: only then has each finished the system call it was in. A process
// that is gone counts as stopped (it writes no more).
func allThreadsStopped(pid int) bool {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	d, err := os.Open(dir)
	if err != nil {
		return true
	}
	tids, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return false
	}
	for _, t := range tids {
		tid, _ := strconv.Atoi(t)
		st, err := readStat(dir+"/"+t+"/stat", tid)
		if err != nil {
			continue // the thread exited
		}
		switch st.state {
		case 'T', 't', 'Z', 'X':
		default:
			return false
		}
	}
	return true
}

// exePath is the executable of pid, or "" when it cannot be read.
func exePath(pid int) string {
	p, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(p, " (deleted)")
}
