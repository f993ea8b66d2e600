//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/snapshot"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/ci"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/detached"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/loopfs"
)

// procState is the state letter of /proc/PID/stat ('T' when stopped).
func procState(pid int) byte {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || len(s) < i+3 {
		return 0
	}
	return s[i+2]
}

// startShellWriter starts, detached from the test as an application is, a
// shell that appends to dir/log without pause.
func startShellWriter(t *testing.T, dir string) int {
	t.Helper()
	loop := `cd "$1" && exec 3>>log && i=0 && while :; do i=$((i+1)); echo $i >&3; done`
	return detached.Start(t, nil, "sh", "-c", loop, "sh", dir)
}

// kill -9 of stillpoint while it holds a writer: the watchdog has the
// writer running again within a second, and the next run finds nothing
// left behind and holds it again.
func TestKill9DuringHoldLeavesNoProcessStopped(t *testing.T) {
	ci.NeedRoot(t)
	mnt := loopfs.Btrfs(t, 256)
	src := filepath.Join(mnt, "data")
	os.MkdirAll(src, 0o755)
	writer := startShellWriter(t, src)
	e := newEnv(t)
	e.must(t, 0, "init")

	cmd := e.command(context.Background(), "backup", "--quiet", "--snapshot", "required", src)
	cmd.Env = append(cmd.Env, "STILLPOINT_TEST_HOLD_SLEEP=1h")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for procState(writer) != 'T' {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("the backup never held the writer")
		}
		time.Sleep(time.Millisecond)
	}
	killed := time.Now()
	cmd.Process.Kill()
	cmd.Wait()
	for procState(writer) == 'T' {
		if time.Since(killed) > time.Second {
			t.Fatal("the writer is still stopped a second after stillpoint was killed")
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("the writer ran again %v after kill -9", time.Since(killed))

	res := e.must(t, 0, "backup", "--json", "--snapshot", "required", src)
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	var sum struct {
		Consistency string `json:"consistency"`
		Quiesce     struct {
			Hold struct {
				Held []struct{ Pid int } `json:"held"`
			} `json:"hold"`
		} `json:"quiesce"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Fatalf("summary: %v\n%s", err, res)
	}
	if sum.Consistency != "volume" || len(sum.Quiesce.Hold.Held) != 1 || sum.Quiesce.Hold.Held[0].Pid != writer {
		t.Fatalf("the next run: consistency %s, held %+v (writer %d)", sum.Consistency, sum.Quiesce.Hold.Held, writer)
	}
	if procState(writer) == 'T' {
		t.Fatal("the writer is stopped after the next run")
	}
	if los, _ := snapshot.FindLeftovers([]string{mnt}); len(los) != 0 {
		t.Fatalf("leftovers after the next run: %+v", los)
	}
	// --hold off: crash-consistent, and nothing is held
	res = e.must(t, 0, "backup", "--json", "--snapshot", "required", "--hold", "off", src)
	lines = strings.Split(strings.TrimSpace(res.stdout), "\n")
	if !strings.Contains(lines[len(lines)-1], `"consistency":"crash"`) || strings.Contains(lines[len(lines)-1], `"hold"`) {
		t.Fatalf("--hold off summary: %s", lines[len(lines)-1])
	}
	e.must(t, 2, "backup", "--hold", "sometimes", src)
	e.must(t, 2, "backup", "--hold-timeout", "11s", src)
}
