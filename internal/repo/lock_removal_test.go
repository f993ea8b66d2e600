package repo

import (
	"os"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
)

// unlock --remove-all (UnlessLive) removes the locks whose holder may be
// gone and keeps the live ones; only AllLocks (--force) removes those.
func TestRemoveLocksKeepsLiveHolders(t *testing.T) {
	_, be := newTestRepo(t)
	host, _ := os.Hostname()
	now := time.Now().UTC()
	locks := map[string]string{
		saveLock(t, be, LockInfo{Host: host, PID: deadPID(t), Command: "backup", Time: now}):                              "dead",
		saveLock(t, be, LockInfo{Host: "elsewhere.invalid", PID: 1, Command: "backup", Time: now.Add(-time.Hour)}):        "stale remote",
		saveLock(t, be, LockInfo{Host: "elsewhere.invalid", PID: 1, Command: "backup", Time: now.Add(-10 * time.Minute)}): "silent remote",
		saveLock(t, be, LockInfo{Host: "elsewhere.invalid", PID: 1, Command: "backup", Time: now.Add(-time.Minute)}):      "fresh remote",
		saveLock(t, be, LockInfo{Host: host, PID: os.Getpid(), Prune: true, Command: "prune", Time: now.Add(-time.Hour)}): "live",
	}
	removed := func(which LockRemoval) map[string]bool {
		t.Helper()
		got := map[string]bool{}
		ls, err := RemoveLocks(bg, be, which)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range ls {
			got[locks[l.Name]] = true
		}
		return got
	}
	if got := removed(StaleLocks); len(got) != 2 || !got["dead"] || !got["stale remote"] {
		t.Fatalf("stale: removed %v, want the dead and the stale remote lock", got)
	}
	if got := removed(UnlessLive); len(got) != 1 || !got["silent remote"] {
		t.Fatalf("remove-all: removed %v, want only the remote lock not renewed for 10 minutes", got)
	}
	left, _ := ListLocks(bg, be)
	for _, l := range left {
		if !l.Live() {
			t.Errorf("left %s (%s), which is not live", l, locks[l.Name])
		}
	}
	if got := removed(AllLocks); len(got) != 2 || !got["live"] || !got["fresh remote"] {
		t.Fatalf("force: removed %v, want the live and the fresh remote lock", got)
	}
	if n, _ := count(t, be, backend.Locks); n != 0 {
		t.Fatalf("%d locks left after AllLocks", n)
	}
}
