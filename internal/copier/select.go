package copier

import (
	"fmt"
	"sort"
	"strings"

	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/retention"
)

// selectSnapshots picks the source snapshots to copy, oldest first: those
// refs name among the ones the filter lets through, or all of those.
func selectSnapshots(snaps []*repo.Snapshot, refs []string, f retention.Filter) ([]*repo.Snapshot, error) {
	var cand []*repo.Snapshot
	for _, s := range snaps {
		if f.Match(retention.Snapshot{ID: s.ID.String(), Time: s.Time, Host: s.Host, Paths: s.Paths, Tags: s.Tags}) {
			cand = append(cand, s)
		}
	}
	if len(cand) == 0 && !f.Empty() && len(snaps) > 0 {
		return nil, fmt.Errorf("no snapshot of the source repository matches %s", f)
	}
	if len(refs) == 0 {
		return cand, nil
	}
	var out []*repo.Snapshot
	seen := map[repo.ID]bool{}
	for _, ref := range refs {
		s, err := repo.FindSnapshot(cand, ref)
		if err != nil {
			// FindSnapshot's hint lists the target's snapshots, not the source's
			msg := strings.TrimSuffix(err.Error(), " (see `stillpoint snapshots`)")
			if !f.Empty() {
				return nil, fmt.Errorf("source repository, snapshots matching %s: %s (`stillpoint --repo SRC snapshots` lists the source's)", f, msg)
			}
			return nil, fmt.Errorf("source repository: %s (`stillpoint --repo SRC snapshots` lists the source's)", msg)
		}
		if !seen[s.ID] {
			seen[s.ID] = true
			out = append(out, s)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}

// copies finds, among the target's snapshots, the copy of a source snapshot.
type copies struct {
	byOrigin map[repo.ID]*repo.Snapshot
	all      []*repo.Snapshot
}

func newCopies(target []*repo.Snapshot) *copies {
	c := &copies{byOrigin: map[repo.ID]*repo.Snapshot{}}
	for _, t := range target {
		c.add(t)
	}
	return c
}

// add records a target snapshot under every id it stands for: its own, its
// first one (original) and the one it was copied from. Ids are random, so
// one id never stands for two different snapshots.
func (c *copies) add(t *repo.Snapshot) {
	c.all = append(c.all, t)
	c.byOrigin[t.ID] = t
	if t.Original != nil {
		c.byOrigin[*t.Original] = t
	}
	if t.CopiedFrom != nil {
		c.byOrigin[t.CopiedFrom.Snapshot] = t
	}
}

// copyOf returns the target snapshot made from s (or from what s was made
// from, or that s was made from: a copy back), or nil.
func (c *copies) copyOf(s *repo.Snapshot) *repo.Snapshot {
	for _, id := range originsOf(s) {
		if t, ok := c.byOrigin[id]; ok {
			return t
		}
	}
	return nil
}

func originsOf(s *repo.Snapshot) []repo.ID {
	ids := []repo.ID{s.ID}
	if s.Original != nil {
		ids = append(ids, *s.Original)
	}
	if s.CopiedFrom != nil {
		ids = append(ids, s.CopiedFrom.Snapshot)
	}
	return ids
}

// sameContent returns a target snapshot with the tree s has in the target
// and the same time, host and paths, or nil.
func (c *copies) sameContent(s *repo.Snapshot, tree repo.ID) *repo.Snapshot {
	for _, t := range c.all {
		if t.Tree == tree && t.Time.Equal(s.Time) && t.Host == s.Host && pathmap.SamePaths(t.Paths, s.Paths) {
			return t
		}
	}
	return nil
}
