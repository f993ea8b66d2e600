package filter

import (
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
)

func TestPatterns(t *testing.T) {
	cases := []struct {
		pat   string
		path  string
		isDir bool
		want  bool
	}{
		{"*.tmp", "/srv/a/b.tmp", false, true},
		{"*.tmp", "/srv/a/b.tmpx", false, false},
		{"cache", "/srv/app/cache", true, true},
		{"cache/", "/srv/app/cache", false, false},
		{"cache/", "/srv/app/cache", true, true},
		{"/srv/app/logs", "/srv/app/logs", true, true},
		{"/srv/app/logs", "/other/srv/app/logs", true, false},
		{"app/logs", "/other/srv/app/logs", true, true},
		{"/srv/**/x.db", "/srv/a/b/c/x.db", false, true},
		{"/srv/**/x.db", "/srv/x.db", false, true},
		{"/srv/**/x.db", "/var/x.db", false, false},
		{"[ab]?.c", "/q/a1.c", false, true},
	}
	for _, c := range cases {
		p, err := Compile(c.pat)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Match(c.path, c.isDir); got != c.want {
			t.Errorf("%q ~ %q (dir %v) = %v, want %v", c.pat, c.path, c.isDir, got, c.want)
		}
	}
	if _, err := Compile("[a"); err == nil {
		t.Error("bad pattern accepted")
	}
}

func TestSelector(t *testing.T) {
	inc, _ := CompileAll([]string{"/data/keep"})
	exc, _ := CompileAll([]string{"*.log"})
	s := &Selector{Include: inc, Exclude: exc}
	if take, desc := s.Select("/data", true, false); take || !desc {
		t.Errorf("/data: take %v descend %v", take, desc)
	}
	if take, desc := s.Select("/data/keep", true, false); !take || !desc {
		t.Errorf("/data/keep: take %v descend %v", take, desc)
	}
	if take, _ := s.Select("/data/keep/x.log", false, true); take {
		t.Error("excluded file taken")
	}
	if take, desc := s.Select("/data/other", true, false); take || desc {
		t.Errorf("/data/other: take %v descend %v", take, desc)
	}
}

func TestWindowsRules(t *testing.T) {
	for _, tc := range []struct {
		pat   string
		path  string
		isDir bool
		want  bool
	}{
		{`*.tmp`, "/C/data/X.TMP", false, true},
		{`*.TMP`, "/C/data/x.tmp", false, true},
		{`Cache\`, "/C/data/cache", true, true},
		{`Cache\`, "/C/data/cache", false, false},
		{`C:\Data\Cache`, "/C/data/cache", true, true},
		{`c:/data/cache`, "/C/DATA/CACHE/x", false, false}, // Excluded checks the path itself; callers skip the directory
		{`c:/data/cache`, "/C/DATA/CACHE", true, true},
		{`C:\data\cache`, "/D/data/cache", true, false},
		{`data\**\*.log`, "/C/Data/a/b/X.LOG", false, true},
		{`\\srv\share\tmp`, "/UNC/SRV/Share/tmp", true, true},
		{`[a-c]*.bin`, "/C/B1.BIN", false, true},
	} {
		p, err := CompileFor(pathmap.Windows, tc.pat)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Match(tc.path, tc.isDir); got != tc.want {
			t.Errorf("%q.Match(%q, %v) = %v", tc.pat, tc.path, tc.isDir, got)
		}
	}
	// Unix rules keep case and backslashes
	p, _ := Compile("*.tmp")
	if p.Match("/srv/X.TMP", false) {
		t.Error("Unix patterns are case-sensitive")
	}
	// an include under Windows rules leads into the directories on its way
	inc, _ := CompileAllFor(pathmap.Windows, []string{`C:\Data\Sub`})
	sel := Selector{Include: inc}
	if take, descend := sel.Select("/C/data", true, false); take || !descend {
		t.Errorf("Select on the way = %v, %v", take, descend)
	}
	if take, _ := sel.Select("/C/DATA/sub", true, false); !take {
		t.Error("Select of the include itself")
	}
	if take, descend := sel.Select("/D", true, false); take || descend {
		t.Error("Select elsewhere")
	}
	sc := Scoped{{Root: "/C/Data", Set: mustSet(t, pathmap.Windows, "*.tmp"), Rules: pathmap.Windows}}
	if !sc.Excluded("/C/data/x.TMP", false) || sc.Excluded("/D/data/x.tmp", false) {
		t.Error("Scoped under Windows rules")
	}
}

func mustSet(t *testing.T, r pathmap.Rules, pats ...string) Set {
	t.Helper()
	s, err := CompileAllFor(r, pats)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
