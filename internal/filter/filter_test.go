package filter

import "testing"

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
