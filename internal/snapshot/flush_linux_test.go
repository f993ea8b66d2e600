package snapshot

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/testutil/loopfs"
)

// Flush goes round while a pass is slow, and stops at the first quick one
// or at its bounds.
func TestFlushPassesUntilQuick(t *testing.T) {
	mnt := loopfs.Btrfs(t, 0)
	data := filepath.Join(mnt, "data")
	mkSubvol(t, data)
	plan, err := NewPlan([]Source{{data, Required}}, Options{RunID: "flush"})
	if err != nil {
		t.Fatal(err)
	}
	real := syncMounts
	t.Cleanup(func() { syncMounts = real })
	for _, c := range []struct {
		name string
		slow int // passes that take longer than flushSettled
		want int
	}{
		{"quick at once", 0, 1},
		{"quick on the third", 2, 3},
		{"never quick", 100, flushMaxPasses},
	} {
		passes := 0
		syncMounts = func(mounts []string) error {
			if len(mounts) != 1 || mounts[0] != mnt {
				t.Errorf("synced %v, want [%s]", mounts, mnt)
			}
			passes++
			if passes <= c.slow {
				time.Sleep(flushSettled + 15*time.Millisecond)
			}
			return nil
		}
		if err := plan.Flush(); err != nil {
			t.Fatal(err)
		}
		if passes != c.want {
			t.Errorf("%s: %d passes, want %d", c.name, passes, c.want)
		}
	}
	// passes that each take the whole budget: one only
	passes := 0
	syncMounts = func([]string) error { passes++; time.Sleep(flushBudget); return nil }
	if err := plan.Flush(); err != nil || passes != 1 {
		t.Errorf("passes of the whole budget: %d passes (%v), want 1", passes, err)
	}
	// the real syncfs, under a writer that keeps dirtying pages: bounded,
	// and no error
	syncMounts = real
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f, err := os.Create(filepath.Join(data, "busy"))
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		buf := make([]byte, 1<<20)
		for i := 0; ctx.Err() == nil; i = (i + 1) % 32 {
			f.WriteAt(buf, int64(i)<<20)
		}
	}()
	t0 := time.Now()
	err = plan.Flush()
	took := time.Since(t0)
	cancel()
	<-done
	if err != nil {
		t.Fatal(err)
	}
	// the last pass starts within the budget; give it as long again
	if took > 2*flushBudget+time.Second {
		t.Errorf("Flush under a busy writer took %s", took)
	}
}
