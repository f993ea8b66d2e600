//go:build windows

package quiesce

import (
	"os/exec"
	"strconv"
	"time"
)

func shellArgv(line string) []string { return []string{"cmd", "/C", line} }

func setProcessGroup(cmd *exec.Cmd) {}

// killGroup kills the hook and its child processes with taskkill /T (a job
// object would be tighter; this is the simple first version), falling back
// to killing the hook alone.
func killGroup(cmd *exec.Cmd, done <-chan error, grace time.Duration) error {
	kill := exec.Command("taskkill", "/T", "/F", "/PID", strconv.Itoa(cmd.Process.Pid))
	if err := kill.Run(); err != nil {
		_ = cmd.Process.Kill()
	}
	return <-done
}
