package repo

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
)

func TestForgetSnapshots(t *testing.T) {
	ctx := context.Background()
	be := backend.NewMem()
	r, err := Init(ctx, be, Credential{KeyFile: NewKeyFileSecret()}, DefaultConfig)
	if err != nil {
		t.Fatal(err)
	}
	var ids []ID
	for i := range 3 {
		id, err := r.SaveSnapshot(ctx, &Snapshot{Time: time.Date(2025, 1, 1+i, 0, 0, 0, 0, time.UTC), Host: "h", Paths: []string{"/p"}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	// a backup's shared lock does not stop forget
	backupLock, err := r.Lock(ctx, false, "backup")
	if err != nil {
		t.Fatal(err)
	}
	removed, err := r.ForgetSnapshots(ctx, []ID{ids[0], ids[2], ids[2]})
	if err != nil || len(removed) != 3 {
		t.Fatalf("ForgetSnapshots: %v, %v", removed, err)
	}
	backupLock.Unlock()
	left, bad, err := r.Snapshots(ctx)
	if err != nil || len(bad) > 0 || len(left) != 1 || left[0].ID != ids[1] {
		t.Fatalf("left %v, bad %v, %v", left, bad, err)
	}
	locks, _ := ListLocks(ctx, be)
	if len(locks) != 0 {
		t.Errorf("locks left: %v", locks)
	}
	// an exclusive lock (prune --now) stops it, and nothing is removed
	ex, err := r.Lock(ctx, true, "prune")
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Unlock()
	var le *ErrLocked
	if _, err := r.ForgetSnapshots(ctx, []ID{ids[1]}); !errors.As(err, &le) {
		t.Fatalf("under an exclusive lock: %v", err)
	}
	if left, _, _ := r.Snapshots(ctx); len(left) != 1 {
		t.Errorf("removed under an exclusive lock: %d left", len(left))
	}
}
