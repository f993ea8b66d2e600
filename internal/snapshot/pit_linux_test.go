package snapshot

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// testPointInTime snaps dir 25 times while a writer process rewrites
// dir/state. Every snapshot must serve one whole state, the same state
// when read again later, and a state written during NewSet: not older than
// the last write completed before it, not newer than the one in flight
// after it. Between snapshots the test waits for the writer to move on,
// so a view serving a stale or a live file fails.
func testPointInTime(t *testing.T, mnt, dir string, size int, provider string, userSubvols int) {
	file := filepath.Join(dir, "state")
	done := startWriter(t, file, size)
	const rounds = 25
	var seqs []uint64
	for i := 0; i < rounds; i++ {
		if i > 0 {
			waitProgress(t, done, seqs[i-1])
		}
		lo := done()
		s, err := NewSet(context.Background(), []Source{{dir, Required}}, Options{RunID: "pit"})
		if err != nil {
			t.Fatal(err)
		}
		if s.Sources[0].Provider != provider {
			t.Fatalf("provider %s, want %s", s.Sources[0].Provider, provider)
		}
		if provider == "reflink" { // freeze the busy file explicitly, as a run would
			if err := s.Clone(file); err != nil {
				t.Fatal(err)
			}
		}
		hi := done() + 1
		seq, err := checkState(readAll(t, s, file), size)
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if seq < lo || seq > hi {
			t.Fatalf("round %d: snapshot holds state %d, but it was taken between states %d and %d (earlier snapshots: %v)", i, seq, lo, hi, seqs)
		}
		time.Sleep(2 * time.Millisecond)
		again, err := checkState(readAll(t, s, file), size)
		if err != nil {
			t.Fatalf("round %d, second read: %v", i, err)
		}
		if again != seq {
			t.Fatalf("round %d: the snapshot moved from state %d to %d: not a point in time", i, seq, again)
		}
		if err := s.Release(); err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("snapshot %d holds state %d, not newer than the one before although the writer moved on: %v", i, seqs[i], seqs)
		}
	}
	t.Logf("%d snapshots, states %d … %d", rounds, seqs[0], seqs[len(seqs)-1])
	assertClean(t, mnt, userSubvols)
}

// waitProgress waits until the writer completed a write after state last.
func waitProgress(t *testing.T, done func() uint64, last uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if done() > last {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("the writer did not get past state %d in 5s", last)
}
