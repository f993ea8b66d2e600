package run

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/livefile"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/retention"
	"github.com/stillpoint-backup/stillpoint/internal/snapshot"
)

func TestApplyRetentionTouchesOnlyTheJobsSnapshots(t *testing.T) {
	ctx := context.Background()
	r, err := repo.Init(ctx, backend.NewMem(), repo.Credential{KeyFile: repo.NewKeyFileSecret()}, repo.DefaultConfig)
	if err != nil {
		t.Fatal(err)
	}
	save := func(host string, day int, paths ...string) *repo.Snapshot {
		s := &repo.Snapshot{Time: time.Date(2025, 1, day, 12, 0, 0, 0, time.UTC), Host: host, Paths: paths}
		if _, err := r.SaveSnapshot(ctx, s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	var mine []*repo.Snapshot
	for day := 1; day <= 5; day++ {
		mine = append(mine, save("web", day, "/etc", "/srv"))
	}
	others := []*repo.Snapshot{save("db", 1, "/etc", "/srv"), save("web", 2, "/srv"), save("web", 3, "/etc", "/srv", "/var")}

	res, err := ApplyRetention(ctx, r, mine[4], retention.Options{Policy: retention.Policy{Last: 2}, GroupBy: retention.DefaultGroupBy})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 3 || len(res.Groups) != 1 || len(res.Groups[0].Keep) != 2 {
		t.Fatalf("removed %d, groups %+v", len(res.Removed), res.Groups)
	}
	left, _, err := r.Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[repo.ID]bool{mine[3].ID: true, mine[4].ID: true}
	for _, o := range others {
		want[o.ID] = true
	}
	if len(left) != len(want) {
		t.Errorf("%d snapshots left, want %d", len(left), len(want))
	}
	for _, s := range left {
		if !want[s.ID] {
			t.Errorf("left %s %s %v, which the policy removes", s.ID.Short(), s.Host, s.Paths)
		}
	}

	// a policy that would empty the group removes nothing
	var kn *retention.KeepsNothingError
	_, err = ApplyRetention(ctx, r, mine[4], retention.Options{Policy: retention.Policy{Tags: []retention.TagList{{"x"}}}, GroupBy: retention.DefaultGroupBy})
	if !errors.As(err, &kn) {
		t.Fatalf("keep-tag x: %v", err)
	}
	if again, _, _ := r.Snapshots(ctx); len(again) != len(left) {
		t.Errorf("a refused policy removed snapshots: %d of %d left", len(again), len(left))
	}
}

func TestBackupAppliesRetention(t *testing.T) {
	ctx := context.Background()
	r, err := repo.Init(ctx, backend.NewMem(), repo.Credential{KeyFile: repo.NewKeyFileSecret()}, repo.DefaultConfig)
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	var ids []repo.ID
	for day := 1; day <= 4; day++ {
		o := BackupOptions{Sources: []Source{{Path: src, Snapshot: snapshot.Off, OpenFiles: livefile.DefaultConfig()}}, Host: "h", Time: time.Date(2025, 3, day, 9, 0, 0, 0, time.Local)}
		if day >= 3 {
			o.Retention = &retention.Options{Policy: retention.Policy{Daily: 2}, GroupBy: retention.DefaultGroupBy}
		}
		res, err := Backup(ctx, r, o)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Snapshot.Time.Equal(o.Time) {
			t.Errorf("snapshot time %v, want %v", res.Snapshot.Time, o.Time)
		}
		ids = append(ids, res.Snapshot.ID)
		if day == 3 && (res.Retention == nil || len(res.Retention.Removed) != 1 || res.Retention.Removed[0].ID != ids[0]) {
			t.Fatalf("day 3: retention %+v", res.Retention)
		}
	}
	left, _, _ := r.Snapshots(ctx)
	if len(left) != 2 || left[0].ID != ids[2] || left[1].ID != ids[3] {
		t.Errorf("left %d snapshots, want the last two", len(left))
	}
	// the stored time keeps its offset
	if _, off := left[1].Time.Zone(); off != func() int { _, o := time.Date(2025, 3, 4, 9, 0, 0, 0, time.Local).Zone(); return o }() {
		t.Errorf("stored time %v lost the local offset", left[1].Time)
	}
}
