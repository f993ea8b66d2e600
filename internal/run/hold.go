package run

import (
	"context"

	"github.com/stillpoint-backup/stillpoint/internal/hold"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/snapshot"
)

// CreateHeld creates the plan's snapshot set with the writers of its
// crash-consistent filesystems held (when opts say so), and resumes them
// however creation ends, a panic included. prepared is the plan already
// prepared (nil: CreateHeld prepares it first), so that labels and
// directories are written before the writers stop. The filesystems are
// flushed just before the writers stop, so the snapshot has little to
// write while they wait.
func CreateHeld(ctx context.Context, plan *snapshot.Plan, prepared *snapshot.Prepared, opts hold.Options) (*snapshot.Set, *hold.Report, error) {
	if prepared == nil {
		var err error
		if prepared, err = plan.Prepare(ctx); err != nil {
			return nil, nil, err
		}
	}
	opts.Within = plan.HoldSources()
	h := hold.Prepare(plan.HoldMounts(), opts)
	defer h.Release()
	if h != nil {
		// a failed flush only makes the hold longer: the snapshot syncs again
		_ = plan.Flush()
	}
	h.Stop(ctx)
	set, err := prepared.Create(ctx)
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
