package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
)

// TagChange says how to change a snapshot's tags: replace them all (Set,
// when Replace), or add and remove some.
type TagChange struct {
	Replace bool
	Set     []string
	Add     []string
	Remove  []string
}

// SplitTags splits comma-separated tag lists ("a,b") and drops empty names.
func SplitTags(lists []string) []string {
	var out []string
	for _, l := range lists {
		for _, t := range strings.Split(l, ",") {
			if t = strings.TrimSpace(t); t != "" && !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	}
	return out
}

// Validate refuses a change that says both "set" and "add or remove", or nothing.
func (c TagChange) Validate() error {
	if c.Replace && (len(c.Add) > 0 || len(c.Remove) > 0) {
		return errors.New("--set replaces all tags: it cannot be combined with --add or --remove")
	}
	if !c.Replace && len(c.Add) == 0 && len(c.Remove) == 0 {
		return errors.New("nothing to change: give --add, --remove or --set")
	}
	return nil
}

// Apply returns the tags after the change and whether they differ from tags.
func (c TagChange) Apply(tags []string) ([]string, bool) {
	var out []string
	if c.Replace {
		out = slices.Clone(c.Set)
	} else {
		for _, t := range tags {
			if !slices.Contains(c.Remove, t) {
				out = append(out, t)
			}
		}
		for _, t := range c.Add {
			if !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	}
	return out, !slices.Equal(out, tags)
}

// ErrSnapshotGone means a snapshot was removed (by forget) while it was
// being rewritten; the rewrite was withdrawn.
var ErrSnapshotGone = errors.New("the snapshot was removed while it was being rewritten")

// Tag changes a snapshot's tags. A manifest is never overwritten, so the
// snapshot is written again under a new id, and only then is the old
// manifest removed: at every moment at least one of the two exists, both
// naming the same tree. The new manifest records the first id the
// snapshot had in "original". Fields this version does not know are kept
// as they are. It returns the snapshot as it is now and whether it changed
// (tags already as asked: nothing is written).
func (r *Repository) Tag(ctx context.Context, s *Snapshot, c TagChange) (*Snapshot, bool, error) {
	if err := c.Validate(); err != nil {
		return nil, false, err
	}
	tags, changed := c.Apply(s.Tags)
	if !changed {
		return s, false, nil
	}
	old := backend.Handle{Kind: backend.Snapshots, Name: s.ID.String()}
	data, err := backend.ReadAll(ctx, r.be, old)
	if err != nil {
		if backend.IsNotFound(err) {
			return nil, false, fmt.Errorf("snapshot %s: %w", s.ID.Short(), ErrSnapshotGone)
		}
		return nil, false, err
	}
	plain, err := r.key.openFile(kindSnapshot, s.ID, data)
	if err != nil {
		return nil, false, fmt.Errorf("snapshot %s: %w", s.ID.Short(), err)
	}
	// rewrite the manifest as stored rather than as this version reads it
	var m map[string]json.RawMessage
	if err := json.Unmarshal(plain, &m); err != nil {
		return nil, false, fmt.Errorf("snapshot %s is damaged: %w", s.ID.Short(), err)
	}
	if tags == nil {
		tags = []string{}
	}
	m["tags"], _ = json.Marshal(tags)
	if _, ok := m["original"]; !ok || s.Original == nil {
		m["original"], _ = json.Marshal(s.ID)
	}
	out, err := json.Marshal(m)
	if err != nil {
		return nil, false, err
	}
	id := NewRandomID()
	if err := r.be.Save(ctx, backend.Handle{Kind: backend.Snapshots, Name: id.String()}, r.key.sealFile(kindSnapshot, id, out)); err != nil {
		return nil, false, fmt.Errorf("write snapshot: %w", err)
	}
	// a forget that removed the old manifest meanwhile must not see it
	// come back under the new id
	if _, err := r.be.Stat(ctx, old); backend.IsNotFound(err) {
		_ = r.be.Remove(context.WithoutCancel(ctx), backend.Handle{Kind: backend.Snapshots, Name: id.String()})
		return nil, false, fmt.Errorf("snapshot %s: %w", s.ID.Short(), ErrSnapshotGone)
	}
	ns, err := r.LoadSnapshot(ctx, id)
	if err != nil {
		return nil, false, err
	}
	if err := r.be.Remove(context.WithoutCancel(ctx), old); err != nil {
		return ns, true, fmt.Errorf("snapshot %s was written as %s, but the old manifest could not be removed (%v): both list the same files; remove snapshots/%s", s.ID.Short(), id.Short(), err, s.ID)
	}
	return ns, true, nil
}
