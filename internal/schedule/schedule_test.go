package schedule

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	base := time.Date(2026, 5, 6, 10, 30, 0, 0, time.Local) // a Wednesday
	for _, c := range []struct {
		spec string
		next time.Time
	}{
		{"0 2 * * *", time.Date(2026, 5, 7, 2, 0, 0, 0, time.Local)},
		{"*/15 8-18 * * mon-fri", time.Date(2026, 5, 6, 10, 45, 0, 0, time.Local)},
		{"0 3 * * sun", time.Date(2026, 5, 10, 3, 0, 0, 0, time.Local)},
		{"@daily", time.Date(2026, 5, 7, 0, 0, 0, 0, time.Local)},
		{"@hourly", time.Date(2026, 5, 6, 11, 0, 0, 0, time.Local)},
		{"  @weekly ", time.Date(2026, 5, 10, 0, 0, 0, 0, time.Local)},
		{"every 6h", base.Add(6 * time.Hour)},
		{"every 90s", base.Add(90 * time.Second)},
		{"Every 1d12h", base.Add(36 * time.Hour)},
		{"@every 1s", base.Add(time.Second)},
	} {
		s, err := Parse(c.spec)
		if err != nil {
			t.Errorf("%q: %v", c.spec, err)
			continue
		}
		if got := s.Next(base); !got.Equal(c.next) {
			t.Errorf("%q: next after %v is %v, want %v", c.spec, base, got, c.next)
		}
		if s.String() != strings.TrimSpace(c.spec) {
			t.Errorf("%q: String() = %q", c.spec, s.String())
		}
	}

	utc, err := Parse("CRON_TZ=UTC 0 2 * * *")
	if err != nil {
		t.Fatal(err)
	}
	if got := utc.Next(time.Date(2026, 5, 6, 10, 0, 0, 0, time.UTC)); !got.Equal(time.Date(2026, 5, 7, 2, 0, 0, 0, time.UTC)) {
		t.Errorf("CRON_TZ=UTC: %v", got)
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ spec, want string }{
		{"", "empty"},
		{"0 0 2 * * *", "has 6 fields; a cron schedule has 5"},
		{"61 * * * *", "not a cron schedule"},
		{"0 2 * *", "not a cron schedule"},
		{"@fortnightly", "not a cron schedule"},
		{"0 0 30 2 *", "never matches a date"},
		{"every 500ms", "at least 1s"},
		{"every six hours", "not a duration"},
		{"every -5m", "not a duration"},
		{"every 2w", "not a duration"},
	} {
		_, err := Parse(c.spec)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.spec, err, c.want)
		}
	}
}

func TestCronDaylightSaving(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no time zone database:", err)
	}
	at := func(m time.Month, d, h, min int) time.Time { return time.Date(2026, m, d, h, min, 0, 0, berlin) }
	nexts := func(spec string, from time.Time, n int) []time.Time {
		s, err := Parse("CRON_TZ=Europe/Berlin " + spec)
		if err != nil {
			t.Fatal(err)
		}
		var out []time.Time
		for t := from; len(out) < n; {
			t = s.Next(t)
			out = append(out, t)
		}
		return out
	}
	// 29 March 2026: 02:00 CET becomes 03:00 CEST, so 02:30 does not exist
	// that day and the run happens at the change.
	got := nexts("30 2 * * *", at(3, 28, 12, 0), 3)
	want := []time.Time{at(3, 29, 3, 0), at(3, 30, 2, 30), at(3, 31, 2, 30)}
	for i := range want {
		if !got[i].Equal(want[i]) {
			t.Errorf("spring, run %d: %v, want %v", i, got[i], want[i])
		}
	}
	// an hourly schedule just goes on: no extra run at the change
	got = nexts("30 * * * *", at(3, 29, 1, 0), 2)
	if !got[0].Equal(at(3, 29, 1, 30)) || !got[1].Equal(at(3, 29, 3, 30)) {
		t.Errorf("spring, hourly: %v", got)
	}
	// 25 October 2026: 03:00 CEST becomes 02:00 CET, 02:30 happens twice
	// and runs once.
	got = nexts("30 2 * * *", at(10, 24, 12, 0), 2)
	if got[0].UTC() != time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC) || !got[1].Equal(at(10, 26, 2, 30)) {
		t.Errorf("autumn: %v", got)
	}
}

func TestShortest(t *testing.T) {
	from := time.Date(2026, 5, 6, 10, 30, 0, 0, time.UTC)
	for spec, want := range map[string]time.Duration{
		"every 6h":                    6 * time.Hour,
		"CRON_TZ=UTC 0 2 * * *":       24 * time.Hour,
		"CRON_TZ=UTC */15 8-18 * * *": 15 * time.Minute,
		"CRON_TZ=UTC 0 8,12 * * *":    4 * time.Hour,
		"* * * * *":                   time.Minute,
	} {
		s, err := Parse(spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := Shortest(s, from); got != want {
			t.Errorf("%s: %v, want %v", spec, got, want)
		}
	}
}

func TestOverdue(t *testing.T) {
	s, _ := Parse("every 1h")
	since := time.Date(2026, 5, 6, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		now  time.Duration
		want bool
	}{{30 * time.Minute, false}, {time.Hour + time.Minute, false}, {2*time.Hour + 4*time.Minute, false}, {2*time.Hour + 6*time.Minute, true}} {
		if got := Overdue(s, 5*time.Minute, since, since.Add(c.now)); got != c.want {
			t.Errorf("%v after the last success: overdue %v, want %v", c.now, got, c.want)
		}
	}
}
