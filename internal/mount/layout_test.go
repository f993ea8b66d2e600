package mount

import (
	"slices"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

func snap(id byte, t time.Time, host string, tags ...string) *repo.Snapshot {
	s := &repo.Snapshot{Time: t, Host: host, Tags: tags}
	s.ID[0] = id
	s.ID[31] = id
	return s
}

func TestLayoutNamesAndGroups(t *testing.T) {
	zone := time.FixedZone("", 2*3600)
	t0 := time.Date(2026, 3, 30, 3, 30, 0, 0, zone)
	a := snap(1, t0, "db1", "daily")
	b := snap(2, t0.Add(300*time.Millisecond), "db1") // the same second
	c := snap(3, t0.Add(time.Hour), "web/2", "daily", "daily")
	l := NewLayout([]*repo.Snapshot{a, b, c}, nil)

	for s, want := range map[*repo.Snapshot]string{a: "2026-03-30T03:30:00+02:00", b: "2026-03-30T03:30:00+02:00-1", c: "2026-03-30T04:30:00+02:00"} {
		if got := l.Name(s); got != want {
			t.Errorf("name %q, want %q", got, want)
		}
		if l.ByName(want) != s {
			t.Errorf("ByName(%q) is not its snapshot", want)
		}
	}
	if got := l.Hosts(); !slices.Equal(got, []string{"db1", "web_2"}) {
		t.Errorf("hosts %q", got)
	}
	if got := l.Host("db1"); !slices.Equal(got, []*repo.Snapshot{a, b}) {
		t.Errorf("host db1 has %d snapshots", len(got))
	}
	if got := l.Tag("daily"); !slices.Equal(got, []*repo.Snapshot{a, c}) {
		t.Errorf("tag daily has %d snapshots (a tag given twice counts once)", len(got))
	}
	if Latest(l.Snapshots) != c || Latest(l.Host("db1")) != b || Latest(nil) != nil {
		t.Error("latest is not the newest")
	}
	if l.ByShortID(b.ID.Short()) != b || len(l.ShortIDs()) != 3 {
		t.Errorf("short ids %q", l.ShortIDs())
	}
}

func TestLayoutKeepsNamesWhenSnapshotsComeAndGo(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := snap(5, t0.Add(500*time.Millisecond), "h")
	b := snap(6, t0.Add(900*time.Millisecond), "h")
	first := NewLayout([]*repo.Snapshot{a, b}, nil)
	// a new snapshot of the same second that sorts first, and a forgotten one
	c := snap(4, t0.Add(100*time.Millisecond), "h")
	next := NewLayout([]*repo.Snapshot{c, b}, first)
	if next.Name(b) != first.Name(b) {
		t.Errorf("b was renamed from %q to %q", first.Name(b), next.Name(b))
	}
	if next.Name(c) == next.Name(b) || next.Name(c) == "" {
		t.Errorf("c got %q beside b's %q", next.Name(c), next.Name(b))
	}
	if next.Name(a) != "" {
		t.Error("a forgotten snapshot still has a name")
	}
}

func TestLayoutSharedShortIDNamesNeither(t *testing.T) {
	a := snap(7, time.Unix(1, 0), "h")
	b := snap(7, time.Unix(2, 0), "h")
	b.ID[31] = 8 // same first four bytes
	l := NewLayout([]*repo.Snapshot{a, b}, nil)
	if l.ByShortID(a.ID.Short()) != nil || len(l.ShortIDs()) != 0 {
		t.Error("an ambiguous short id names a snapshot")
	}
}

func TestComponent(t *testing.T) {
	for in, want := range map[string]string{"a/b": "a_b", ".": "_", "..": "__", "x\x00": "x_", "ok": "ok"} {
		if got := Component(in); got != want {
			t.Errorf("Component(%q) = %q, want %q", in, got, want)
		}
	}
}
