//go:build linux

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/soak"
)

// TestPruneWhileBackupsRun runs two backup clients in a loop, each over a
// tree that changes between runs, while forget --keep-last 3 and prune
// --max-unused 0 (separate commands, repacking all it can) run in a loop
// beside them. It is the soak of TestSoakShort with other commands: every
// backup and every prune must succeed; at the end every snapshot left
// restores byte-identical, check --read-data is clean and a prune that runs
// alone leaves no mark.
func TestPruneWhileBackupsRun(t *testing.T) {
	length := 20 * time.Second
	if testing.Short() {
		length = 8 * time.Second
	}
	rep := runSoak(t, soak.Config{Duration: length, Clients: 2, KeepLast: 3, Files: 150, MaxSize: 1 << 20, Seed: 10,
		PruneLoop: [][]string{{"forget", "--keep-last", "3"}, {"prune", "--max-unused", "0"}}})
	if want := 2 * 3; rep.Restored != want {
		t.Errorf("%d snapshots restored, want %d", rep.Restored, want)
	}
}

// pruneRepoInit makes the repository of small packs the prune tests use.
func pruneRepoInit(e *env) (string, error) {
	e.extra = append(e.extra, "STILLPOINT_PASSWORD="+prunePassword)
	return e.repo, initSmall(e.repo)
}

// TestPruneSweepsBesideABackupThatSawTheMark plays the protocol's argument
// with the binary, backups held still by a before-backup hook (it runs
// once the backup's lock and view are taken): a prune marks while backup A
// runs, so its mark waits for A; backup B starts after the mark, with data
// that only marked packs hold; A ends, a second prune sweeps the mark while
// B still runs (B's lock is not in the mark). B must not have trusted the
// marked packs: its snapshot restores, and check --read-data is clean.
func TestPruneSweepsBesideABackupThatSawTheMark(t *testing.T) {
	e := newEnv(t)
	if _, err := pruneRepoInit(e); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	srcKept, srcA, srcB := filepath.Join(dir, "kept"), filepath.Join(dir, "a"), filepath.Join(dir, "b")
	genTree(t, srcKept, 31, 1<<20)
	writeRandom(t, filepath.Join(srcA, "a.bin"), 32, 64<<10)
	back := filepath.Join(srcKept, "comes-back.bin")
	writeRandom(t, back, 33, 2<<20)
	gone, _ := e.backupJSON(t, 0, srcKept)
	writeRandom(t, back, 34, 2<<20)
	keptID, _ := e.backupJSON(t, 0, srcKept)
	keptTree := treeHash(t, srcKept)
	e.must(t, 0, "forget", gone)
	// B's source holds the content only the forgotten snapshot had
	writeRandom(t, filepath.Join(srcB, "comes-back.bin"), 33, 2<<20)
	treeB := treeHash(t, srcB)

	held := func(name, src string) (*exec.Cmd, *strings.Builder, string) {
		started, goFile := filepath.Join(dir, name+".started"), filepath.Join(dir, name+".go")
		job := filepath.Join(dir, name+".yaml")
		mustWrite(t, job, []byte(fmt.Sprintf(`sources:
  - path: %s
    snapshot: off
hooks:
  before-backup: [{run: 'touch %s; while [ ! -e %s ]; do sleep 0.02; done', essential: true, timeout: 2m}]
`, src, started, goFile)))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		t.Cleanup(cancel)
		cmd := e.command(ctx, "--json", "backup", "--job", job)
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
			if _, err := os.Stat(started); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("backup %s did not reach its hook: %s", name, out)
			}
		}
		return cmd, out, goFile
	}
	pruneJSON := func() map[string]any {
		res := e.must(t, 0, "--json", "prune", "--max-unused", "0")
		sum, _ := summary(t, res.stdout)["result"].(map[string]any)
		return sum
	}

	a, aOut, goA := held("a", srcA)
	first := pruneJSON()
	if first["marks_pending"] != 1.0 || first["removed_packs"] != 0.0 {
		t.Fatalf("the first prune should mark and wait for backup A: %v", first)
	}
	b, bOut, goB := held("b", srcB)
	mustWrite(t, goA, nil)
	if err := a.Wait(); err != nil {
		t.Fatalf("backup A: %v\n%s", err, aOut)
	}
	second := pruneJSON()
	if second["marks_swept"].(float64) < 1 || second["removed_packs"].(float64) == 0 {
		t.Fatalf("the second prune should sweep the first mark while B runs: %v", second)
	}
	mustWrite(t, goB, nil)
	if err := b.Wait(); err != nil {
		t.Fatalf("backup B: %v\n%s", err, bOut)
	}
	idB, _ := summary(t, bOut.String())["snapshot_id"].(string)
	chk := e.must(t, 0, "check", "--read-data")
	if strings.Contains(chk.stderr, "error:") {
		t.Fatalf("check --read-data: %s", chk)
	}
	e.restoreAndCompare(t, idB, srcB, treeB)
	e.restoreAndCompare(t, keptID, srcKept, keptTree)
}
