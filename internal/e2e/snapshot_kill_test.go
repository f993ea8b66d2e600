//go:build linux

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/snapshot"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/ci"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/loopfs"
)

// kill -9 of a backup while its snapshot set exists leaves a labelled
// snapshot; the next backup removes it, and nothing is left behind.
func TestKillDuringSnapshotLeavesNothingAfterNextRun(t *testing.T) {
	ci.NeedRoot(t)
	mnt := loopfs.Btrfs(t, 768)
	src := filepath.Join(mnt, "data")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4<<20)
	for i := range 64 { // 256 MiB: the backup takes a while
		rand.Read(buf)
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("f%02d", i)), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e := newEnv(t)
	e.must(t, 0, "init")

	cmd := e.command(context.Background(), "backup", "--quiet", "--snapshot", "required", src)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	var los []snapshot.Leftover
	for time.Now().Before(deadline) {
		los, _ = snapshot.FindLeftovers([]string{mnt})
		if len(los) > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if len(los) == 0 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("the backup never had a snapshot set")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	los, err := snapshot.FindLeftovers([]string{mnt})
	if err != nil || len(los) == 0 {
		t.Fatalf("after kill -9 the set should still be there (to prove the cleanup): %v %v", los, err)
	}
	if los[0].InUse {
		t.Fatalf("leftover of a dead process marked in use: %+v", los[0])
	}

	res := e.must(t, 0, "backup", "--json", "--snapshot", "required", src)
	var sum struct {
		Sources []struct{ Provider, Consistency string } `json:"sources"`
	}
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil || len(sum.Sources) != 1 || sum.Sources[0].Provider != "btrfs" {
		t.Fatalf("summary sources: %v %+v\n%s", err, sum, res)
	}
	if los, _ := snapshot.FindLeftovers([]string{mnt}); len(los) != 0 {
		t.Fatalf("leftovers after the next run: %+v", los)
	}
	entries, _ := os.ReadDir(filepath.Join(mnt, ".stillpoint-snapshots"))
	if len(entries) != 0 {
		t.Fatalf("snapshot directory not empty: %v", entries)
	}
	e.must(t, 0, "check")
	// the doctor agrees
	doc := e.must(t, 0, "doctor", "--json", src)
	if !strings.Contains(doc.stdout, `"leftovers":[]`) {
		t.Fatalf("doctor still sees leftovers:\n%s", doc)
	}
}

// SIGTERM (and SIGINT) during a backup: the process releases its snapshot
// set before it exits, and reports that nothing was recorded.
func TestSigtermReleasesSnapshotSet(t *testing.T) {
	ci.NeedRoot(t)
	mnt := loopfs.Btrfs(t, 768)
	src := filepath.Join(mnt, "data")
	os.MkdirAll(src, 0o755)
	buf := make([]byte, 4<<20)
	for i := range 64 {
		rand.Read(buf)
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("f%02d", i)), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e := newEnv(t)
	e.must(t, 0, "init")
	cmd := e.command(context.Background(), "backup", "--quiet", "--snapshot", "required", src)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if los, _ := snapshot.FindLeftovers([]string{mnt}); len(los) > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	if err == nil {
		t.Skip("the backup finished before the signal arrived")
	}
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(stderr.String(), "interrupted") {
		t.Fatalf("exit %d, stderr %q", cmd.ProcessState.ExitCode(), stderr.String())
	}
	if los, _ := snapshot.FindLeftovers([]string{mnt}); len(los) != 0 {
		t.Fatalf("the interrupted run left its snapshot set: %+v", los)
	}
	e.must(t, 0, "check")
}
