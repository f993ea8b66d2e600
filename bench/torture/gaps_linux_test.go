//go:build linux

package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/quiesce"
	"github.com/stillpoint-backup/stillpoint/internal/snapshot"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/ci"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/loopfs"
)

// selfEnv makes the test binary act as the torture command (TestMain), so
// that a test can start the workloads' writers as `torture work ...`.
const selfEnv = "STILLPOINT_TORTURE_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(selfEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// The inactivity wait against the workload made to race it: bank-gaps
// idles just longer than the inactivity period after every transfer, so
// the next withdrawal often starts while the snapshot is being made. Every
// wait that ends quiet must have a snapshot between two transfers, and the
// test goes on until at least one snapshot was released and taken again
// because a write landed while it was made: otherwise it would not have
// exercised the race at all. The writer is a real process, the watch is
// fanotify, the snapshot a real btrfs snapshot: what a run's inactivity
// wait does, without the rest of the run.
func TestInactivityWaitBankGaps(t *testing.T) {
	ci.NeedRoot(t)
	if _, err := exec.LookPath("btrfs"); err != nil {
		if ci.Enabled() {
			t.Fatal("btrfs-progs is missing")
		}
		t.Skip("needs btrfs-progs")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(selfEnv, "1") // for the writer the test starts
	mnt := loopfs.Btrfs(t, 0)
	const inactivity = 200 * time.Millisecond // gaps of 205–240 ms
	e := &wlEnv{cfg: &config{inactivity: inactivity}, self: self, src: filepath.Join(mnt, "bank-gaps"), aux: t.TempDir(), scratch: mnt}
	if out, err := exec.Command("btrfs", "subvolume", "create", e.src).CombinedOutput(); err != nil {
		t.Fatalf("btrfs subvolume create: %v: %s", err, out)
	}
	ctx := t.Context()
	if err := setupSynced(ctx, bankGaps{}, e); err != nil {
		t.Fatal(err)
	}
	w, err := (bankGaps{}).start(ctx, e, 1)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			w.stop()
		}
	}()

	const (
		minQuiet = 8                // waits that ended quiet, at least
		maxWaits = 60               // and at most this many waits…
		budget   = 90 * time.Second // …or this long, to see a snapshot taken again
	)
	type kept struct {
		dir string // the accounts as the snapshot held them
		res quiesce.InactivityResult
	}
	var snaps []kept
	var waits, quiet, resnapped int
	deadline := time.Now().Add(budget)
	for waits < maxWaits && (quiet < minQuiet || resnapped == 0) && time.Now().Before(deadline) {
		waits++
		var snap snapshot.Snapshot
		take := func(ctx context.Context, ready func(bool)) (func(), error) {
			ready(false)
			s, err := snapshot.Btrfs{}.Create(ctx, []string{e.src}, snapshot.NewLabel("torture-gaps"))
			if err != nil {
				return nil, err
			}
			snap = s
			return func() {
				if err := s.Release(); err != nil {
					t.Error(err)
				}
				snap = nil
			}, nil
		}
		res, err := quiesce.WaitQuiet(ctx, []string{e.src}, inactivity, 3*time.Second, quiesce.InactivityOptions{Snap: take})
		if err != nil {
			t.Fatal(err)
		}
		if res.Method != quiesce.MethodFanotify {
			t.Fatalf("the wait did not use fanotify: %s", res.Fallback)
		}
		if snap == nil {
			t.Fatalf("wait %d kept no snapshot: %+v", waits, res)
		}
		resnapped += res.Resnapped
		if res.Quiet {
			quiet++
		}
		snaps = append(snaps, kept{copyAccounts(t, e, snap), res})
		if err := snap.Release(); err != nil {
			t.Fatal(err)
		}
	}
	// judged once the writer stopped: its transfer log is then complete
	stopped = true
	if err := w.stop(); err != nil {
		t.Fatal(err)
	}
	torn := 0
	for i, k := range snaps {
		v := (bankGaps{}).verify(ctx, e, k.dir)
		if !k.res.Quiet {
			// ended at max-wait: crash-consistent, and recorded so
			t.Logf("wait %d ended at max-wait (%s); torn: %v", i+1, k.res.Message, v.torn)
			continue
		}
		if v.torn {
			torn++
			t.Errorf("wait %d ended quiet after %s (%d snapshots taken again), but the snapshot is torn: %s",
				i+1, k.res.Waited.Round(time.Millisecond), k.res.Resnapped, v.reason)
		}
	}
	t.Logf("%d waits: %d ended quiet, %d of them torn; %d snapshots released and taken again", waits, quiet, torn, resnapped)
	if quiet < minQuiet {
		t.Errorf("only %d of %d waits ended quiet, want at least %d", quiet, waits, minQuiet)
	}
	if resnapped == 0 {
		t.Errorf("no snapshot was taken again in %d waits: the workload did not race the wait", waits)
	}
}

// copyAccounts copies the accounts out of the snapshot, as a restore
// would, into a directory the verifier judges.
func copyAccounts(t *testing.T, e *wlEnv, s snapshot.Snapshot) string {
	t.Helper()
	dir := t.TempDir()
	for i := range bankFileAccounts {
		name := acctFile(i)
		f, err := s.View().Open(filepath.Join(e.src, name))
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
