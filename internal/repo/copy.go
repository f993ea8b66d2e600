package repo

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
)

// CopyOrigin names the snapshot that `copy` made a snapshot from.
type CopyOrigin struct {
	Repository string `json:"repository"` // the source repository's config id
	Snapshot   ID     `json:"snapshot"`
}

// SnapshotJSON returns a manifest as stored, with the fields this version
// does not know, so that a rewrite or a copy keeps them.
func (r *Repository) SnapshotJSON(ctx context.Context, id ID) ([]byte, error) {
	data, err := backend.ReadAll(ctx, r.be, backend.Handle{Kind: backend.Snapshots, Name: id.String()})
	if err != nil {
		return nil, err
	}
	plain, err := r.key.openFile(kindSnapshot, id, data)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", id.Short(), err)
	}
	return plain, nil
}

// SaveSnapshotJSON writes a manifest given as JSON under a new id. Call it
// only after Flush succeeded, as SaveSnapshot.
func (r *Repository) SaveSnapshotJSON(ctx context.Context, plain []byte) (ID, error) {
	var s Snapshot
	if err := json.Unmarshal(plain, &s); err != nil {
		return ID{}, fmt.Errorf("snapshot manifest: %w", err)
	}
	if s.Tree.IsNull() {
		return ID{}, fmt.Errorf("snapshot manifest names no tree")
	}
	if err := r.lockErr(); err != nil {
		return ID{}, fmt.Errorf("write snapshot: %w", err)
	}
	id := NewRandomID()
	if err := r.be.Save(ctx, backend.Handle{Kind: backend.Snapshots, Name: id.String()}, r.key.sealFile(kindSnapshot, id, plain)); err != nil {
		return ID{}, fmt.Errorf("write snapshot: %w", err)
	}
	return id, nil
}

// SetIndexInterval makes the writer save an index file every n packs
// (32 unless set): fewer packs between index files leave less for a rerun
// to write again after an interruption. Call it before saving blobs.
func (r *Repository) SetIndexInterval(n int) {
	if n > 0 {
		r.indexEvery = n
	}
}
