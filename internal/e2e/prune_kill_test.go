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
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

const prunePassword = "prune-test-password"

// pruneHistory makes a repository of small packs with a history: backups of
// a changing tree, then forget down to the last two. It returns the
// snapshots forget kept, with their trees.
func pruneHistory(t *testing.T, e *env, src string, rounds int) []recorded {
	t.Helper()
	if _, err := pruneRepoInit(e); err != nil {
		t.Fatal(err)
	}
	genTree(t, src, 5, 8<<20)
	r := rand.New(rand.NewPCG(5, 6))
	var snaps []recorded
	for i := range rounds {
		// new files, rewritten files and removed files: some packs end
		// unused, others partly used
		var files []string
		_ = filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() {
				files = append(files, p)
			}
			return nil
		})
		sort.Strings(files)
		for k := 0; k < len(files)/8; k++ {
			p := files[r.IntN(len(files))]
			if r.IntN(3) == 0 {
				_ = os.Remove(p)
				continue
			}
			writeRandom(t, p, uint64(9000+i*100+k), int64(r.IntN(256<<10)))
		}
		writeRandom(t, filepath.Join(src, fmt.Sprintf("d%02d", r.IntN(6)), fmt.Sprintf("round-%d.bin", i)), uint64(7000+i), int64(512<<10+r.IntN(1<<20)))
		id, _ := e.backupJSON(t, 0, src)
		snaps = append(snaps, recorded{id, treeHash(t, src)})
	}
	e.must(t, 0, "forget", "--keep-last", "2")
	return snaps[len(snaps)-2:]
}

// copyDir copies a repository directory (files are written once, so a
// plain copy is a consistent one while nothing runs).
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v: %s", err, out)
	}
}

var pointRE = regexp.MustCompile(`test hook: point (\d+) "([^"]+)"`)

// TestKillDuringPrune kills `stillpoint prune` with SIGKILL at every kind of
// point between its writes and removals (during repack, marking, the index
// rewrite and deletion) and at random moments, each time on a copy of the
// same repository. After each kill check --read-data passes, both snapshots
// forget kept restore byte-identical, the next prune completes and leaves
// no mark, and check then has no warning either.
func TestKillDuringPrune(t *testing.T) {
	const hookKills, timedKills = 22, 8
	e := newEnv(t)
	src := filepath.Join(t.TempDir(), "src")
	kept := pruneHistory(t, e, src, 6)
	template := e.repo + ".template"
	if err := os.Rename(e.repo, template); err != nil {
		t.Fatal(err)
	}
	fresh := func() {
		os.RemoveAll(e.repo)
		copyDir(t, template, e.repo)
	}

	// one whole prune, to learn its points and how long it takes
	fresh()
	trace := *e
	trace.extra = append(append([]string(nil), e.extra...), "STILLPOINT_TEST_PRUNE_TRACE=1")
	start := time.Now()
	res := trace.must(t, 0, "prune", "--max-unused", "0")
	full := time.Since(start)
	var points []string
	for _, m := range pointRE.FindAllStringSubmatch(res.stderr, -1) {
		points = append(points, m[2])
	}
	kinds := map[string]int{}
	for _, p := range points {
		kinds[p]++
	}
	for _, k := range []string{"repack pack written", "repack index written", "marked", "mark complete", "index file written", "index file removed", "pack removed", "mark removed"} {
		if kinds[k] == 0 {
			t.Fatalf("the prune passed no %q point (points: %v): the history does not exercise it\n%s", k, kinds, res)
		}
	}
	t.Logf("a prune takes %v and passes %d points: %v", full, len(points), kinds)

	// kill points: the first of each kind, then spread over the rest
	r := rand.New(rand.NewPCG(2026, 12))
	chosen := map[int]bool{}
	for i, p := range points {
		if i == 0 || p != points[i-1] {
			chosen[i+1] = true
		}
	}
	for len(chosen) < min(hookKills, len(points)) {
		chosen[1+r.IntN(len(points))] = true
	}
	var at []int
	for n := range chosen {
		at = append(at, n)
	}
	sort.Ints(at)

	verify := func(what string) {
		t.Helper()
		chk := e.run(t, "check", "--read-data")
		if chk.code != 0 || strings.Contains(chk.stderr, "error:") {
			t.Fatalf("check --read-data after a kill %s: %s", what, chk)
		}
		for _, s := range kept {
			e.restoreAndCompare(t, s.id, src, s.want)
		}
		e.must(t, 0, "prune", "--max-unused", "0")
		chk = e.must(t, 0, "check")
		if strings.Contains(chk.stderr, "warning") {
			t.Fatalf("check after the prune that followed a kill %s: %s", what, chk)
		}
		if n := countFiles(t, filepath.Join(e.repo, "gc")); n != 0 {
			t.Fatalf("the prune after a kill %s left %d marks", what, n)
		}
	}

	kills := 0
	killedKinds := map[string]int{}
	for _, n := range at {
		fresh()
		k := *e
		k.extra = append(append([]string(nil), e.extra...), "STILLPOINT_TEST_PRUNE_KILL_AT="+strconv.Itoa(n))
		killed, res := k.killAfter(t, time.Minute, "prune", "--max-unused", "0")
		if !killed {
			t.Fatalf("prune was not killed at point %d (%s): %s", n, points[n-1], res)
		}
		kills++
		killedKinds[points[n-1]]++
		verify(fmt.Sprintf("at point %d (%s)", n, points[n-1]))
	}
	timed := 0
	var delays []string
	for i := 0; timed < timedKills; i++ {
		if i > 4*timedKills {
			t.Fatalf("only %d of %d timed kills hit a running prune", timed, i)
		}
		fresh()
		delay := time.Duration((float64(timed) + r.Float64()) / timedKills * float64(full))
		killed, res := e.killAfter(t, delay, "prune", "--max-unused", "0")
		if !killed {
			if res.code != 0 {
				t.Fatalf("prune not killed (delay %v) failed: %s", delay, res)
			}
			full = full * 3 / 4 // it ended first: aim earlier
			continue
		}
		timed++
		kills++
		delays = append(delays, delay.Round(time.Millisecond).String())
		verify("after " + delay.String())
	}
	t.Logf("killed prune %d times: at points %v, and after %s", kills, killedKinds, strings.Join(delays, " "))
	if kills < 25 {
		t.Fatalf("only %d kills", kills)
	}
}

// initSmall makes a repository of small packs (many packs from little data)
// with the prune tests' password.
func initSmall(dir string) error {
	_, err := repo.Init(context.Background(), backend.NewLocal(dir), repo.Credential{Password: prunePassword}, smallConfig())
	return err
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if !e.IsDir() && !strings.HasPrefix(e.Name(), ".tmp-") {
			n++
		}
	}
	return n
}
