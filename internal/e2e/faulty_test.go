//go:build linux

package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/livefile"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/restore"
	"github.com/stillpoint-backup/stillpoint/internal/run"
)

func smallConfig() repo.Config {
	cfg := repo.DefaultConfig
	cfg.Chunker = repo.ChunkerParams{Algorithm: "jc-v1.0.0", Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10}
	cfg.PackSize = 256 << 10 // many packs, and index files written during the run
	return cfg
}

func snapshotNames(t *testing.T, be backend.Backend) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	if err := be.List(context.Background(), backend.Snapshots, func(fi backend.FileInfo) error {
		out[fi.Name] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// restoreInProcess restores a snapshot tree and compares it with want.
func restoreInProcess(t *testing.T, r *repo.Repository, s *repo.Snapshot, src string, want map[string]string) {
	t.Helper()
	target := t.TempDir()
	res, err := restore.Run(context.Background(), r, s.Tree, restore.Options{Target: target})
	if err != nil || res.Errors != 0 {
		t.Fatalf("restore of snapshot %s: %v, %d errors: %+v", s.ID.Short(), err, res.Errors, res.Events)
	}
	if want != nil {
		if d := diffTrees(treeHash(t, filepath.Join(target, src)), want); d != "" {
			t.Fatalf("snapshot %s does not restore byte-identical: %s", s.ID.Short(), d)
		}
	}
	os.RemoveAll(target)
}

// faultPlans are the ways a backend misbehaves in the test, chosen by round.
var faultPlans = []struct {
	name      string
	afterSave bool // a failed call may have stored its data
	faults    []backend.Fault
}{
	{"random saves", false, []backend.Fault{{Ops: backend.OpSave, Prob: 0.04}}},
	{"one pack save", false, []backend.Fault{{Ops: backend.OpSave, Kinds: []backend.Kind{backend.Packs}, Nth: 5}}},
	{"index saves", false, []backend.Fault{{Ops: backend.OpSave, Kinds: []backend.Kind{backend.Indexes}, Prob: 0.5}}},
	{"snapshot save", false, []backend.Fault{{Ops: backend.OpSave, Kinds: []backend.Kind{backend.Snapshots}, Prob: 1}}},
	{"random loads", false, []backend.Fault{{Ops: backend.OpLoad | backend.OpList, Prob: 0.03}}},
	{"short reads", false, []backend.Fault{{Ops: backend.OpLoad, Prob: 0.05, ShortRead: true}}},
	{"lost acknowledgements", true, []backend.Fault{{Ops: backend.OpSave, Prob: 0.05, AfterSave: true}}},
	{"slow and failing", false, []backend.Fault{
		{Ops: backend.OpSave | backend.OpLoad, Prob: 0.02, Delay: 200 * time.Microsecond},
		{Ops: backend.OpSave, Kinds: []backend.Kind{backend.Packs}, Nth: 12}}},
}

// TestBackendFailuresNeverRecordBrokenSnapshots runs backups in-process over
// a backend that fails writes and reads at random. A failed run must say
// so clearly and record no snapshot; after every run, the repository opened
// with a healthy backend checks clean (all data read) and every snapshot
// restores byte-identical.
func TestBackendFailuresNeverRecordBrokenSnapshots(t *testing.T) {
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "src")
	genTree(t, src, 7, 6<<20)
	mem := backend.NewMem()
	cred := repo.Credential{KeyFile: repo.NewKeyFileSecret()}
	if _, err := repo.Init(ctx, mem, cred, smallConfig()); err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{} // snapshot id -> tree
	r := rand.New(rand.NewPCG(99, 1))
	failures, successes := 0, 0
	for round := range 3 * len(faultPlans) {
		plan := faultPlans[round%len(faultPlans)]
		// new and changed content each round, so every run has data to write
		writeRandom(t, filepath.Join(src, fmt.Sprintf("d%02d", r.IntN(6)), fmt.Sprintf("round-%d", round)), uint64(500+round), int64(256<<10+r.IntN(2<<20)))
		f := backend.NewFaulty(mem, uint64(round+1))
		for _, ft := range plan.faults {
			f.Add(ft)
		}
		before := snapshotNames(t, mem)
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		var res *run.BackupResult
		rp, err := repo.Open(rctx, f, cred)
		if err == nil {
			res, err = run.Backup(rctx, rp, run.BackupOptions{Sources: []run.Source{{Path: src, OpenFiles: livefile.DefaultConfig()}}, Host: "faulty"})
		}
		if rctx.Err() != nil {
			t.Fatalf("round %d (%s): the backup hung: %v", round, plan.name, err)
		}
		cancel()
		after := snapshotNames(t, mem)
		var added []string
		for n := range after {
			if !before[n] {
				added = append(added, n)
			}
		}
		if err != nil {
			failures++
			if !errors.Is(err, backend.ErrInjected) && !errors.Is(err, backend.ErrExists) {
				t.Errorf("round %d (%s): the error does not carry its cause: %v", round, plan.name, err)
			}
			if !strings.Contains(err.Error(), "injected fault") || !strings.ContainsAny(err.Error(), ":") {
				t.Errorf("round %d (%s): unclear error %q", round, plan.name, err)
			}
			if len(added) > 0 && !plan.afterSave {
				t.Fatalf("round %d (%s): the run failed (%v) but recorded snapshot %s", round, plan.name, err, added)
			}
			t.Logf("round %d (%s): failed as expected after %d injected faults: %v", round, plan.name, f.Injected(), err)
		} else {
			successes++
			if len(added) != 1 || added[0] != res.Snapshot.ID.String() {
				t.Fatalf("round %d: successful run added snapshots %v, reported %s", round, added, res.Snapshot.ID)
			}
			want[added[0]] = treeHash(t, src)
		}

		clean, err := repo.Open(ctx, mem, cred)
		if err != nil {
			t.Fatal(err)
		}
		chk, err := clean.Check(ctx, repo.CheckOptions{ReadData: true})
		if err != nil {
			t.Fatal(err)
		}
		if !chk.OK() {
			t.Fatalf("round %d (%s): check after the run: %+v", round, plan.name, chk.Errors)
		}
		snaps, bad, err := clean.Snapshots(ctx)
		if err != nil || len(bad) > 0 {
			t.Fatalf("snapshots: %v %v", err, bad)
		}
		for _, s := range snaps {
			id := s.ID.String()
			if !before[id] || round == 3*len(faultPlans)-1 {
				restoreInProcess(t, clean, s, src, want[id]) // a snapshot of a lost acknowledgement restores, unknown content
			}
		}
	}
	if failures < 5 || successes < 3 {
		t.Fatalf("%d failed and %d successful runs: the faults do not exercise both paths", failures, successes)
	}
}

// TestRetryMakesFlakyBackendsWork: with Retry over the same faults, every
// backup succeeds and restores.
func TestRetryMakesFlakyBackendsWork(t *testing.T) {
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "src")
	genTree(t, src, 8, 4<<20)
	mem := backend.NewMem()
	cred := repo.Credential{KeyFile: repo.NewKeyFileSecret()}
	if _, err := repo.Init(ctx, mem, cred, smallConfig()); err != nil {
		t.Fatal(err)
	}
	injected := 0
	for round := range 4 {
		writeRandom(t, filepath.Join(src, fmt.Sprintf("retry-%d", round)), uint64(900+round), 1<<20)
		f := backend.NewFaulty(mem, uint64(round+10))
		f.Add(backend.Fault{Ops: backend.OpSave, Prob: 0.1, AfterSave: round%2 == 0})
		f.Add(backend.Fault{Ops: backend.OpLoad, Prob: 0.1, ShortRead: round%2 == 1})
		f.Add(backend.Fault{Ops: backend.OpList | backend.OpStat, Prob: 0.1})
		rb := backend.NewRetry(f)
		rb.Attempts, rb.Backoff = 10, time.Millisecond
		rp, err := repo.Open(ctx, rb, cred)
		if err != nil {
			t.Fatalf("round %d: open through Retry: %v", round, err)
		}
		res, err := run.Backup(ctx, rp, run.BackupOptions{Sources: []run.Source{{Path: src, OpenFiles: livefile.DefaultConfig()}}, Host: "retry"})
		if err != nil {
			t.Fatalf("round %d: backup through Retry: %v", round, err)
		}
		injected += f.Injected()
		clean, err := repo.Open(ctx, mem, cred)
		if err != nil {
			t.Fatal(err)
		}
		chk, err := clean.Check(ctx, repo.CheckOptions{ReadData: true})
		if err != nil || !chk.OK() {
			t.Fatalf("round %d: check: %v %+v", round, err, chk)
		}
		restoreInProcess(t, clean, res.Snapshot, src, treeHash(t, src))
	}
	if injected < 10 {
		t.Fatalf("only %d faults injected", injected)
	}
}
