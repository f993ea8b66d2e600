//go:build !unix && !windows

package quiesce

import (
	"os/exec"
	"time"
)

func shellArgv(line string) []string { return []string{"/bin/sh", "-c", line} }

func setProcessGroup(cmd *exec.Cmd) {}

// killGroup can only kill the hook itself on this platform.
func killGroup(cmd *exec.Cmd, done <-chan error, grace time.Duration) error {
	_ = cmd.Process.Kill()
	return <-done
}
