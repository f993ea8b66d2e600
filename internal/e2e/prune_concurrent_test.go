//go:build linux

package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestPruneWhileBackupsRun runs two backup clients in a loop, each over a
// tree that changes between runs, while forget --keep-last 3 and prune run
// in a loop beside them. Every backup and every prune must succeed; at the
// end every snapshot left restores byte-identical and check --read-data is
// clean.
func TestPruneWhileBackupsRun(t *testing.T) {
	const clients = 2
	length := 20 * time.Second
	if testing.Short() {
		length = 8 * time.Second
	}
	e := newEnv(t)
	root := t.TempDir()
	if _, err := pruneRepoInit(e); err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		want    = map[string]map[string]string{} // snapshot id -> tree
		srcOf   = map[string]string{}
		stop    atomic.Bool
		wg      sync.WaitGroup
		backups atomic.Int64
	)
	errs := make(chan string, 8)
	for c := range clients {
		src := filepath.Join(root, fmt.Sprintf("client%d", c))
		genTree(t, src, uint64(10+c), 3<<20)
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(c), 77))
			for i := 0; !stop.Load(); i++ {
				churn(t, r, src, i)
				res := e.run(t, "--json", "backup", src)
				if res.code != 0 {
					errs <- fmt.Sprintf("backup of client %d: %s", c, res)
					return
				}
				id, _ := summary(t, res.stdout)["snapshot_id"].(string)
				tree := treeHash(t, src)
				mu.Lock()
				want[id], srcOf[id] = tree, src
				mu.Unlock()
				backups.Add(1)
			}
		}()
	}
	var prunes, removed, pending, kept atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			if res := e.run(t, "forget", "--keep-last", "3"); res.code != 0 {
				errs <- "forget: " + res.String()
				return
			}
			res := e.run(t, "--json", "prune", "--max-unused", "0")
			if res.code != 0 {
				errs <- "prune: " + res.String()
				return
			}
			sum, _ := summary(t, res.stdout)["result"].(map[string]any)
			num := func(k string) int64 { f, _ := sum[k].(float64); return int64(f) }
			prunes.Add(1)
			removed.Add(num("removed_packs"))
			pending.Add(num("marks_pending"))
			kept.Add(num("kept_packs"))
		}
	}()
	deadline := time.Now().Add(length)
	for time.Now().Before(deadline) && len(errs) == 0 {
		time.Sleep(100 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Fatal(msg)
	}
	// with nothing running: forget what the last backups added, and one
	// prune sweeps everything
	e.must(t, 0, "forget", "--keep-last", "3")
	e.must(t, 0, "prune", "--max-unused", "0")
	if n := countFiles(t, filepath.Join(e.repo, "gc")); n != 0 {
		t.Fatalf("%d marks left by a prune that ran alone", n)
	}
	chk := e.must(t, 0, "check", "--read-data")
	if strings.Contains(chk.stderr, "error:") || strings.Contains(chk.stderr, "warning") {
		t.Fatalf("check --read-data: %s", chk)
	}
	ids := e.snapshotIDs(t)
	sort.Strings(ids)
	for _, id := range ids {
		tree, ok := want[id]
		if !ok {
			t.Fatalf("snapshot %s was not written by any backup of the test", id[:8])
		}
		e.restoreAndCompare(t, id, srcOf[id], tree)
	}
	t.Logf("%d backups, %d prunes (removed %d packs; %d found marks waiting for running backups; kept %d marked packs new snapshots used); %d snapshots restored",
		backups.Load(), prunes.Load(), removed.Load(), pending.Load(), kept.Load(), len(ids))
	// (whether a prune's mark had to wait depends on timing; the test below
	// makes it happen for certain)
	if prunes.Load() < 3 || removed.Load() == 0 {
		t.Fatalf("prune did not run beside backups: %d prunes, %d packs removed", prunes.Load(), removed.Load())
	}
	if len(ids) != clients*3 {
		t.Fatalf("%d snapshots left, want %d (forget --keep-last 3 per client)", len(ids), clients*3)
	}
}

// pruneRepoInit makes the repository of small packs the prune tests use.
func pruneRepoInit(e *env) (string, error) {
	e.extra = append(e.extra, "STILLPOINT_PASSWORD="+prunePassword)
	return e.repo, initSmall(e.repo)
}

// churn rewrites, removes and adds a few files of src.
func churn(t *testing.T, r *rand.Rand, src string, round int) {
	t.Helper()
	var files []string
	_ = filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	for k := 0; k < 4 && len(files) > 0; k++ {
		p := files[r.IntN(len(files))]
		if r.IntN(3) == 0 {
			_ = os.Remove(p)
			continue
		}
		writeRandom(t, p, uint64(round*1000+k)+r.Uint64()%1000, int64(r.IntN(300<<10)))
	}
	writeRandom(t, filepath.Join(src, fmt.Sprintf("d%02d", r.IntN(6)), fmt.Sprintf("new-%d.bin", round)), r.Uint64(), int64(256<<10+r.IntN(512<<10)))
	// content that comes back (a file reverted, a file restored): after
	// forget it is in packs a prune marks, which a backup must not trust
	// (each version comes back after five rounds: forget --keep-last 3 has
	// dropped every snapshot that had it)
	for k := range 3 {
		v := (round + k) % 5
		writeRandom(t, filepath.Join(src, fmt.Sprintf("revert-%d.bin", k)), uint64(500+10*k+v), int64(200<<10+v*8<<10))
	}
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
