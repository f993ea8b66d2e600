//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPruneCommand: the plan is printed before anything changes and a dry
// run changes nothing; bad limits are usage errors; the --json summary
// says what was removed, repacked and kept; --now is refused beside a live
// lock, naming it, and frees everything at once without one.
func TestPruneCommand(t *testing.T) {
	e := newEnv(t)
	if _, err := pruneRepoInit(e); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "src")
	for i := range 120 {
		writeRandom(t, filepath.Join(src, fmt.Sprintf("f%03d", i)), uint64(i), 12<<10)
	}
	e.must(t, 0, "-q", "backup", src)
	for i := range 40 { // a third of the small files change: packs end up partly used
		writeRandom(t, filepath.Join(src, fmt.Sprintf("f%03d", i*3)), uint64(1000+i), 12<<10)
	}
	writeRandom(t, filepath.Join(src, "big"), 1, 2<<20)
	e.must(t, 0, "-q", "backup", src)
	want := treeHash(t, src)
	ids := e.snapshotIDs(t)
	e.must(t, 0, "-q", "forget", ids[0])
	data := filepath.Join(e.repo, "data")
	before := dirSize(t, data)

	for _, bad := range [][]string{{"--max-unused", "NaN%"}, {"--max-unused", "-1%"}, {"--max-unused", "Inf"},
		{"--max-repack-size", "0"}, {"--max-repack-size", "-5M"}, {"--max-repack-size", "NaN"}, {"--dry-run", "--now"}} {
		if res := e.run(t, append([]string{"prune"}, bad...)...); res.code != 2 {
			t.Errorf("prune %v: want a usage error (exit 2): %s", bad, res)
		}
	}
	res := e.must(t, 0, "prune", "--dry-run", "--max-unused", "0")
	for _, w := range []string{"1 snapshots;", "to delete (no snapshot uses them)", "to repack (partly used)", "frees about", "dry run: nothing was changed"} {
		if !strings.Contains(res.stdout, w) {
			t.Errorf("prune --dry-run does not say %q: %s", w, res)
		}
	}
	if after := dirSize(t, data); after != before {
		t.Fatalf("prune --dry-run changed data/: %d bytes before, %d after", before, after)
	}

	// a live process's lock: --now is refused and names it
	holder := exec.Command("sleep", "600")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer holder.Process.Kill()
	host, _ := os.Hostname()
	lock, _ := json.Marshal(map[string]any{"session": "s", "host": host, "pid": holder.Process.Pid, "command": "backup", "time": time.Now().UTC()})
	lockFile := filepath.Join(e.repo, "locks", strings.Repeat("ab", 32))
	mustWrite(t, lockFile, lock)
	res = e.run(t, "prune", "--now")
	if res.code == 0 || !strings.Contains(res.stderr, `"backup"`) || !strings.Contains(res.stderr, fmt.Sprint(holder.Process.Pid)) {
		t.Errorf("prune --now beside a live backup's lock: want a refusal naming it: %s", res)
	}
	if after := dirSize(t, data); after != before {
		t.Fatalf("the refused prune --now changed data/")
	}
	if err := os.Remove(lockFile); err != nil {
		t.Fatal(err)
	}

	res = e.must(t, 0, "--json", "prune", "--now", "--max-unused", "0")
	sum, _ := summary(t, res.stdout)["result"].(map[string]any)
	for _, k := range []string{"removed_packs", "removed_bytes", "repack_packs", "repack_bytes", "repack_blobs", "new_packs", "kept_packs", "kept_bytes", "garbage_packs", "packs", "bytes"} {
		if _, ok := sum[k].(float64); !ok {
			t.Errorf("prune --json summary lacks %s: %v", k, sum)
		}
	}
	if sum["now"] != true || sum["removed_packs"].(float64) == 0 || sum["repack_packs"].(float64) == 0 || sum["marks_pending"] != 0.0 || sum["unused_after_bytes"] != 0.0 {
		t.Errorf("prune --now --max-unused 0: want packs removed and repacked at once, nothing left unused: %v", sum)
	}
	if after := dirSize(t, data); after >= before || int64(sum["removed_bytes"].(float64)) < before-after {
		t.Errorf("data/ %d bytes before, %d after; summary says %v removed", before, after, sum["removed_bytes"])
	}
	if marks, _ := filepath.Glob(filepath.Join(e.repo, "gc", "*")); len(marks) != 0 {
		t.Errorf("prune --now left marks: %v", marks)
	}
	e.must(t, 0, "-q", "check", "--read-data")
	e.restoreAndCompare(t, ids[1], src, want)
	// nothing is left to do
	res = e.must(t, 0, "prune", "--max-unused", "0")
	if !strings.Contains(res.stdout, "nothing to prune") {
		t.Errorf("second prune: %s", res)
	}
}
