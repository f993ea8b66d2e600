package run_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/livefile"
	"github.com/stillpoint-backup/stillpoint/internal/quiesce"
	"github.com/stillpoint-backup/stillpoint/internal/run"
	"github.com/stillpoint-backup/stillpoint/internal/snapshot"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/loopfs"
)

// A run cancelled once its snapshot set exists (here: as the
// after-snapshot hook reports) archives nothing, writes no snapshot,
// releases the set and runs on-error.
func TestCancelledRunReleasesSetAndRunsOnError(t *testing.T) {
	mnt := loopfs.Btrfs(t, 256)
	src := filepath.Join(mnt, "data")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "f"), []byte("data"), 0o644)
	lf := livefile.DefaultConfig()
	lf.StagingDir = filepath.Join(t.TempDir(), "staging")
	sources := []run.Source{{Path: src, Snapshot: snapshot.Required, OpenFiles: lf}}
	plan, err := run.PlanSnapshots(sources, run.NewRunID(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var points []quiesce.Point
	hooks := quiesce.Hooks{quiesce.AfterSnapshot: {{Run: "true"}}, quiesce.OnError: {{Run: "true"}}}
	r := newRepo(t)
	res, err := run.Backup(ctx, r, run.BackupOptions{Sources: sources, Plan: plan, Hooks: hooks,
		OnHook: func(h quiesce.HookResult) {
			points = append(points, h.Point)
			if h.Point == quiesce.AfterSnapshot {
				if los, _ := snapshot.FindLeftovers([]string{mnt}); len(los) == 0 {
					t.Error("no snapshot set while after-snapshot ran")
				}
				cancel()
			}
		}})
	if !errors.Is(err, context.Canceled) || res == nil || res.Snapshot != nil {
		t.Fatalf("cancelled run: %v, result %+v", err, res)
	}
	if len(points) != 2 || points[1] != quiesce.OnError {
		t.Errorf("hooks run: %v, want after-snapshot then on-error", points)
	}
	if los, _ := snapshot.FindLeftovers([]string{mnt}); len(los) != 0 {
		t.Fatalf("the cancelled run left its snapshot set: %+v", los)
	}
	if snaps, _, err := r.Snapshots(context.Background()); err != nil || len(snaps) != 0 {
		t.Fatalf("the cancelled run wrote %d snapshots (%v)", len(snaps), err)
	}
}
