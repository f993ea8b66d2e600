package schedule

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule is when a job runs.
type Schedule interface {
	// Next returns the first scheduled time strictly after after.
	Next(after time.Time) time.Time
	// String returns the specification it was parsed from.
	String() string
}

// MinInterval is the shortest interval Parse accepts for "every D".
const MinInterval = time.Second

// cronParser reads the five crontab fields and the @ descriptors; there
// is no seconds field, so "0 2 * * *" means what it means in a crontab
// (sub-minute schedules are written "every 30s").
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Parse reads a schedule: five cron fields ("0 2 * * *", "*/15 8-18 * *
// mon-fri"), a descriptor (@hourly, @daily or @midnight, @weekly,
// @monthly, @yearly or @annually), optionally preceded by
// "CRON_TZ=Europe/Berlin " (else local time), or an interval: "every 6h",
// "every 90s", "every 1d12h" (d is 24 hours), also written "@every 6h".
func Parse(spec string) (Schedule, error) {
	s := strings.TrimSpace(spec)
	if s == "" {
		return nil, errors.New("the schedule is empty")
	}
	if rest, ok := cutWord(s, "every"); ok {
		return parseEvery(s, rest)
	}
	if rest, ok := cutWord(s, "@every"); ok {
		return parseEvery(s, rest)
	}
	body := s
	if strings.HasPrefix(body, "CRON_TZ=") || strings.HasPrefix(body, "TZ=") {
		_, body, _ = strings.Cut(body, " ")
	}
	if f := strings.Fields(body); len(f) == 6 || len(f) == 7 {
		return nil, fmt.Errorf("%q has %d fields; a cron schedule has 5 (minute hour day-of-month month day-of-week) and no seconds field: for less than a minute write e.g. every 30s", s, len(f))
	}
	c, err := cronParser.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not a cron schedule: %v", s, err)
	}
	sched := &Cron{spec: s, sched: c}
	if sched.Next(time.Now()).IsZero() {
		return nil, fmt.Errorf("%q never matches a date (e.g. February 30)", s)
	}
	return sched, nil
}

// cutWord returns what follows word and a space at the start of s.
func cutWord(s, word string) (string, bool) {
	if len(s) > len(word) && strings.EqualFold(s[:len(word)], word) && (s[len(word)] == ' ' || s[len(word)] == '\t') {
		return strings.TrimSpace(s[len(word):]), true
	}
	return "", false
}

var days = regexp.MustCompile(`^(\d+)d`)

func parseEvery(spec, d string) (Schedule, error) {
	every, err := ParseDuration(d)
	if err != nil {
		return nil, fmt.Errorf("%q: %v", spec, err)
	}
	if every < MinInterval {
		return nil, fmt.Errorf("%q: the interval must be at least %v", spec, MinInterval)
	}
	return Interval{Every: every, spec: spec}, nil
}

// ParseDuration reads a Go duration ("90s", "1h30m") that may start with
// a number of days ("1d", "2d12h"; a day is 24 hours).
func ParseDuration(s string) (time.Duration, error) {
	var total time.Duration
	if m := days.FindStringSubmatch(s); m != nil {
		n, err := strconv.Atoi(m[1])
		if err != nil || n > 100000 {
			return 0, fmt.Errorf("%q is not a duration", s)
		}
		total = time.Duration(n) * 24 * time.Hour
		s = s[len(m[0]):]
		if s == "" {
			return total, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration; write e.g. 30s, 15m, 6h or 1d", s)
	}
	return total + d, nil
}

// Cron is a crontab schedule.
type Cron struct {
	spec  string
	sched cron.Schedule
}

// Next returns the first matching time after after, in the schedule's
// time zone. As in Vixie cron, a time of day that a daylight-saving
// change skips (02:30 when clocks go from 02:00 to 03:00) runs at the
// change, and one it repeats runs the first time only.
func (c *Cron) Next(after time.Time) time.Time {
	t := c.sched.Next(after)
	if t.IsZero() {
		return t
	}
	if gap, ok := c.skipped(after, t); ok {
		return gap
	}
	if repeated(t) {
		return c.Next(t)
	}
	return t
}

// skipped returns the moment of a daylight-saving change between after
// and t that skipped a matching time of day.
func (c *Cron) skipped(after, t time.Time) (time.Time, bool) {
	spec, ok := c.sched.(*cron.SpecSchedule)
	if !ok {
		return time.Time{}, false
	}
	local := after.In(spec.Location)
	_, change := local.ZoneBounds()
	if change.IsZero() || !change.Before(t) {
		return time.Time{}, false
	}
	_, before := local.Zone()
	_, afterChange := change.Zone()
	if afterChange <= before {
		return time.Time{}, false // clocks went back: nothing skipped
	}
	shift := time.Duration(afterChange-before) * time.Second
	if t.Sub(change) < shift {
		return time.Time{}, false // a schedule this frequent just goes on after the change
	}
	// read the wall clock as if the change had not happened
	old := *spec
	old.Location = time.FixedZone("", before)
	if m := old.Next(change.Add(-time.Nanosecond)); !m.IsZero() && m.Before(change.Add(shift)) {
		return change.In(spec.Location), true
	}
	return time.Time{}, false
}

// repeated tells whether t's wall-clock reading already occurred earlier
// that night, before the clocks went back.
func repeated(t time.Time) bool {
	_, off := t.Zone()
	for _, back := range []time.Duration{30 * time.Minute, time.Hour, 2 * time.Hour} {
		p := t.Add(-back)
		if _, po := p.Zone(); po != off && sameWall(p, t) {
			return true
		}
	}
	return false
}

func sameWall(a, b time.Time) bool {
	ay, am, ad := a.Date()
	by, bm, bd := b.Date()
	return ay == by && am == bm && ad == bd && a.Hour() == b.Hour() && a.Minute() == b.Minute() && a.Second() == b.Second()
}

func (c *Cron) String() string { return c.spec }

// Interval runs a job every Every, counted from the scheduled time of its
// previous run.
type Interval struct {
	Every time.Duration
	spec  string
}

// Next returns after+Every.
func (i Interval) Next(after time.Time) time.Time { return after.Add(i.Every) }

func (i Interval) String() string {
	if i.spec != "" {
		return i.spec
	}
	return "every " + i.Every.String()
}

// Shortest returns the shortest gap between consecutive scheduled times
// in the year after from (an Interval's Every): jitter must stay below it.
func Shortest(s Schedule, from time.Time) time.Duration {
	if i, ok := s.(Interval); ok {
		return i.Every
	}
	end := from.AddDate(1, 0, 0)
	prev := s.Next(from)
	shortest := time.Duration(0)
	// a minute-by-minute schedule has its answer after two times; the
	// bound keeps "* * * * *" from walking the whole year
	for n := 0; n < 2000 && !prev.IsZero() && prev.Before(end); n++ {
		t := s.Next(prev)
		if t.IsZero() {
			break
		}
		if gap := t.Sub(prev); shortest == 0 || gap < shortest {
			shortest = gap
		}
		if shortest == time.Minute {
			break
		}
		prev = t
	}
	return shortest
}
