package repo

import (
	"context"
	"errors"
	"fmt"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
)

// ForgetSnapshots deletes the manifests of ids (their snapshots/<id>
// files) and returns those it deleted, in the order given. The data they
// reference stays until a prune finds it unreachable.
//
// It takes a shared lock ("forget"): a backup may run meanwhile, and a
// prune re-checks reachability from the snapshots present right before it
// deletes anything, so removing a manifest never needs an exclusive lock.
// A manifest already gone (another forget removed it) is not an error.
// The drill results of snapshots no longer present are removed last.
func (r *Repository) ForgetSnapshots(ctx context.Context, ids []ID) ([]ID, error) {
	lock, err := r.Lock(ctx, false, "forget")
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	var removed []ID
	var retained []error // immutable repositories: kept until their date
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		h := backend.Handle{Kind: backend.Snapshots, Name: id.String()}
		err := r.checkRetained(ctx, h)
		if err == nil {
			err = r.be.Remove(ctx, h)
		}
		if errors.Is(err, backend.ErrRetained) {
			retained = append(retained, err)
			continue
		}
		if err != nil {
			return removed, fmt.Errorf("remove %s: %w", h, err)
		}
		removed = append(removed, id)
	}
	if len(retained) > 0 {
		return removed, fmt.Errorf("%d of the snapshots to forget are retained by the storage's object lock and stay (forget them again after their date): %w", len(retained), errors.Join(retained...))
	}
	// the drill results of the removed snapshots go with them
	if err := r.removeOrphanDrills(ctx); err != nil {
		return removed, fmt.Errorf("snapshots removed, but not their drill results (the next forget removes them): %w", err)
	}
	return removed, nil
}
