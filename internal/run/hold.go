package run

import (
	"context"

	"github.com/stillpoint-backup/stillpoint/internal/hold"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/snapshot"
)

// createHeld creates the plan's snapshot set with the writers of its
// crash-consistent filesystems held (when opts say so), and resumes them
// however creation ends, a panic included.
func createHeld(ctx context.Context, plan *snapshot.Plan, opts hold.Options) (*snapshot.Set, *hold.Report, error) {
	h := hold.Start(ctx, plan.HoldMounts(), opts)
	defer h.Release()
	set, err := plan.Create(ctx)
	return set, h.Release(), err
}

func holdInfo(r *hold.Report) *repo.HoldInfo {
	if r == nil {
		return nil
	}
	conv := func(ps []hold.Process) []repo.ProcessInfo {
		var out []repo.ProcessInfo
		for _, p := range ps {
			out = append(out, repo.ProcessInfo{Pid: p.Pid, Command: p.Command, Reason: p.Reason})
		}
		return out
	}
	return &repo.HoldInfo{HeldMs: r.HeldMs, Held: conv(r.Held), Skipped: conv(r.Skipped), TimedOut: r.TimedOut, Message: r.Message}
}
