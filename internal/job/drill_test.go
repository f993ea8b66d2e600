package job

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDrill(t *testing.T) {
	j, warns, err := Parse("job.yaml", []byte(nativeYAML(`sources: [/srv]
drill:
  level: restore
  scratch: /var/tmp
  read-back: 7
  verify:
    - sqlite: /srv/app/app.db
      query: "SELECT count(*) FROM accounts"
    - postgres: /srv/pg/data
      database: shop
      user: admin
      timeout: 2m
    - mariadb: /srv/mysql/data
    - git: /srv/repos
    - command: /usr/local/bin/check-app --quick
      path: /srv/app
`)))
	if err != nil || len(warns) > 0 {
		t.Fatalf("%v %v", err, warns)
	}
	d := DefaultDrillTimeout
	want := &Drill{Level: "restore", Scratch: native("/var/tmp"), ReadBack: 7, Verify: []Verifier{
		{Kind: "sqlite", Path: native("/srv/app/app.db"), Query: "SELECT count(*) FROM accounts", Timeout: d},
		{Kind: "postgres", Path: native("/srv/pg/data"), Database: "shop", User: "admin", Timeout: 2 * time.Minute},
		{Kind: "mysql", Path: native("/srv/mysql/data"), Timeout: d},
		{Kind: "git", Path: native("/srv/repos"), Timeout: d},
		{Kind: "command", Command: native("/usr/local/bin/check-app --quick"), Path: native("/srv/app"), Timeout: d},
	}}
	if !reflect.DeepEqual(j.Drill, want) {
		t.Errorf("got  %+v\nwant %+v", j.Drill, want)
	}
	if p, ok := j.Pos("drill.verify[3]"); !ok || p.Line != 14 {
		t.Errorf("position of drill.verify[3]: %v %v", p, ok)
	}

	// defaults: restore with verifiers, read without; ten drills read every pack
	j, _, err = Parse("job.yaml", []byte(nativeYAML("sources: [/srv]\ndrill: {verify: [{git: /srv/repos}]}\n")))
	if err != nil || j.Drill.Level != "restore" || j.Drill.ReadBack != DefaultReadBack {
		t.Errorf("defaults with verifiers: %+v, %v", j.Drill, err)
	}
	j, _, err = Parse("job.yaml", []byte(nativeYAML("sources: [/srv]\ndrill: {}\n")))
	if err != nil || j.Drill.Level != "read" {
		t.Errorf("defaults without verifiers: %+v, %v", j.Drill, err)
	}
	if j.Drill.Schedule != nil {
		t.Errorf("a drill without schedule: is scheduled: %v", j.Drill.Schedule)
	}
	j, _, err = Parse("job.yaml", []byte(nativeYAML("sources: [/srv]\ndrill:\n  level: read\n  schedule: \"0 4 * * 0\"\n")))
	if err != nil || j.Drill.Schedule == nil || j.Drill.Schedule.String() != "0 4 * * 0" {
		t.Fatalf("drill.schedule: %+v, %v", j.Drill, err)
	}
	if next := j.Drill.Schedule.Next(time.Date(2026, 3, 2, 9, 0, 0, 0, time.Local)); next.Weekday() != time.Sunday || next.Hour() != 4 {
		t.Errorf("the drill's next time %v, want a Sunday at 04:00", next)
	}
	if j, _, _ := Parse("job.yaml", []byte(nativeYAML("sources: [/srv]\n"))); j.Drill != nil {
		t.Errorf("no drill section: %+v", j.Drill)
	}
}

func TestDrillErrors(t *testing.T) {
	for _, c := range []struct {
		yaml string
		want []string // in the message, each
	}{
		{"drill: {level: resore}", []string{"job.yaml:2:16: drill.level: unknown value \"resore\"", `did you mean "restore"?`}},
		{"drill: {levels: read}", []string{`unknown key "levels"`, `did you mean "level"?`}},
		{"drill: {read-back: 0}", []string{"drill.read-back: read-back 0 is out of range"}},
		{"drill: {read-back: 300}", []string{"read-back 300 is out of range", "to 256"}},
		{"drill: {scratch: tmp}", []string{`the scratch directory "tmp" is relative`}},
		{"drill: {scratch: /srv/tmp}", []string{"inside a source"}},
		{"drill: {verify: {sqlite: /srv/a.db}}", []string{"drill.verify: must be a list"}},
		{"drill:\n  verify:\n    - query: SELECT 1", []string{"job.yaml:4:7: drill.verify[0]: the verifier has no kind", "start the entry with one of: sqlite"}},
		{"drill:\n  verify:\n    - sqlite: /srv/a.db\n      git: /srv/r", []string{"one entry names two verifiers"}},
		{"drill:\n  verify:\n    - sqlite: app.db", []string{`job.yaml:4:15: drill.verify[0].sqlite: the path "app.db" is not absolute`, "e.g. /srv/app/app.db"}},
		{"drill:\n  verify:\n    - git: /srv/r\n      query: x", []string{"job.yaml:5:7: drill.verify[0].query: the git verifier takes no query"}},
		{"drill:\n  verify:\n    - sqlite: /srv/a.db\n      user: x", []string{"the sqlite verifier takes no user", "user is for the postgres verifiers"}},
		{"drill:\n  verify:\n    - sqlite: /srv/a.db\n      timeout: 30", []string{"the duration 30 has no unit"}},
		{"drill:\n  verify:\n    - sqlite: /srv/a.db\n      timeout: 0", []string{"drill.verify[0].timeout: the timeout must be more than 0"}},
		{"drill:\n  verify:\n    - command: ''", []string{"drill.verify[0].command: the command is empty"}},
		{"drill:\n  verify:\n    - command: check\n      path: rel", []string{`drill.verify[0].path: the path "rel" is not absolute`}},
		{"drill:\n  verify:\n    - sqlite: [a]", []string{"drill.verify[0].sqlite: must be a text value"}},
		{"drill:\n  schedule: every banana", []string{"job.yaml:3:13: drill.schedule:", `e.g. "0 4 * * 0"`}},
		{"drill:\n  schedule: \"0 4 * *\"", []string{"job.yaml:3:13: drill.schedule: \"0 4 * *\" is not a cron schedule"}},
		{"drill: {schedule: [weekly]}", []string{"drill.schedule: must be a text value, not a list"}},
	} {
		_, _, err := Parse("job.yaml", []byte(nativeYAML("sources: [/srv]\n"+c.yaml+"\n")))
		if err == nil {
			t.Errorf("%q: no error", c.yaml)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error %q lacks %q", c.yaml, err, w)
			}
		}
	}
}

func TestDrillWarnings(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"drill:\n  verify:\n    - sqlite: /elsewhere/a.db", "drill.verify[0].sqlite: /elsewhere/a.db is not under any source"},
		{"drill:\n  level: read\n  verify:\n    - git: /srv/r", "the verifiers run only at level restore"},
	} {
		_, warns, err := Parse("job.yaml", []byte(nativeYAML("sources: [/srv]\n"+c.yaml+"\n")))
		if err != nil {
			t.Errorf("%q: %v", c.yaml, err)
			continue
		}
		var all []string
		for _, w := range warns {
			all = append(all, w.String())
		}
		if !strings.Contains(strings.Join(all, "\n"), native(c.want)) {
			t.Errorf("%q: warnings %q lack %q", c.yaml, all, native(c.want))
		}
	}
}
