//go:build unix

// Package detached starts test processes the way an application runs: not
// as a descendant of the test (whose own children a hold never stops).
package detached

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Start runs name with args and env added to the test's environment,
// through a shell that exits at once, so the process is reparented away
// from the test. It returns the pid; the process is killed when the test
// ends (resumed first, in case it was left stopped).
func Start(t testing.TB, env []string, name string, args ...string) int {
	t.Helper()
	cmd := exec.Command("sh", append([]string{"-c", `"$@" >/dev/null 2>&1 </dev/null & echo $!`, "sh", name}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("detached process pid %q", out)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT); syscall.Kill(pid, syscall.SIGKILL) })
	return pid
}
