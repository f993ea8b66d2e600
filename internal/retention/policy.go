package retention

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Snapshot is what the policy looks at. Time keeps its zone: periods are
// computed in it.
type Snapshot struct {
	ID    string
	Time  time.Time
	Host  string
	Paths []string
	Tags  []string
}

// TagList is a set of tags a snapshot must all have ("a,b" on the command
// line).
type TagList []string

// ParseTagList splits "a,b" at commas and trims the spaces around each tag.
// "" is the list of one empty tag, which matches snapshots without tags.
func ParseTagList(s string) TagList {
	var l TagList
	for _, t := range strings.Split(s, ",") {
		l = append(l, strings.TrimSpace(t))
	}
	return l
}

func (l TagList) String() string { return "[" + strings.Join(l, ", ") + "]" }

// matches tells whether tags has every tag of l; the empty tag matches a
// snapshot without tags.
func (l TagList) matches(tags []string) bool {
	for _, t := range l {
		if t == "" && len(tags) == 0 {
			return true
		}
		if !contains(tags, t) {
			return false
		}
	}
	return true
}

// anyMatches tells whether tags satisfies one of the lists; no lists match
// everything.
func anyMatches(lists []TagList, tags []string) bool {
	if len(lists) == 0 {
		return true
	}
	for _, l := range lists {
		if l.matches(tags) {
			return true
		}
	}
	return false
}

// Policy says which snapshots of a group to keep. Counts are 0 (rule off),
// a positive number, or Unlimited.
type Policy struct {
	Last, Hourly, Daily, Weekly, Monthly, Yearly int

	Within                                                               Duration
	WithinHourly, WithinDaily, WithinWeekly, WithinMonthly, WithinYearly Duration

	// Tags keeps every snapshot that has all tags of one of the lists.
	Tags []TagList
}

// Empty tells whether no rule is set: such a policy would remove
// everything, and Plan refuses it.
func (p Policy) Empty() bool {
	return p.Last == 0 && p.Hourly == 0 && p.Daily == 0 && p.Weekly == 0 && p.Monthly == 0 && p.Yearly == 0 &&
		p.Within.IsZero() && p.WithinHourly.IsZero() && p.WithinDaily.IsZero() && p.WithinWeekly.IsZero() &&
		p.WithinMonthly.IsZero() && p.WithinYearly.IsZero() && len(p.Tags) == 0
}

// Validate refuses counts below zero other than Unlimited and negative
// durations.
func (p Policy) Validate() error {
	for _, c := range p.counts() {
		if c.n < Unlimited {
			return fmt.Errorf("keep-%s %d: %w", c.name, c.n, ErrNegativeCount)
		}
	}
	for _, w := range p.withins() {
		d := w.d
		if d.Years < 0 || d.Months < 0 || d.Days < 0 || d.Hours < 0 {
			return fmt.Errorf("%s %s: durations cannot be negative", w.flag, d)
		}
	}
	return nil
}

type namedCount struct {
	name string // last, hourly, …
	n    int
}

func (p Policy) counts() []namedCount {
	return []namedCount{{"last", p.Last}, {"hourly", p.Hourly}, {"daily", p.Daily},
		{"weekly", p.Weekly}, {"monthly", p.Monthly}, {"yearly", p.Yearly}}
}

type namedWithin struct {
	flag, period string
	d            Duration
}

func (p Policy) withins() []namedWithin {
	return []namedWithin{{"keep-within", "", p.Within}, {"keep-within-hourly", "hourly", p.WithinHourly},
		{"keep-within-daily", "daily", p.WithinDaily}, {"keep-within-weekly", "weekly", p.WithinWeekly},
		{"keep-within-monthly", "monthly", p.WithinMonthly}, {"keep-within-yearly", "yearly", p.WithinYearly}}
}

// String describes the policy in words, e.g. "keep 7 daily, 4 weekly
// snapshots and all snapshots within 2d of the newest".
func (p Policy) String() string {
	var counts, within, rest []string
	for _, c := range p.counts() {
		name := c.name
		if name == "last" {
			name = "latest"
		}
		switch {
		case c.n == Unlimited:
			counts = append(counts, "all "+name)
		case c.n > 0:
			counts = append(counts, fmt.Sprintf("%d %s", c.n, name))
		}
	}
	for _, w := range p.withins()[1:] {
		if !w.d.IsZero() {
			within = append(within, fmt.Sprintf("%s snapshots within %s", w.period, w.d))
		}
	}
	var s string
	if len(counts) > 0 {
		s = strings.Join(counts, ", ") + " snapshots"
	}
	if len(within) > 0 {
		if s != "" {
			s += ", "
		}
		s += strings.Join(within, ", ")
	}
	if len(p.Tags) > 0 {
		rest = append(rest, fmt.Sprintf("all snapshots with tags %v", p.Tags))
	}
	if !p.Within.IsZero() {
		rest = append(rest, fmt.Sprintf("all snapshots within %s of the newest", p.Within))
	}
	for _, r := range rest {
		if s != "" {
			s += " and "
		}
		s += r
	}
	if s == "" {
		return "remove everything"
	}
	return "keep " + s
}

// Kept is a snapshot the policy keeps and the rules that keep it, in
// restic's words ("daily snapshot", "oldest monthly snapshot", "within
// 1y", "has tags [a]").
type Kept struct {
	Snapshot
	Reasons []string
}

// period keys: a snapshot's hour, day, ISO week, month or year in its zone.
type periodFunc func(t time.Time, nr int) int

func hourOf(t time.Time, _ int) int {
	return t.Year()*1000000 + int(t.Month())*10000 + t.Day()*100 + t.Hour()
}
func dayOf(t time.Time, _ int) int   { return t.Year()*10000 + int(t.Month())*100 + t.Day() }
func monthOf(t time.Time, _ int) int { return t.Year()*100 + int(t.Month()) }
func yearOf(t time.Time, _ int) int  { return t.Year() }
func weekOf(t time.Time, _ int) int {
	y, w := t.ISOWeek()
	return y*100 + w
}

// eachOne makes every snapshot a period of its own (--keep-last).
func eachOne(_ time.Time, nr int) int { return nr }

// SortNewestFirst orders snapshots newest first; snapshots of the same
// moment keep their order (restic leaves that order to chance: give the
// list in a fixed order, e.g. by id, for a stable result).
func SortNewestFirst(list []Snapshot) {
	sort.SliceStable(list, func(i, j int) bool { return list[i].Time.After(list[j].Time) })
}

// Apply decides for one group. It returns the kept snapshots with their
// reasons and the removed ones, both newest first. now bounds --keep-within:
// the window ends at the newest snapshot that is not after now.
func Apply(group []Snapshot, p Policy, now time.Time) (keep []Kept, remove []Snapshot) {
	list := append([]Snapshot(nil), group...)
	SortNewestFirst(list)
	if len(list) == 0 {
		return nil, nil
	}
	type counter struct {
		left   int // counts left; Unlimited never runs out
		period periodFunc
		last   int // the period of the last snapshot kept by this rule
		reason string
	}
	counters := []*counter{
		{p.Last, eachOne, -1, "last snapshot"},
		{p.Hourly, hourOf, -1, "hourly snapshot"},
		{p.Daily, dayOf, -1, "daily snapshot"},
		{p.Weekly, weekOf, -1, "weekly snapshot"},
		{p.Monthly, monthOf, -1, "monthly snapshot"},
		{p.Yearly, yearOf, -1, "yearly snapshot"},
	}
	type window struct {
		d      Duration
		period periodFunc
		last   int
		reason string
	}
	windows := []*window{
		{p.WithinHourly, hourOf, -1, "hourly within"},
		{p.WithinDaily, dayOf, -1, "daily within"},
		{p.WithinWeekly, weekOf, -1, "weekly within"},
		{p.WithinMonthly, monthOf, -1, "monthly within"},
		{p.WithinYearly, yearOf, -1, "yearly within"},
	}
	// the newest snapshot not in the future; the zero time when every
	// snapshot is in the future (then every window holds everything)
	var newest time.Time
	for _, s := range list {
		if s.Time.After(newest) && s.Time.Before(now) {
			newest = s.Time
		}
	}
	oldest := len(list) - 1
	for nr, s := range list {
		var reasons []string
		for _, l := range p.Tags {
			if l.matches(s.Tags) {
				reasons = append(reasons, fmt.Sprintf("has tags %v", l))
			}
		}
		if !p.Within.IsZero() && s.Time.After(p.Within.before(newest)) {
			reasons = append(reasons, fmt.Sprintf("within %s", p.Within))
		}
		for _, c := range counters {
			if c.left == 0 {
				continue
			}
			per := c.period(s.Time, nr)
			if per == c.last && nr != oldest {
				continue
			}
			reason := c.reason
			if per == c.last { // the oldest, kept while counts are left
				reason = "oldest " + reason
			}
			c.last = per
			if c.left > 0 {
				c.left--
			}
			reasons = append(reasons, reason)
		}
		for _, w := range windows {
			if w.d.IsZero() || !s.Time.After(w.d.before(newest)) {
				continue
			}
			per := w.period(s.Time, nr)
			if per == w.last && nr != oldest {
				continue
			}
			reason := w.reason
			if per == w.last {
				reason = "oldest " + reason
			}
			w.last = per
			reasons = append(reasons, fmt.Sprintf("%s %s", reason, w.d))
		}
		if len(reasons) > 0 {
			keep = append(keep, Kept{Snapshot: s, Reasons: reasons})
		} else {
			remove = append(remove, s)
		}
	}
	return keep, remove
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Errors Plan returns; nothing is to be removed when it returns one.
var (
	ErrEmptyPolicy = errors.New("no policy was given, so no snapshot is removed: give at least one --keep-* rule")
	ErrNoMatch     = errors.New("no snapshot matches the filter, so none is removed")
)
