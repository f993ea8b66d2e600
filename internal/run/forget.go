package run

import (
	"context"
	"errors"
	"fmt"

	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/retention"
)

// ForgetOptions say which snapshots a forget removes: by policy (Policy,
// GroupBy, Filter), or the snapshots IDs names (ids, unique prefixes or
// "latest"), not both.
type ForgetOptions struct {
	retention.Options
	IDs    []string
	DryRun bool
}

// ForgetResult is what a forget decided and did.
type ForgetResult struct {
	// Groups is the policy's decision per group; nil when IDs were given.
	Groups []retention.Group
	// Removed lists the snapshots removed (with DryRun: that would be),
	// newest first within each group.
	Removed []*repo.Snapshot
	DryRun  bool
	// ByID finds the manifest of an id in Groups.
	ByID map[string]*repo.Snapshot
}

// ErrPolicyAndIDs refuses a forget given both a policy and snapshot ids.
var ErrPolicyAndIDs = errors.New("give either snapshot ids or --keep-* rules, not both")

// Forget removes snapshots' manifests. It reads every manifest, decides,
// and removes nothing when anything is wrong: an unknown or ambiguous id,
// an empty policy, a filter that matches nothing, a group the policy would
// empty, or a manifest that cannot be read (its snapshot might belong to
// a group the policy would then judge without it).
func Forget(ctx context.Context, r *repo.Repository, o ForgetOptions) (*ForgetResult, error) {
	snaps, bad, err := r.Snapshots(ctx)
	if err != nil {
		return nil, err
	}
	res := &ForgetResult{DryRun: o.DryRun, ByID: map[string]*repo.Snapshot{}}
	for _, s := range snaps {
		res.ByID[s.ID.String()] = s
	}
	if len(o.IDs) > 0 {
		if !o.Policy.Empty() {
			return nil, ErrPolicyAndIDs
		}
		if !o.Filter.Empty() {
			return nil, errors.New("--host, --tag and --path choose snapshots for a policy; with snapshot ids, remove them")
		}
		seen := map[repo.ID]bool{}
		for _, ref := range o.IDs {
			s, err := repo.FindSnapshot(snaps, ref)
			if err != nil {
				return nil, fmt.Errorf("%w; nothing was removed", err)
			}
			if !seen[s.ID] {
				seen[s.ID] = true
				res.Removed = append(res.Removed, s)
			}
		}
	} else {
		if len(bad) > 0 {
			return nil, fmt.Errorf("%d snapshot manifests cannot be read (first: %v): a policy cannot be applied without them; nothing was removed (run `stillpoint check`)", len(bad), bad[0])
		}
		res.Groups, err = retention.Plan(Candidates(snaps), o.Options)
		if err != nil {
			return nil, err
		}
		for _, g := range res.Groups {
			for _, s := range g.Remove {
				res.Removed = append(res.Removed, res.ByID[s.ID])
			}
		}
	}
	if o.DryRun || len(res.Removed) == 0 {
		return res, nil
	}
	ids := make([]repo.ID, len(res.Removed))
	for i, s := range res.Removed {
		ids[i] = s.ID
	}
	removed, err := r.ForgetSnapshots(ctx, ids)
	if err != nil {
		res.Removed = onlyRemoved(res.Removed, removed)
		return res, fmt.Errorf("%w (%d of %d snapshots were removed)", err, len(removed), len(ids))
	}
	return res, nil
}

// Candidates is what the retention policy sees of each manifest.
func Candidates(snaps []*repo.Snapshot) []retention.Snapshot {
	out := make([]retention.Snapshot, len(snaps))
	for i, s := range snaps {
		out[i] = retention.Snapshot{ID: s.ID.String(), Time: s.Time, Host: s.Host, Paths: s.Paths, Tags: s.Tags}
	}
	return out
}

// ApplyRetention applies a job's policy (o.Policy, grouped by o.GroupBy)
// to the snapshots of the same host and paths as saved, so that other
// jobs' snapshots are never touched.
func ApplyRetention(ctx context.Context, r *repo.Repository, saved *repo.Snapshot, o retention.Options) (*ForgetResult, error) {
	snaps, bad, err := r.Snapshots(ctx)
	if err != nil {
		return nil, err
	}
	var mine []*repo.Snapshot
	for _, s := range snaps {
		if s.Host == saved.Host && pathmap.SamePaths(s.Paths, saved.Paths) {
			mine = append(mine, s)
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("%d snapshot manifests cannot be read (first: %v): nothing was removed (run `stillpoint check`)", len(bad), bad[0])
	}
	res := &ForgetResult{ByID: map[string]*repo.Snapshot{}}
	for _, s := range mine {
		res.ByID[s.ID.String()] = s
	}
	res.Groups, err = retention.Plan(Candidates(mine), retention.Options{Policy: o.Policy, GroupBy: o.GroupBy, Now: o.Now})
	if err != nil {
		return nil, err
	}
	var ids []repo.ID
	for _, g := range res.Groups {
		for _, s := range g.Remove {
			res.Removed = append(res.Removed, res.ByID[s.ID])
			ids = append(ids, res.ByID[s.ID].ID)
		}
	}
	if len(ids) == 0 {
		return res, nil
	}
	removed, err := r.ForgetSnapshots(ctx, ids)
	if err != nil {
		res.Removed = onlyRemoved(res.Removed, removed)
		return res, fmt.Errorf("%w (%d of %d snapshots were removed)", err, len(removed), len(ids))
	}
	return res, nil
}

// onlyRemoved keeps the snapshots of list that were removed: a removal
// that failed (a retained snapshot) may be anywhere in the list.
func onlyRemoved(list []*repo.Snapshot, removed []repo.ID) []*repo.Snapshot {
	gone := make(map[repo.ID]bool, len(removed))
	for _, id := range removed {
		gone[id] = true
	}
	var out []*repo.Snapshot
	for _, s := range list {
		if gone[s.ID] {
			out = append(out, s)
		}
	}
	return out
}
