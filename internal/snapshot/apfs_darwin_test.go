package snapshot

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// rootAPFS skips unless the test runs as root; with
// STILLPOINT_TEST_APFS=1 (the macOS workflow's sudo step) it fails
// instead, so the real snapshot test cannot pass by not running.
func rootAPFS(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("STILLPOINT_TEST_APFS") == "1" {
		t.Fatal("STILLPOINT_TEST_APFS=1 but not root: run with sudo")
	}
	t.Skip("takes a real APFS snapshot: run as root (sudo STILLPOINT_TEST_APFS=1 go test ./internal/snapshot/)")
}

// TestAPFSRealSnapshot takes, reads and releases a real Time Machine local
// snapshot: a file written after the snapshot reads as it was before, and
// after Release neither the mount nor the snapshot is left.
func TestAPFSRealSnapshot(t *testing.T) {
	rootAPFS(t)
	dir := t.TempDir() // below /private/var/folders: the Data volume
	file := filepath.Join(dir, "Mailbox")
	if err := os.WriteFile(file, []byte("before"), 0o644); err != nil {
		t.Fatal(err)
	}
	plan, err := NewPlan([]Source{{Path: dir, Policy: Required}}, Options{RunID: "apfs-test"})
	if err != nil {
		t.Fatal(err)
	}
	if plan.Sources[0].Provider != "apfs" {
		t.Fatalf("planned %s: %+v", plan.Sources[0].Provider, plan.Sources[0].Fits)
	}
	set, err := plan.Create(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer set.Release()
	if err := os.WriteFile(file, []byte("after"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, origin := readFile(t, set.Snapshots()[0], file)
	if got != "before" || origin != Volume {
		t.Fatalf("read %q (%s) from the snapshot, want %q", got, origin, "before")
	}
	snap := set.Snapshots()[0].(*apfsSnapshot)
	vol, date, at := snap.vols[0].Mountpoint, snap.date, snap.vols[0].mountedAt
	if err := set.Release(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("/usr/bin/tmutil", "listlocalsnapshots", vol).CombinedOutput()
	if err != nil {
		t.Fatalf("tmutil listlocalsnapshots %s: %v: %s", vol, err, out)
	}
	if strings.Contains(string(out), date) {
		t.Fatalf("snapshot %s is left on %s:\n%s", date, vol, out)
	}
	if _, err := os.Stat(at); !os.IsNotExist(err) {
		t.Fatalf("mount directory %s left: %v", at, err)
	}
	if los, err := FindLeftovers([]string{dir}); err != nil || len(los) != 0 {
		t.Fatalf("leftovers %+v %v", los, err)
	}
}

// TestAPFSRealLeftover: a set that is never released (a killed run) is
// found by FindLeftovers once its owner counts as gone, and Cleanup
// unmounts and deletes it.
func TestAPFSRealLeftover(t *testing.T) {
	rootAPFS(t)
	dir := t.TempDir()
	a := &APFS{}
	label := NewLabel("apfs-leftover-test")
	label.PID, label.PIDStart = 999999, 0 // no such process: stale at once
	snap, err := a.CreateSet(context.Background(), []string{dir}, label)
	if err != nil {
		t.Fatal(err)
	}
	s := snap.(*apfsSnapshot)
	los, err := FindLeftovers([]string{dir})
	if err != nil || len(los) != 1 || los[0].InUse || los[0].Kind != "apfs" {
		snap.Release()
		t.Fatalf("leftovers %+v %v", los, err)
	}
	if err := Cleanup(los); err != nil {
		snap.Release()
		t.Fatal(err)
	}
	out, _ := exec.Command("/usr/bin/tmutil", "listlocalsnapshots", s.vols[0].Mountpoint).CombinedOutput()
	if strings.Contains(string(out), s.date) {
		t.Fatalf("cleanup left snapshot %s:\n%s", s.date, out)
	}
}
