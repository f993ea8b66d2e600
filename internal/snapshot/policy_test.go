package snapshot

import (
	"path/filepath"
	"testing"
	"time"
)

func TestParsePolicy(t *testing.T) {
	for in, want := range map[string]Policy{"": Auto, "off": Off, "AUTO": Auto, " on ": On, "required": Required} {
		if got, err := ParsePolicy(in); err != nil || got != want {
			t.Errorf("ParsePolicy(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParsePolicy("yes"); err == nil {
		t.Error("ParsePolicy(yes) accepted")
	}
}

func TestWithin(t *testing.T) {
	sep := string(filepath.Separator)
	cases := []struct {
		p, prefix string
		want      bool
	}{
		{"/a/b", "/a", true}, {"/a", "/a", true}, {"/ab", "/a", false}, {"/a", "/a/b", false}, {"/x", sep, true},
	}
	for _, c := range cases {
		if got := within(filepath.FromSlash(c.p), filepath.FromSlash(c.prefix)); got != c.want {
			t.Errorf("within(%q, %q) = %v", c.p, c.prefix, got)
		}
	}
}

func TestLabelName(t *testing.T) {
	l := NewLabel("nightly run/1")
	pid, created, ok := parseName(l.Name())
	if !ok || pid != l.PID || !created.Equal(l.Created) || l.RunID != "nightly_run_1" {
		t.Fatalf("%s → %d %v %v", l.Name(), pid, created, ok)
	}
	if _, _, ok := parseName("photos-2024"); ok {
		t.Error("a foreign name parsed as ours")
	}
	if time.Since(l.Created) > time.Minute {
		t.Error("created")
	}
}
