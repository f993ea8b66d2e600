//go:build unix

package quiesce

import (
	"errors"
	"os/exec"
	"syscall"
	"time"
)

func shellArgv(line string) []string { return []string{"/bin/sh", "-c", line} }

// setProcessGroup puts the hook in a process group of its own, so that a
// timeout can kill everything it started, not just the shell.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// killGroup sends SIGTERM to the hook's process group, gives it grace to
// exit, then sends SIGKILL to whatever is left of the group, and returns
// the result of Wait.
func killGroup(cmd *exec.Cmd, done <-chan error, grace time.Duration) error {
	pgid := cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		// Signal 0 probes the group: ESRCH once no member is left.
		if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	return <-done
}
