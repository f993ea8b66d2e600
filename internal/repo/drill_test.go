package repo

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
)

func TestDrillResults(t *testing.T) {
	ctx := context.Background()
	be := backend.NewMem()
	r, err := Init(ctx, be, Credential{KeyFile: NewKeyFileSecret()}, DefaultConfig)
	if err != nil {
		t.Fatal(err)
	}
	var snaps []*Snapshot
	for i := range 3 {
		s := &Snapshot{Time: time.Date(2026, 11, 1+i, 0, 0, 0, 0, time.UTC), Host: "h", Paths: []string{"/p"}}
		if _, err := r.SaveSnapshot(ctx, s); err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, s)
	}
	drill := func(s *Snapshot, day int, ok bool) {
		t.Helper()
		d := &DrillResult{Snapshot: s.ID, Origin: s.Origin(), Time: time.Date(2026, 12, day, 0, 0, 0, 0, time.UTC), Level: "restore", OK: ok,
			Steps: []DrillStep{{Name: "restore", OK: true}, {Name: "sqlite", Path: "/p/a.db", OK: ok}, {Name: "sqlite", Path: "/p/b.db", OK: true}, {Name: "git", OK: true}}}
		if err := r.SaveDrill(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	drill(snaps[0], 2, true)
	drill(snaps[0], 1, false) // older, written later: the newest by time wins
	drill(snaps[1], 1, true)

	drills, bad, err := r.Drills(ctx)
	if err != nil || len(bad) > 0 || len(drills) != 3 {
		t.Fatalf("Drills: %d, %v, %v", len(drills), bad, err)
	}
	latest := LatestDrills(snaps, drills)
	if d := latest[snaps[0].ID]; d == nil || !d.OK || d.Time.Day() != 2 {
		t.Errorf("snapshot 0: want the drill of Dec 2, got %+v", d)
	}
	if _, ok := latest[snaps[2].ID]; ok {
		t.Error("snapshot 2 was never drilled but has a result")
	}
	if got := drills[0].Verifiers(); len(got) != 2 || got[0] != "sqlite" || got[1] != "git" {
		t.Errorf("Verifiers: %v", got)
	}

	// a tag rewrite gives the snapshot a new id; its drills stay with it
	tagged, _, err := r.Tag(ctx, snaps[1], TagChange{Add: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	now, _, _ := r.Snapshots(ctx)
	if d := LatestDrills(now, drills)[tagged.ID]; d == nil {
		t.Error("the drill result was lost by a tag rewrite")
	}

	// forget removes the results of the snapshots it removes, and only those
	if _, err := r.ForgetSnapshots(ctx, []ID{snaps[0].ID}); err != nil {
		t.Fatal(err)
	}
	drills, _, _ = r.Drills(ctx)
	if len(drills) != 1 || drills[0].Origin != snaps[1].ID {
		t.Fatalf("after forget: %d drill results left, want the one of snapshot 1", len(drills))
	}

	// a damaged result is reported, not fatal, and forget leaves it be
	if err := be.Save(ctx, backend.Handle{Kind: backend.Drills, Name: NewRandomID().String()}, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if _, bad, err := r.Drills(ctx); err != nil || len(bad) != 1 || !errors.Is(bad[0].Err, ErrDecrypt) {
		t.Errorf("damaged drill result: %v, %v", bad, err)
	}
}
