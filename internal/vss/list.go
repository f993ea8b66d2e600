package vss

import (
	"context"
	"errors"
)

// ContextAll (VSS_CTX_ALL) lets Query see shadow copies of every context.
const ContextAll Context = -1

// Querier is implemented by components that can list the system's shadow
// copies (IVssBackupComponents::Query).
type Querier interface {
	QuerySnapshots() ([]SnapshotProperties, error)
}

// ListWriters returns the writers of the system and their states, as
// `vssadmin list writers` shows them; no snapshot set is started.
func (r *Requester) ListWriters(ctx context.Context) ([]WriterStatus, error) {
	c, err := r.factory()
	if err != nil {
		return nil, asError(PhaseCreate, err)
	}
	defer c.Release()
	if err := c.InitializeForBackup(); err != nil {
		return nil, asError(PhaseInitialize, err)
	}
	if err := c.SetBackupState(false, false, r.opts.BackupType, false); err != nil {
		return nil, asError(PhaseSetBackupState, err)
	}
	if err := r.wait(ctx, ctx, PhaseGatherMetadata, c.GatherWriterMetadata); err != nil {
		return nil, err
	}
	if err := c.FreeWriterMetadata(); err != nil {
		return nil, asError(PhaseGatherMetadata, err)
	}
	if err := r.wait(ctx, ctx, PhaseGatherWriterState, c.GatherWriterStatus); err != nil {
		return nil, err
	}
	n, err := c.GetWriterStatusCount()
	if err != nil {
		return nil, asError(PhaseGatherWriterState, err)
	}
	var out []WriterStatus
	for i := range n {
		st, err := c.GetWriterStatus(i)
		if err != nil {
			return nil, asError(PhaseGatherWriterState, err)
		}
		out = append(out, st)
	}
	if err := c.FreeWriterStatus(); err != nil {
		return nil, asError(PhaseGatherWriterState, err)
	}
	return out, nil
}

// ListShadows returns the shadow copies on the system, of every context,
// as `vssadmin list shadows` shows them.
func (r *Requester) ListShadows() ([]SnapshotProperties, error) {
	c, err := r.factory()
	if err != nil {
		return nil, asError(PhaseCreate, err)
	}
	defer c.Release()
	if err := c.InitializeForBackup(); err != nil {
		return nil, asError(PhaseInitialize, err)
	}
	if err := c.SetContext(ContextAll); err != nil {
		return nil, asError(PhaseSetContext, err)
	}
	q, ok := c.(Querier)
	if !ok {
		return nil, &Error{Phase: "Query", Err: errors.New("these components cannot list shadow copies")}
	}
	shadows, err := q.QuerySnapshots()
	if err != nil {
		return nil, asError("Query", err)
	}
	return shadows, nil
}
