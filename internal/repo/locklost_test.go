package repo

import (
	"errors"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
)

// shortLockTimes makes a lock's renewals and loss happen in milliseconds.
func shortLockTimes(t *testing.T) {
	refresh, retry, lost := lockRefresh, lockRetry, lockLostAge
	lockRefresh, lockRetry, lockLostAge = 20*time.Millisecond, 5*time.Millisecond, 150*time.Millisecond
	t.Cleanup(func() { lockRefresh, lockRetry, lockLostAge = refresh, retry, lost })
}

// A holder whose lock cannot be renewed stops committing before another
// client could take the lock for stale: no index file, no snapshot, no
// prune removal; a renewal that fails only for a while keeps the lock.
func TestLockLostStopsCommits(t *testing.T) {
	shortLockTimes(t)
	secret := NewKeyFileSecret()
	mem := backend.NewMem()
	if _, err := Init(bg, mem, Credential{KeyFile: secret}, testConfig()); err != nil {
		t.Fatal(err)
	}
	faulty := backend.NewFaulty(mem, 1)
	r, err := Open(bg, faulty, Credential{KeyFile: secret})
	if err != nil {
		t.Fatal(err)
	}

	l, err := r.Lock(bg, false, "backup")
	if err != nil {
		t.Fatal(err)
	}
	// a short outage: two renewals fail, the next succeeds
	faulty.Add(backend.Fault{Ops: backend.OpSave, Kinds: []backend.Kind{backend.Locks}, Prob: 1, Times: 2})
	time.Sleep(200 * time.Millisecond)
	if err := r.lockErr(); err != nil {
		t.Fatalf("a lock renewed after a short outage is lost: %v", err)
	}
	if faulty.Injected() != 2 {
		t.Fatalf("%d renewals failed, want 2", faulty.Injected())
	}

	// from now on every renewal fails
	faulty.Add(backend.Fault{Ops: backend.OpSave, Kinds: []backend.Kind{backend.Locks}, Prob: 1})
	data := []byte("data that was uploaded before the lock was lost")
	if _, err := r.SaveBlob(bg, DataBlob, r.Hash(data), data); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for r.lockErr() == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !errors.Is(r.lockErr(), ErrLockLost) {
		t.Fatalf("after the renewals failed for longer than the loss age: %v", r.lockErr())
	}
	ferr := r.Flush(bg)
	if !errors.Is(ferr, ErrLockLost) {
		t.Fatalf("flush after the lock was lost: %v", ferr)
	}
	_, serr := r.SaveSnapshot(bg, &Snapshot{Time: time.Now(), Paths: []string{"/x"}})
	if !errors.Is(serr, ErrLockLost) {
		t.Fatalf("save snapshot after the lock was lost: %v", serr)
	}
	var n int
	if err := mem.List(bg, backend.Snapshots, func(backend.FileInfo) error { n++; return nil }); err != nil || n != 0 {
		t.Fatalf("%d snapshots stored (%v)", n, err)
	}
	t.Logf("flush: %v", ferr)
	l.Unlock()
}
