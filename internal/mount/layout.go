package mount

import (
	"fmt"
	"sort"
	"strings"

	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

// TimeFormat names a snapshot's directory: its time with the offset it was
// stored with, as restic's mount names them.
const TimeFormat = "2006-01-02T15:04:05Z07:00"

// Layout is the naming of a snapshot list: one directory name per
// snapshot, and the groups by host and tag. Names never change while the
// mount lives, so a shell that is inside a snapshot's directory stays there
// when others appear or go.
type Layout struct {
	Snapshots []*repo.Snapshot // oldest first
	names     map[repo.ID]string
	byName    map[string]*repo.Snapshot
	hosts     map[string][]*repo.Snapshot
	tags      map[string][]*repo.Snapshot
}

// NewLayout names snaps (oldest first, as repo.Snapshots returns them).
// Snapshots named in prev keep their names; a new one gets its time, with
// "-1", "-2", … when another has the same second.
func NewLayout(snaps []*repo.Snapshot, prev *Layout) *Layout {
	l := &Layout{Snapshots: snaps, names: map[repo.ID]string{}, byName: map[string]*repo.Snapshot{},
		hosts: map[string][]*repo.Snapshot{}, tags: map[string][]*repo.Snapshot{}}
	if prev != nil {
		for _, s := range snaps {
			if n, ok := prev.names[s.ID]; ok {
				l.names[s.ID], l.byName[n] = n, s
			}
		}
	}
	for _, s := range snaps {
		if _, ok := l.names[s.ID]; ok {
			continue
		}
		base := s.Time.Format(TimeFormat)
		name := base
		for i := 1; l.byName[name] != nil; i++ {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		l.names[s.ID], l.byName[name] = name, s
	}
	for _, s := range snaps {
		if h := Component(s.Host); h != "" {
			l.hosts[h] = append(l.hosts[h], s)
		}
		for _, t := range s.Tags {
			if t := Component(t); t != "" && !contains(l.tags[t], s) {
				l.tags[t] = append(l.tags[t], s)
			}
		}
	}
	return l
}

func contains(list []*repo.Snapshot, s *repo.Snapshot) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Component makes a host name or tag one path component: a slash would
// make it two, and "." and ".." are taken.
func Component(s string) string {
	s = strings.ReplaceAll(s, "/", "_")
	s = strings.ReplaceAll(s, "\x00", "_")
	if s == "." || s == ".." {
		return strings.Repeat("_", len(s))
	}
	return s
}

// Name is snapshot s's directory name, "" for a snapshot not in l.
func (l *Layout) Name(s *repo.Snapshot) string { return l.names[s.ID] }

// ByName finds the snapshot of a directory name.
func (l *Layout) ByName(name string) *repo.Snapshot { return l.byName[name] }

// Latest is the newest snapshot of list, nil for none.
func Latest(list []*repo.Snapshot) *repo.Snapshot {
	if len(list) == 0 {
		return nil
	}
	return list[len(list)-1]
}

// Hosts lists the host directories, sorted.
func (l *Layout) Hosts() []string { return sortedKeys(l.hosts) }

// Host lists the snapshots of a host directory, oldest first.
func (l *Layout) Host(h string) []*repo.Snapshot { return l.hosts[h] }

// Tags lists the tag directories, sorted.
func (l *Layout) Tags() []string { return sortedKeys(l.tags) }

// Tag lists the snapshots of a tag directory, oldest first.
func (l *Layout) Tag(t string) []*repo.Snapshot { return l.tags[t] }

// ByShortID finds a snapshot by the name of its ids/ link: its short id.
// A short id that two snapshots share names neither.
func (l *Layout) ByShortID(short string) *repo.Snapshot {
	var found *repo.Snapshot
	for _, s := range l.Snapshots {
		if s.ID.Short() == short {
			if found != nil {
				return nil
			}
			found = s
		}
	}
	return found
}

// ShortIDs lists the ids/ links: every snapshot's short id that no other
// snapshot shares, sorted.
func (l *Layout) ShortIDs() []string {
	count := map[string]int{}
	for _, s := range l.Snapshots {
		count[s.ID.Short()]++
	}
	var out []string
	for id, n := range count {
		if n == 1 {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

func sortedKeys(m map[string][]*repo.Snapshot) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
