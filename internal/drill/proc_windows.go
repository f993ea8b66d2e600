package drill

import (
	"context"
	"os/exec"
	"time"
)

// inGroup makes the end of cmd's context kill it. Windows has no process
// groups to kill with one call; a job object would be needed for the
// children.
func inGroup(cmd *exec.Cmd) {
	cmd.Cancel = func() error { return cmd.Process.Kill() }
	cmd.WaitDelay = 5 * time.Second
}

// shellCommand runs a command line with cmd /C.
func shellCommand(ctx context.Context, line string) *exec.Cmd {
	return exec.CommandContext(ctx, "cmd", "/C", line)
}
