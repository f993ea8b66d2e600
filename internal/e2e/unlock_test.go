//go:build linux

package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUnlockKeepsLiveHolders: unlock --remove-all removes the locks whose
// holder may be gone and keeps a live process's (a prune waits for it
// before deleting what it may use), failing with a hint; --force removes
// it too; once its process is gone a plain unlock removes it.
func TestUnlockKeepsLiveHolders(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(t.TempDir(), "src")
	mustWrite(t, filepath.Join(src, "f"), []byte("x"))
	e.must(t, 0, "-q", "backup", src)

	holder := exec.Command("sleep", "600")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer holder.Process.Kill()
	host, _ := os.Hostname()
	now := time.Now().UTC()
	lockDir := filepath.Join(e.repo, "locks")
	writeLock := func(name string, lock map[string]any) string {
		t.Helper()
		data, _ := json.Marshal(lock)
		p := filepath.Join(lockDir, strings.Repeat(name, 64/len(name)))
		mustWrite(t, p, data)
		return p
	}
	live := writeLock("a1", map[string]any{"session": "live", "host": host, "pid": holder.Process.Pid, "command": "backup", "time": now})
	fresh := writeLock("b2", map[string]any{"session": "fresh", "host": "elsewhere.invalid", "pid": 7, "command": "backup", "time": now.Add(-time.Minute)})
	silent := writeLock("c3", map[string]any{"session": "silent", "host": "elsewhere.invalid", "pid": 7, "command": "backup", "time": now.Add(-15 * time.Minute)})
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }

	res := e.run(t, "unlock")
	if res.code != 0 || !exists(live) || !exists(fresh) || !exists(silent) {
		t.Fatalf("unlock removed a lock that is not stale: %s", res)
	}
	res = e.run(t, "unlock", "--remove-all")
	if res.code != 1 || !strings.Contains(res.stderr, "--force") || !strings.Contains(res.stderr, "2 locks of live holders") {
		t.Errorf("unlock --remove-all beside live holders: want exit 1 naming --force: %s", res)
	}
	if !exists(live) || !exists(fresh) || exists(silent) {
		t.Fatalf("unlock --remove-all: want the live and the fresh lock kept, the silent one removed (live %v fresh %v silent %v): %s",
			exists(live), exists(fresh), exists(silent), res)
	}
	if res := e.run(t, "unlock", "--force"); res.code != 2 {
		t.Errorf("--force without --remove-all: %s", res)
	}
	// the prune that runs meanwhile marks and waits for the holders: it deletes nothing
	mustWrite(t, filepath.Join(src, "f"), []byte("y"))
	e.must(t, 0, "-q", "backup", src)
	e.must(t, 0, "-q", "forget", e.snapshotIDs(t)[0])
	res = e.must(t, 0, "--json", "prune")
	if r, _ := summary(t, res.stdout)["result"].(map[string]any); r == nil || r["marks_pending"] != 1.0 || r["removed_packs"] != 0.0 {
		t.Errorf("prune beside live holders: want one mark pending and nothing removed: %s", res)
	}

	if err := holder.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = holder.Wait()
	e.must(t, 0, "unlock")
	if exists(live) || !exists(fresh) {
		t.Fatalf("unlock after the holder ended: want its lock removed, the fresh remote one kept")
	}
	e.must(t, 0, "unlock", "--remove-all", "--force")
	if left, _ := os.ReadDir(lockDir); len(left) != 0 {
		t.Fatalf("unlock --remove-all --force left %d locks", len(left))
	}
	// with the holders gone, the next prune deletes what was marked
	res = e.must(t, 0, "--json", "prune")
	if r, _ := summary(t, res.stdout)["result"].(map[string]any); r == nil || r["marks_pending"] != 0.0 || r["marks_swept"] != 1.0 {
		t.Errorf("prune after the holders ended: want the mark swept: %s", res)
	}
	e.must(t, 0, "-q", "check", "--read-data")
}
