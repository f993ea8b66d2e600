package livefile

import (
	"context"
	"io"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/view"
	"golang.org/x/sys/windows"
)

// A file another program opened without sharing, or holds a byte-range
// lock on, is locked: retried like a lock found by a probe, then failed
// with the reason locked, not io.
func TestSharingAndLockViolationsAreLocked(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(*fakeView)
	}{
		{"sharing violation at open", func(v *fakeView) { v.open = windows.ERROR_SHARING_VIOLATION }},
		{"lock violation during read", func(v *fakeView) { v.read = windows.ERROR_LOCK_VIOLATION }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newFakeView(100)
			tc.setup(v)
			res := newReader(t, Config{Strategy: StrategyRetry, Retries: 2, Clock: &fakeClock{}}).Read(context.Background(), v, `C:\data\f`, func(f view.File, st *view.Stat) error {
				_, err := io.Copy(io.Discard, f)
				return err
			})
			if res.Outcome != outcome.Failed || res.Reason != outcome.ReasonLocked || res.Attempts != 3 {
				t.Fatalf("%+v, want failed/locked after 3 attempts", res)
			}
		})
	}
}
