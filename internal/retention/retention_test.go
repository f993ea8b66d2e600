package retention

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]Duration{
		"":         {},
		"1y2m3d4h": {1, 2, 3, 4},
		" 36h ":    {Hours: 36},
		"4h3d":     {Days: 3, Hours: 4},
		"1d2d":     {Days: 2}, // the last number of a unit wins, as in restic
		"-2d":      {Days: -2},
		"10y":      {Years: 10},
		"0d":       {},
		"100m":     {Months: 100},
	} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
		if back, err := ParseDuration(got.String()); err != nil || back != got {
			t.Errorf("ParseDuration(%q.String()=%q) = %v, %v", in, got.String(), back, err)
		}
	}
	for _, in := range []string{"1", "d", "1w", "1y2", "1.5d", "--1d", "99999999999999999999d"} {
		if d, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, d)
		}
	}
}

func TestParseCount(t *testing.T) {
	for in, want := range map[string]int{"0": 0, "7": 7, "unlimited": Unlimited} {
		if got, err := ParseCount(in); err != nil || got != want {
			t.Errorf("ParseCount(%q) = %d, %v", in, got, err)
		}
	}
	for _, in := range []string{"-1", "-2", "x", "", "1.5", "Unlimited"} {
		if _, err := ParseCount(in); err == nil {
			t.Errorf("ParseCount(%q): no error", in)
		}
	}
	if _, err := ParseCount("-1"); !errors.Is(err, ErrNegativeCount) {
		t.Errorf("ParseCount(-1): %v", err)
	}
}

func TestParseGroupBy(t *testing.T) {
	for in, want := range map[string]GroupBy{"": {}, "host": {Host: true}, "hosts,paths": {true, true, false}, "tag,path,host": {true, true, true}} {
		if got, err := ParseGroupBy(in); err != nil || got != want {
			t.Errorf("ParseGroupBy(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseGroupBy("host,user"); err == nil {
		t.Error("ParseGroupBy(host,user): no error")
	}
}

// at parses "2006-01-02 15:04" in zone.
func at(t *testing.T, zone, s string) time.Time {
	t.Helper()
	loc, err := time.LoadLocation(zone)
	if err != nil {
		t.Fatal(err)
	}
	tm, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func snaps(t *testing.T, zone string, times ...string) []Snapshot {
	var out []Snapshot
	for i, s := range times {
		out = append(out, Snapshot{ID: fmt.Sprintf("s%02d", i), Time: at(t, zone, s), Host: "h", Paths: []string{"/p"}})
	}
	return out
}

func kept(keep []Kept) string {
	var ids []string
	for _, k := range keep {
		ids = append(ids, k.ID+"("+strings.Join(k.Reasons, "+")+")")
	}
	return strings.Join(ids, " ")
}

var future = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)

func TestApply(t *testing.T) {
	day := snaps(t, "UTC",
		"2025-01-01 10:00", "2025-01-01 12:00", // s00 s01
		"2025-01-02 09:00", "2025-01-02 18:00", // s02 s03
		"2025-01-03 08:00", // s04
	)
	cases := []struct {
		name string
		in   []Snapshot
		p    Policy
		want string
	}{
		{"last 2", day, Policy{Last: 2}, "s04(last snapshot) s03(last snapshot)"},
		{"daily newest of each day", day, Policy{Daily: 2}, "s04(daily snapshot) s03(daily snapshot)"},
		// counts left at the oldest snapshot: it is kept too
		{"daily with counts left keeps the oldest", day, Policy{Daily: 10},
			"s04(daily snapshot) s03(daily snapshot) s01(daily snapshot) s00(oldest daily snapshot)"},
		{"unlimited daily", day, Policy{Daily: Unlimited},
			"s04(daily snapshot) s03(daily snapshot) s01(daily snapshot) s00(oldest daily snapshot)"},
		{"last unlimited", day[:2], Policy{Last: Unlimited}, "s01(last snapshot) s00(last snapshot)"},
		{"within 1d of the newest", day, Policy{Within: Duration{Days: 1}}, "s04(within 1d) s03(within 1d) s02(within 1d)"},
		{"within-daily", day, Policy{WithinDaily: Duration{Days: 1, Hours: 1}}, "s04(daily within 1d1h) s03(daily within 1d1h)"},
		{"within-daily reaching the oldest", day, Policy{WithinDaily: Duration{Years: 1}},
			"s04(daily within 1y) s03(daily within 1y) s01(daily within 1y) s00(oldest daily within 1y)"},
		{"two rules", day, Policy{Last: 1, Daily: 2}, "s04(last snapshot+daily snapshot) s03(daily snapshot)"},
	}
	for _, c := range cases {
		keep, remove := Apply(c.in, c.p, future)
		if got := kept(keep); got != c.want {
			t.Errorf("%s: kept %s\n want %s", c.name, got, c.want)
		}
		if len(keep)+len(remove) != len(c.in) {
			t.Errorf("%s: %d kept + %d removed of %d", c.name, len(keep), len(remove), len(c.in))
		}
	}
}

func TestApplyPeriodsInTheStoredZone(t *testing.T) {
	// 23:30 and 00:30 in Berlin summer time are one UTC day, two Berlin days
	in := snaps(t, "Europe/Berlin", "2025-06-01 23:30", "2025-06-02 00:30")
	if keep, _ := Apply(in, Policy{Daily: 1}, future); len(keep) != 1 {
		t.Fatalf("daily 1: %s", kept(keep))
	}
	keep, _ := Apply(in, Policy{Daily: 2}, future)
	if got := kept(keep); got != "s01(daily snapshot) s00(daily snapshot)" {
		t.Errorf("daily 2 in Berlin: %s", got)
	}
	utc := []Snapshot{{ID: "a", Time: in[0].Time.UTC()}, {ID: "b", Time: in[1].Time.UTC()}}
	keep, _ = Apply(utc, Policy{Daily: 2}, future)
	if got := kept(keep); got != "b(daily snapshot) a(oldest daily snapshot)" {
		t.Errorf("daily 2 in UTC: %s", got)
	}
}

func TestApplyISOWeeks(t *testing.T) {
	// Monday 2024-12-30 and Thursday 2025-01-02 are both in week 2025-W01;
	// Sunday 2024-12-29 is in 2024-W52
	in := snaps(t, "UTC", "2024-12-29 12:00", "2024-12-30 12:00", "2025-01-02 12:00")
	keep, _ := Apply(in, Policy{Weekly: 2}, future)
	if got := kept(keep); got != "s02(weekly snapshot) s00(weekly snapshot)" {
		t.Errorf("weekly 2: %s", got)
	}
}

func TestApplyWithinIgnoresFutureSnapshots(t *testing.T) {
	in := snaps(t, "UTC", "2025-01-01 00:00", "2025-01-05 00:00", "2025-03-01 00:00")
	now := at(t, "UTC", "2025-01-06 00:00")
	keep, _ := Apply(in, Policy{Within: Duration{Days: 2}}, now)
	// the window ends at 01-05 (03-01 is in the future), and the future
	// snapshot is after its start
	if got := kept(keep); got != "s02(within 2d) s01(within 2d)" {
		t.Errorf("within 2d: %s", got)
	}
}

func TestApplyTags(t *testing.T) {
	in := snaps(t, "UTC", "2025-01-01 00:00", "2025-01-02 00:00", "2025-01-03 00:00", "2025-01-04 00:00")
	in[0].Tags = []string{"a", "b"}
	in[1].Tags = []string{"a"}
	in[2].Tags = nil
	in[3].Tags = []string{"c"}
	cases := map[string]struct {
		tags []TagList
		want string
	}{
		"a":        {[]TagList{{"a"}}, "s01(has tags [a]) s00(has tags [a])"},
		"a,b":      {[]TagList{ParseTagList("a, b")}, "s00(has tags [a, b])"},
		"c or b":   {[]TagList{{"c"}, {"b"}}, "s03(has tags [c]) s00(has tags [b])"},
		"untagged": {[]TagList{ParseTagList("")}, "s02(has tags [])"},
	}
	for name, c := range cases {
		keep, _ := Apply(in, Policy{Tags: c.tags}, future)
		if got := kept(keep); got != c.want {
			t.Errorf("%s: %s, want %s", name, got, c.want)
		}
	}
}

func TestPlan(t *testing.T) {
	in := snaps(t, "UTC", "2025-01-01 00:00", "2025-01-02 00:00", "2025-01-03 00:00", "2025-01-04 00:00")
	in[0].Host, in[1].Host = "b", "b"
	in[2].Paths = []string{"/q", "/p"}
	in[3].Tags = []string{"x"}

	groups, err := Plan(in, Options{Policy: Policy{Last: 1}, GroupBy: DefaultGroupBy})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, g := range groups {
		got = append(got, fmt.Sprintf("%s: %s / %d", g.Key, kept(g.Keep), len(g.Remove)))
	}
	want := []string{"host b; paths /p: s01(last snapshot) / 1", "host h; paths /p, /q: s02(last snapshot) / 0", "host h; paths /p: s03(last snapshot) / 0"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("groups:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	groups, err = Plan(in, Options{Policy: Policy{Last: 1}, GroupBy: GroupBy{}, Filter: Filter{Hosts: []string{"h"}}})
	if err != nil || len(groups) != 1 || len(groups[0].Keep) != 1 || len(groups[0].Remove) != 1 {
		t.Errorf("one group, host h: %+v, %v", groups, err)
	}

	if _, err := Plan(in, Options{}); !errors.Is(err, ErrEmptyPolicy) {
		t.Errorf("empty policy: %v", err)
	}
	if _, err := Plan(in, Options{Policy: Policy{Last: 0, Daily: 0}}); !errors.Is(err, ErrEmptyPolicy) {
		t.Errorf("zero counts: %v", err)
	}
	if _, err := Plan(in, Options{Policy: Policy{Last: 1}, Filter: Filter{Tags: []TagList{{"nope"}}}}); !errors.Is(err, ErrNoMatch) {
		t.Errorf("filter matching nothing: %v", err)
	}
	var kn *KeepsNothingError
	if _, err := Plan(in, Options{Policy: Policy{Tags: []TagList{{"x"}}}, GroupBy: DefaultGroupBy}); !errors.As(err, &kn) {
		t.Errorf("keep-tag that empties a group: %v", err)
	} else if !strings.Contains(err.Error(), "host b") {
		t.Errorf("message does not name the group: %v", err)
	}
	if _, err := Plan(in, Options{Policy: Policy{Last: -2}}); err == nil {
		t.Error("count -2: no error")
	}
	if _, err := Plan(in, Options{Policy: Policy{Within: Duration{Days: -1}}}); err == nil {
		t.Error("negative duration: no error")
	}
	// no snapshots and no filter: nothing to do, not an error
	if g, err := Plan(nil, Options{Policy: Policy{Last: 1}}); err != nil || len(g) != 0 {
		t.Errorf("no snapshots: %v, %v", g, err)
	}
}

func TestPolicyString(t *testing.T) {
	p := Policy{Last: 2, Daily: Unlimited, WithinWeekly: Duration{Months: 1}, Tags: []TagList{{"a", "b"}}, Within: Duration{Days: 3}}
	want := "keep 2 latest, all daily snapshots, weekly snapshots within 1m and all snapshots with tags [[a, b]] and all snapshots within 3d of the newest"
	if got := p.String(); got != want {
		t.Errorf("String:\n%s\nwant\n%s", got, want)
	}
}

// Windows paths name one place whatever their case: the snapshots of
// C:\Data and c:\data\ are one group, and --path finds both.
func TestPlanWindowsPathsIgnoreCase(t *testing.T) {
	in := snaps(t, "UTC", "2025-01-01 00:00", "2025-01-02 00:00", "2025-01-03 00:00")
	in[0].Paths = []string{`C:\Data`, `D:\mail`}
	in[1].Paths = []string{`d:\Mail`, `c:\data\`}
	in[2].Paths = []string{`C:\Other`}
	groups, err := Plan(in, Options{Policy: Policy{Last: 1}, GroupBy: DefaultGroupBy})
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 2 {
		t.Fatalf("%d groups, want 2: %+v", len(groups), groups)
	}
	for _, g := range groups {
		if len(g.Keep)+len(g.Remove) == 2 && (len(g.Keep) != 1 || g.Keep[0].ID != "s01") {
			t.Errorf("group %s keeps %s", g.Key, kept(g.Keep))
		}
	}
	groups, err = Plan(in, Options{Policy: Policy{Last: 5}, GroupBy: GroupBy{}, Filter: Filter{Paths: []string{`c:\DATA`}}})
	if err != nil || len(groups) != 1 || len(groups[0].Keep) != 2 {
		t.Errorf("--path c:\\DATA: %+v, %v", groups, err)
	}
	// Unix paths keep their case
	u := snaps(t, "UTC", "2025-01-01 00:00", "2025-01-02 00:00")
	u[1].Paths = []string{"/P"}
	if groups, err := Plan(u, Options{Policy: Policy{Last: 1}, GroupBy: DefaultGroupBy}); err != nil || len(groups) != 2 {
		t.Errorf("unix paths /p and /P: %d groups, %v", len(groups), err)
	}
}
