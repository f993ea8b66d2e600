//go:build unix

package drill

import (
	"context"
	"os/exec"
	"syscall"
	"time"
)

// inGroup makes cmd the leader of a process group of its own, and makes
// the end of its context kill that whole group: a verifier that hangs
// leaves no child behind.
func inGroup(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.Cancel = func() error { return killGroup(cmd) }
	cmd.WaitDelay = 5 * time.Second
}

// killGroup kills cmd's process group (cmd must have been started inGroup).
func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

// shellCommand runs a command line the way hooks do: sh -c.
func shellCommand(ctx context.Context, line string) *exec.Cmd {
	return exec.CommandContext(ctx, "/bin/sh", "-c", line)
}
