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
	return writerStatuses(c)
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

// ProviderQuerier is implemented by components that can list the shadow
// copy providers (Query of VSS_OBJECT_PROVIDER) and tell which volumes a
// provider can snap (IsVolumeSupported).
type ProviderQuerier interface {
	QueryProviders() ([]ProviderProperties, error)
	// IsVolumeSupported tells whether provider can snap volume ("C:\",
	// with the trailing backslash).
	IsVolumeSupported(provider GUID, volume string) (bool, error)
}

// Provider is one shadow copy provider and what it can snap.
type Provider struct {
	ProviderProperties
	// Volumes are the volumes asked about, in the order given.
	Volumes []VolumeSupport `json:"volumes"`
}

// VolumeSupport is IsVolumeSupported's answer for one volume.
type VolumeSupport struct {
	Volume    string `json:"volume"`
	Supported bool   `json:"supported"`
	// Error is why VSS could not answer (the volume is not one it knows).
	Error string `json:"error,omitempty"`
}

// ListProviders returns the system's shadow copy providers, as
// `vssadmin list providers` shows them, and for each whether it can snap
// each of volumes (in the backup context, the one a run uses).
func (r *Requester) ListProviders(volumes []string) ([]Provider, error) {
	c, err := r.factory()
	if err != nil {
		return nil, asError(PhaseCreate, err)
	}
	defer c.Release()
	if err := c.InitializeForBackup(); err != nil {
		return nil, asError(PhaseInitialize, err)
	}
	if err := c.SetContext(ContextBackup); err != nil {
		return nil, asError(PhaseSetContext, err)
	}
	q, ok := c.(ProviderQuerier)
	if !ok {
		return nil, &Error{Phase: "Query", Err: errors.New("these components cannot list providers")}
	}
	props, err := q.QueryProviders()
	if err != nil {
		return nil, asError("Query", err)
	}
	out := make([]Provider, 0, len(props))
	for _, p := range props {
		pr := Provider{ProviderProperties: p, Volumes: []VolumeSupport{}}
		for _, v := range volumes {
			ok, err := q.IsVolumeSupported(p.ID, v)
			vs := VolumeSupport{Volume: v, Supported: ok && err == nil}
			if err != nil {
				vs.Error = asError("IsVolumeSupported", err).Error()
			}
			pr.Volumes = append(pr.Volumes, vs)
		}
		out = append(out, pr)
	}
	return out, nil
}
