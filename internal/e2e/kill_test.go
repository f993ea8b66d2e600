//go:build linux

package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// backupJSON runs a backup that must exit with code and returns its snapshot id.
func (e *env) backupJSON(t *testing.T, code int, args ...string) (string, result) {
	t.Helper()
	res := e.must(t, code, append([]string{"--json", "backup"}, args...)...)
	id, _ := summary(t, res.stdout)["snapshot_id"].(string)
	if len(id) != 64 {
		t.Fatalf("no snapshot id in the summary: %s", res)
	}
	return id, res
}

// killAfter starts the binary and SIGKILLs it after delay. It returns
// whether the kill hit a running process; a run that ended first must
// have succeeded.
func (e *env) killAfter(t *testing.T, delay time.Duration, args ...string) (killed bool, res result) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := e.command(ctx, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(delay, func() { _ = cmd.Process.Signal(syscall.SIGKILL) })
	err := cmd.Wait()
	timer.Stop()
	res = result{stdout: out.String(), stderr: errb.String(), args: args}
	if ee, ok := err.(*exec.ExitError); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true, res
		}
		res.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return false, res
}

var unrefRE = regexp.MustCompile(`(\d+) packs are in no index`)

type recorded struct {
	id   string
	want map[string]string
}

// TestKillDuringBackup kills `backup` with SIGKILL at 20 moments spread over
// a run (seeded). After each kill the repository must check clean, the next
// backup must succeed, and earlier snapshots must restore byte-identical.
func TestKillDuringBackup(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	const wantKills = 20
	e := newEnv(t)
	src := filepath.Join(t.TempDir(), "src")
	genTree(t, src, 1, 200<<20)
	e.must(t, 0, "init")
	var snaps []recorded
	id, _ := e.backupJSON(t, 0, src)
	snaps = append(snaps, recorded{id, treeHash(t, src)})

	r := rand.New(rand.NewPCG(2026, 11))
	var fresh []string
	want := treeHash(t, src)
	mutate := func(i int) {
		// new data at a random place in the walk, so killed runs have
		// packs to write; the previous round's new files go away
		for _, p := range fresh {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(src, p)
			delete(want, rel)
		}
		fresh = fresh[:0]
		for k := range 3 {
			p := filepath.Join(src, fmt.Sprintf("d%02d", r.IntN(6)), fmt.Sprintf("new-%d-%d.bin", i, k))
			writeRandom(t, p, uint64(1e6+i*10+k), int64(8<<20+r.IntN(16<<20)))
			fresh = append(fresh, p)
			rel, _ := filepath.Rel(src, p)
			want[rel] = fileHash(t, p)
		}
	}
	// snapshot of the expected tree, as the map changes every round
	expected := func() map[string]string {
		m := make(map[string]string, len(want))
		for k, v := range want {
			m[k] = v
		}
		return m
	}

	// calibrate: how long a forced backup of this tree takes here
	mutate(0)
	start := time.Now()
	id, _ = e.backupJSON(t, 0, "--force", src)
	full := time.Since(start)
	snaps = append(snaps, recorded{id, expected()})
	if d := diffTrees(treeHash(t, src), want); d != "" {
		t.Fatalf("test bug: expected tree is wrong: %s", d)
	}
	t.Logf("a forced backup takes %v", full)

	kills, round := 0, 1
	unref, midWrite := 0, 0
	var delays []string
	for ; kills < wantKills; round++ {
		if round > 2*wantKills {
			t.Fatalf("only %d of %d runs were killed before they ended", kills, round-1)
		}
		mutate(round)
		// stratified: the k-th kill lands somewhere in the k-th twentieth of a run
		delay := time.Duration((float64(kills) + r.Float64()) / wantKills * 0.9 * float64(full))
		t0 := time.Now()
		killed, res := e.killAfter(t, delay, "--json", "backup", "--force", src)
		if !killed {
			if res.code != 0 {
				t.Fatalf("backup not killed (delay %v) failed: %s", delay, res)
			}
			id, _ := summary(t, res.stdout)["snapshot_id"].(string)
			snaps = append(snaps, recorded{id, expected()})
			// the run ended before the kill: aim within the shortest run seen
			full = min(full, time.Since(t0))
			continue
		}
		kills++
		delays = append(delays, delay.Round(time.Millisecond).String())

		t1 := time.Now()
		chk := e.run(t, "check")
		if chk.code != 0 || strings.Contains(chk.stderr, "error:") {
			t.Fatalf("check after kill %d at %v: %s", kills, delay, chk)
		}
		if m := unrefRE.FindStringSubmatch(chk.stderr); m != nil {
			n, _ := strconv.Atoi(m[1])
			if n > unref {
				midWrite++ // this kill left packs behind: it hit the run while writing
			}
			unref = n
		}
		t2 := time.Now()
		id, _ := e.backupJSON(t, 0, src)
		t3 := time.Now()
		snaps = append(snaps, recorded{id, expected()})
		t4 := time.Now()
		// an earlier snapshot, a different one each round
		old := snaps[kills%(len(snaps)-1)]
		e.restoreAndCompare(t, old.id, src, old.want)
		if os.Getenv("E2E_TIMING") != "" {
			t.Logf("kill %v check %v backup %v hash %v restore %v", t1.Sub(t0), t2.Sub(t1), t3.Sub(t2), t4.Sub(t3), time.Since(t4))
		}
	}
	t.Logf("killed %d runs at %s; %d of them while packs were being written", kills, strings.Join(delays, " "), midWrite)
	if midWrite < 3 {
		t.Fatalf("only %d kills hit a run while it wrote packs: the test does not exercise interrupted writes", midWrite)
	}
	// every blob of every snapshot is intact, and the first and the last restore
	if chk := e.run(t, "check", "--read-data"); chk.code != 0 || strings.Contains(chk.stderr, "error:") {
		t.Fatalf("final check --read-data: %s", chk)
	}
	// A kill that lands after the manifest was written (while the run
	// writes its file log or exits) leaves a complete snapshot: that is
	// fine, and check --read-data above proved it whole. More snapshots
	// than runs, or a lost one, is not.
	ids := e.snapshotIDs(t)
	if got := len(ids); got < len(snaps) || got > len(snaps)+kills {
		t.Fatalf("%d snapshots in the repository, %d backups succeeded and %d were killed", got, len(snaps), kills)
	}
	known := map[string]bool{}
	for _, s := range snaps {
		known[s.id] = true
	}
	for _, id := range ids {
		if !known[id] {
			t.Logf("snapshot %s was completed by a run killed just after writing it; it restores: ", id[:8])
			e.must(t, 0, "restore", id, "--target", t.TempDir())
		}
	}
	e.restoreAndCompare(t, snaps[0].id, src, snaps[0].want)
	last := snaps[len(snaps)-1]
	e.restoreAndCompare(t, last.id, src, last.want)
}
