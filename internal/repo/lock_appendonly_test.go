package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
)

// noDelete is a store whose credentials may not delete, as S3 answers
// AccessDenied to them.
type noDelete struct{ backend.Backend }

func (noDelete) Remove(_ context.Context, h backend.Handle) error {
	return fmt.Errorf("remove %s: access denied: %w", h, backend.ErrDenied)
}

func lockNames(t *testing.T, be backend.Backend) []string {
	t.Helper()
	var names []string
	if err := be.List(bg, backend.Locks, func(fi backend.FileInfo) error { names = append(names, fi.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	return names
}

// TestAppendOnlyLocks: with credentials that cannot delete, a lock is
// taken and its release leaves it in place with a note, not an error;
// CheckDelete, RemoveLocks and PrepareDelete refuse at once with
// ErrAppendOnly; with credentials that may delete, PrepareDelete removes
// the stale lock left behind and keeps a live one.
func TestAppendOnlyLocks(t *testing.T) {
	mem, cred := newPruneRepo(t)
	client := openRepo(t, noDelete{mem}, cred)
	var notes []string
	client.OnNote(func(s string) { notes = append(notes, s) })
	l, err := client.Lock(bg, false, "backup")
	if err != nil {
		t.Fatalf("a lock with credentials that cannot delete: %v", err)
	}
	l.Unlock()
	left := lockNames(t, mem)
	if len(left) != 1 || len(notes) != 1 || !strings.Contains(notes[0], "lock "+left[0]+" is left in place") {
		t.Fatalf("after Unlock: locks %v, notes %q; want the one lock left and a note naming it", left, notes)
	}

	for name, err := range map[string]error{
		"CheckDelete":   CheckDelete(bg, client.Backend(), "forget"),
		"PrepareDelete": func() error { _, err := client.PrepareDelete(bg, "prune"); return err }(),
		"RemoveLocks":   func() error { _, err := RemoveLocks(bg, client.Backend(), AllLocks); return err }(),
	} {
		if !errors.Is(err, ErrAppendOnly) || !errors.Is(err, backend.ErrDenied) || !strings.Contains(err.Error(), "append-only credentials cannot delete") {
			t.Errorf("%s with credentials that cannot delete: %v; want ErrAppendOnly", name, err)
		}
	}
	if got := lockNames(t, mem); len(got) != 1 {
		t.Fatalf("the refusals changed the locks: %v", got)
	}

	// the admin: the lock left is stale once its process is gone (here: a
	// holder on this host whose pid is not running); a live one stays
	admin := openRepo(t, mem, cred)
	if err := CheckDelete(bg, mem, "prune"); err != nil {
		t.Fatalf("CheckDelete with credentials that may delete: %v", err)
	}
	host, _ := os.Hostname()
	dead, _ := json.Marshal(LockInfo{Host: host, PID: 1 << 30, Command: "backup", Session: "gone", Time: time.Now().UTC()})
	if err := mem.Save(bg, backend.Handle{Kind: backend.Locks, Name: NewRandomID().String()}, dead); err != nil {
		t.Fatal(err)
	}
	live, err := admin.Lock(bg, false, "check")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Unlock()
	// the lock the client left is its own process's (alive): not stale
	removed, err := admin.PrepareDelete(bg, "prune")
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || !strings.Contains(removed[0], "removed stale lock") {
		t.Fatalf("PrepareDelete removed %q; want the one stale lock", removed)
	}
	if got := lockNames(t, mem); len(got) != 2 {
		t.Fatalf("after PrepareDelete: %d locks, want the client's (its process lives) and the live one", len(got))
	}
}
