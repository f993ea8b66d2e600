package retention

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
)

// GroupBy says which of a snapshot's fields make its group; none puts
// every snapshot in one group.
type GroupBy struct {
	Host, Paths, Tags bool
}

// DefaultGroupBy groups by host and paths, as restic does.
var DefaultGroupBy = GroupBy{Host: true, Paths: true}

// ParseGroupBy reads "host,paths,tags" (any of them; "host"/"hosts",
// "path"/"paths", "tag"/"tags"); "" groups nothing.
func ParseGroupBy(s string) (GroupBy, error) {
	var g GroupBy
	for _, f := range strings.Split(s, ",") {
		switch strings.TrimSpace(f) {
		case "host", "hosts":
			g.Host = true
		case "path", "paths":
			g.Paths = true
		case "tag", "tags":
			g.Tags = true
		case "":
		default:
			return GroupBy{}, fmt.Errorf("unknown grouping %q: use host, paths and/or tags, separated by commas ('' for one group)", f)
		}
	}
	return g, nil
}

func (g GroupBy) String() string {
	var parts []string
	if g.Host {
		parts = append(parts, "host")
	}
	if g.Paths {
		parts = append(parts, "paths")
	}
	if g.Tags {
		parts = append(parts, "tags")
	}
	return strings.Join(parts, ",")
}

// Key names a group: the fields GroupBy uses, the others empty. Paths and
// tags are sorted.
type Key struct {
	Host  string   `json:"host"`
	Paths []string `json:"paths"`
	Tags  []string `json:"tags"`
}

func (k Key) String() string {
	var parts []string
	if k.Host != "" {
		parts = append(parts, "host "+k.Host)
	}
	if len(k.Paths) > 0 {
		parts = append(parts, "paths "+strings.Join(k.Paths, ", "))
	}
	if len(k.Tags) > 0 {
		parts = append(parts, "tags "+strings.Join(k.Tags, ", "))
	}
	if len(parts) == 0 {
		return "all snapshots"
	}
	return strings.Join(parts, "; ")
}

func (g GroupBy) key(s Snapshot) Key {
	var k Key
	if g.Host {
		k.Host = s.Host
	}
	if g.Paths {
		k.Paths = sorted(s.Paths)
	}
	if g.Tags {
		k.Tags = sorted(s.Tags)
	}
	return k
}

func sorted(l []string) []string {
	if len(l) == 0 {
		return nil
	}
	s := append([]string(nil), l...)
	sort.Strings(s)
	return s
}

// Filter picks the snapshots forget considers. Every given field must
// match: Hosts any of them, Tags any of the lists (all tags of it), Paths
// all of them.
type Filter struct {
	Hosts []string
	Tags  []TagList
	Paths []string
}

// Empty tells whether the filter lets every snapshot through.
func (f Filter) Empty() bool { return len(f.Hosts)+len(f.Tags)+len(f.Paths) == 0 }

// Match tells whether s passes the filter.
func (f Filter) Match(s Snapshot) bool {
	if len(f.Hosts) > 0 && !contains(f.Hosts, s.Host) {
		return false
	}
	if !anyMatches(f.Tags, s.Tags) {
		return false
	}
	windows := pathmap.ForPaths(s.Paths).IsWindows()
	for _, p := range f.Paths {
		if !contains(s.Paths, p) && !contains(s.Paths, filepath.Clean(p)) && !(windows && containsFold(s.Paths, p)) {
			return false
		}
	}
	return true
}

// samePaths is what makes two lists of paths the same group: Windows
// paths are compared without case (C:\Data is C:\data), as Windows does.
func samePaths(paths []string) []string {
	if !pathmap.ForPaths(paths).IsWindows() {
		return paths
	}
	folded := make([]string, len(paths))
	for i, p := range paths {
		folded[i] = strings.ToLower(strings.TrimRight(p, `\/`))
	}
	sort.Strings(folded)
	return folded
}

func containsFold(l []string, s string) bool {
	s = strings.TrimRight(s, `\/`)
	for _, x := range l {
		if strings.EqualFold(strings.TrimRight(x, `\/`), s) {
			return true
		}
	}
	return false
}

func (f Filter) String() string {
	var parts []string
	for _, h := range f.Hosts {
		parts = append(parts, "--host "+h)
	}
	for _, t := range f.Tags {
		parts = append(parts, "--tag "+strings.Join(t, ","))
	}
	for _, p := range f.Paths {
		parts = append(parts, "--path "+p)
	}
	return strings.Join(parts, " ")
}

// Group is one group's decision.
type Group struct {
	Key    Key
	Keep   []Kept
	Remove []Snapshot
}

// Options are the whole of a forget by policy.
type Options struct {
	Policy  Policy
	GroupBy GroupBy
	Filter  Filter
	// Now bounds --keep-within (snapshots after it do not count as the
	// newest); the zero value means time.Now().
	Now time.Time
}

// KeepsNothingError is returned when the policy would remove every
// snapshot of a group.
type KeepsNothingError struct {
	Key    Key
	Policy Policy
	Count  int
}

func (e *KeepsNothingError) Error() string {
	return fmt.Sprintf("refusing to remove every snapshot of the group %s: the policy (%s) keeps none of its %d snapshots; nothing was removed",
		e.Key, e.Policy, e.Count)
}

// Plan groups the snapshots the filter lets through, applies the policy
// to each group and returns the groups in a fixed order (by key). It
// returns an error, and no plan, for an invalid or empty policy
// (ErrEmptyPolicy), a filter that matches nothing (ErrNoMatch) and a group
// the policy would empty (*KeepsNothingError).
func Plan(snaps []Snapshot, o Options) ([]Group, error) {
	if err := o.Policy.Validate(); err != nil {
		return nil, err
	}
	if o.Policy.Empty() {
		return nil, ErrEmptyPolicy
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	groups := map[string]*Group{}
	members := map[string][]Snapshot{}
	var names []string
	for _, s := range snaps {
		if !o.Filter.Match(s) {
			continue
		}
		k := o.GroupBy.key(s)
		name := fmt.Sprintf("%q %q %q", k.Host, samePaths(k.Paths), k.Tags)
		if _, ok := groups[name]; !ok {
			groups[name] = &Group{Key: k}
			names = append(names, name)
		}
		members[name] = append(members[name], s)
	}
	if len(names) == 0 && !o.Filter.Empty() {
		return nil, fmt.Errorf("%w (%s)", ErrNoMatch, o.Filter)
	}
	sort.Strings(names)
	out := make([]Group, 0, len(names))
	for _, name := range names {
		g := groups[name]
		g.Keep, g.Remove = Apply(members[name], o.Policy, now)
		if len(g.Keep) == 0 {
			return nil, &KeepsNothingError{Key: g.Key, Policy: o.Policy, Count: len(g.Remove)}
		}
		out = append(out, *g)
	}
	return out, nil
}
