package job

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/livefile"
	"github.com/stillpoint-backup/stillpoint/internal/quiesce"
)

const briefJob = `repository: /var/lib/stillpoint/repo     # or s3:… later; CLI --repo overrides
sources:
  - path: /srv/app
    snapshot: required                   # off | auto | on | required
    open-files: retry                     # read | retry | skip | stage
    retries: 5
    exclude: ["*.tmp", "cache/"]
quiesce:
  inactivity: 3s
  max-wait: 60s
writers:
  - sqlite: /srv/app/app.db
  - postgres: "host=127.0.0.1 port=5432 user=postgres"
  - mysql: "root@tcp(127.0.0.1:3306)/"
  - command: {freeze: "app-ctl pause", thaw: "app-ctl resume", timeout: 30s}
hooks:
  before-backup:  [{run: "app-ctl stop", timeout: 60s, essential: true}]
  after-snapshot: [{run: "app-ctl start"}]
  after-backup:   [{run: "notify-send done"}]
  on-error:       [{run: "notify-send failed"}]
`

func TestParseBriefShape(t *testing.T) {
	j, warns, err := Parse("job.yaml", []byte(nativeYAML(briefJob)))
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %v", warns)
	}
	want := &Job{
		File:       "job.yaml",
		Name:       "job", // after the file
		Repository: native("/var/lib/stillpoint/repo"),
		Sources:    []Source{{Path: native("/srv/app"), Snapshot: "required", OpenFiles: "retry", Retries: 5, Exclude: []string{"*.tmp", "cache/"}}},
		Quiesce:    Quiesce{Inactivity: 3 * time.Second, MaxWait: time.Minute, OnTimeout: "snap", HoldTimeout: 2 * time.Second},
		Writers: []WriterSpec{
			{Kind: "sqlite", Target: native("/srv/app/app.db"), OnTimeout: "snap"},
			{Kind: "postgres", Target: "host=127.0.0.1 port=5432 user=postgres", OnTimeout: "snap"},
			{Kind: "mysql", Target: "root@tcp(127.0.0.1:3306)/", OnTimeout: "snap"},
			{Kind: "command", Freeze: "app-ctl pause", Thaw: "app-ctl resume", Timeout: 30 * time.Second, OnTimeout: "snap"},
		},
		Hooks: quiesce.Hooks{
			quiesce.BeforeBackup:  {{Run: "app-ctl stop", Timeout: time.Minute, Essential: true}},
			quiesce.AfterSnapshot: {{Run: "app-ctl start"}},
			quiesce.AfterBackup:   {{Run: "notify-send done"}},
			quiesce.OnError:       {{Run: "notify-send failed"}},
		},
	}
	want.pos = j.pos
	if !reflect.DeepEqual(j, want) {
		t.Errorf("got  %+v\nwant %+v", j, want)
	}
	if p, ok := j.Pos("sources[0].retries"); !ok || p.Line != 6 {
		t.Errorf("position of sources[0].retries: %v %v", p, ok)
	}
}

func TestLoadDocumentedExample(t *testing.T) {
	path := filepath.Join("..", "..", "docs", "job-example.yaml")
	j, warns, err := loadNative(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("the documented example has warnings: %v", warns)
	}
	if len(j.Sources) != 3 || !reflect.DeepEqual(j.Sources[2], Source{Path: native("/etc"), Snapshot: "auto", OpenFiles: "retry", Retries: 3}) {
		t.Errorf("sources: %+v", j.Sources)
	}
	if j.Sources[1].OpenFiles != "stage" || j.Sources[1].Retries != 3 || j.Sources[0].Retries != 5 {
		t.Errorf("per-source settings: %+v", j.Sources)
	}
	if j.Writers[1].Timeout != 20*time.Second || len(j.Writers) != 4 {
		t.Errorf("writers: %+v", j.Writers)
	}
	if j.Writers[0].OnTimeout != "snap" || j.Writers[1].OnTimeout != "fail" || j.Writers[3].OnTimeout != "snap" {
		t.Errorf("writers' on-timeout: %+v", j.Writers)
	}
	if q := j.Quiesce; q.Hold != "writers" || q.HoldTimeout != 2*time.Second || !reflect.DeepEqual(q.HoldExclude, []string{"backup-agent", native("/usr/sbin/auditd")}) {
		t.Errorf("hold: %+v", q)
	}
	if h := j.Hooks[quiesce.BeforeSnapshot]; len(h) != 1 || !reflect.DeepEqual(h[0].Argv, []string{native("/usr/bin/sync")}) {
		t.Errorf("argv hook: %+v", h)
	}
	if j.Host != "web-1" || j.Compression != "fastest" || len(j.Tags) != 2 || len(j.Exclude) != 2 {
		t.Errorf("top level: %+v", j)
	}
	// Every key of the documentation appears in the example.
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "job.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range slices.Concat(topKeys, sourceKeys, quiesceKeys, hookKeys, commandKeys, writerKeys) {
		if !strings.Contains(string(doc), "`"+k+"`") && !strings.Contains(string(doc), "`"+k+":") {
			t.Errorf("docs/job.md does not document the key %q", k)
		}
	}
}

func TestOpenFileModesMatchLivefile(t *testing.T) {
	for _, m := range OpenFileModes {
		if s, err := livefile.ParseStrategy(m); err != nil || s.String() != m {
			t.Errorf("open-files %q: livefile says %v", m, err)
		}
	}
}

// base is a valid job the cases below break in one place each.
const base = "sources:\n  - path: /srv/app\n"

func TestErrors(t *testing.T) {
	cases := []struct {
		name, yaml string
		line       int
		msg, hint  string
	}{
		{"empty file", "", 0, "the job file is empty", "sources:"},
		{"syntax", "sources:\n  - path: /a\nhost: a: b\n", 3, "not valid YAML", "quote values containing ': '"},
		{"two documents", base + "---\nsources: []\n", 3, "second YAML document", "one job in each file"},
		{"not a mapping", "- /srv/app\n", 1, "must be a mapping", "sources:"},
		{"unknown top key", base + "repo: /r\n", 3, `unknown key "repo"`, `did you mean "repository"?`},
		{"underscore key", "sources:\n  - path: /srv/app\n    open_files: skip\n", 3, `unknown key "open_files"`, `did you mean "open-files"?`},
		{"typo in source key", "sources:\n  - path: /srv/app\n    retires: 2\n", 3, `sources[0].retires: unknown key`, `did you mean "retries"?`},
		{"unknown key no suggestion", base + "frobnicate: 1\n", 3, `unknown key "frobnicate"`, "known keys here: version, repository"},
		{"duplicate key", base + "host: a\nhost: b\n", 4, "host: set twice (first on line 3)", "remove one"},
		{"no sources", "repository: /r\n", 1, "the job has no sources", "sources: [{path: /srv/app}]"},
		{"empty sources", "sources: []\n", 1, "the list of sources is empty", "- path: /srv/app"},
		{"sources not a list", "sources: /srv/app\n", 1, "sources: must be a list", "'- path: '"},
		{"source without path", "sources:\n  - snapshot: on\n", 2, "the source has no path", "add path:"},
		{"relative source", "sources:\n  - path: srv/app\n", 2, `the source path "srv/app" is relative`, "absolute path such as /srv/app"},
		{"duplicate source", "sources:\n  - /srv/app\n  - path: /srv/app/\n", 3, "the source /srv/app is listed twice", "sources[0], line 2"},
		{"bad snapshot value", "sources:\n  - path: /srv/app\n    snapshot: requird\n", 3, `sources[0].snapshot: unknown value "requird"`, `did you mean "required"?`},
		{"bad open-files value", "sources:\n  - path: /srv/app\n    open-files: stge\n", 3, `unknown value "stge"`, `did you mean "stage"? (one of read, retry, skip, stage)`},
		{"retries too many", "sources:\n  - path: /srv/app\n    retries: 25\n", 3, "25 retries are too many", "at most 10"},
		{"retries negative", "sources:\n  - path: /srv/app\n    retries: -1\n", 3, "retries cannot be negative", "0 to 10"},
		{"retries not a number", "sources:\n  - path: /srv/app\n    retries: many\n", 3, `must be a whole number, not the value "many"`, "0 to 10"},
		{"exclude not a list", "sources:\n  - path: /srv/app\n    exclude: {a: b}\n", 3, "exclude: must be a list", "*.tmp"},
		{"bad exclude pattern", "sources:\n  - path: /srv/app\n    exclude: [\"a[\"]\n", 3, "sources[0].exclude[0]: bad pattern", "trailing /"},
		{"stage without staging dir", "sources:\n  - path: /srv/app\n    open-files: stage\n", 3, "open-files: stage needs a staging directory", "staging-dir: /var/tmp/stillpoint-staging"},
		{"staging dir inside source", base + "staging-dir: /srv/app/.staging\n", 3, "is inside the source /srv/app", "outside every source"},
		{"source staging dir relative", "sources:\n  - path: /srv/app\n    open-files: stage\n    staging-dir: tmp\n", 4, `the staging directory "tmp" is relative`, "absolute directory"},
		{"duration without unit", base + "quiesce:\n  inactivity: 3\n", 4, "the duration 3 has no unit", "write 3s"},
		{"bad duration", base + "quiesce:\n  inactivity: 3 sec\n", 4, `"3 sec" is not a duration`, "500ms, 3s"},
		{"negative duration", base + "quiesce:\n  inactivity: -3s\n", 4, "negative duration", "cannot be negative"},
		{"max-wait below inactivity", base + "quiesce:\n  inactivity: 10s\n  max-wait: 5s\n", 5, "max-wait 5s is shorter than inactivity 10s", "raise max-wait"},
		{"bad on-timeout", base + "quiesce:\n  inactivity: 1s\n  on-timeout: abort\n", 5, `unknown value "abort"`, "snap, fail"},
		{"quiesce not a mapping", base + "quiesce: 3s\n", 3, "quiesce: must be a mapping", "inactivity: 3s"},
		{"postgres without snapshot or dump", "sources:\n  - {path: /srv/db, snapshot: off}\nwriters:\n  - postgres: host=/run/postgresql\n", 4,
			"postgres writer needs a snapshot of the whole cluster or a dump hook", "pg_dump"},
		{"mysql without snapshot or dump", "sources:\n  - {path: /srv/db, snapshot: off}\nwriters:\n  - mariadb: root@unix(/run/mysqld/mysqld.sock)/\n", 4,
			"mysql writer needs a snapshot of the whole data directory or a dump hook", "mysqldump"},
		{"unknown writer", base + "writers:\n  - postgresql: host=x\n", 4, `unknown key "postgresql"`, `did you mean "postgres"?`},
		{"writer without kind", base + "writers:\n  - timeout: 3s\n", 4, "the writer has no kind", "sqlite, postgres, mysql, command"},
		{"two writers in one entry", base + "writers:\n  - sqlite: /srv/app/a.db\n    postgres: host=x\n", 5, "one entry names two writers", "its own list entry"},
		{"command writer without thaw", base + "writers:\n  - command: {freeze: app-ctl pause}\n", 4, "the command writer has no thaw command", "never left paused"},
		{"command writer timeout outside", base + "writers:\n  - command: {freeze: a, thaw: b}\n    timeout: 3s\n", 5, "timeout belongs inside command", "command: {freeze"},
		{"relative sqlite", base + "writers:\n  - sqlite: app.db\n", 4, `"app.db" is not absolute`, "/srv/app/app.db"},
		{"unknown hook point", base + "hooks:\n  before-snap: [{run: x}]\n", 4, `unknown key "before-snap"`, `did you mean "before-snapshot"?`},
		{"hook run and argv", base + "hooks:\n  after-backup: [{run: x, argv: [y]}]\n", 4, "both run and argv", "not both"},
		{"hook without command", base + "hooks:\n  after-backup:\n    - timeout: 3s\n", 5, "the hook has no command", "{run:"},
		{"hook bad essential", base + "hooks:\n  after-backup:\n    - {run: x, essential: maybe}\n", 5, "must be true or false", "true or false"},
		{"hook bad timeout", base + "hooks:\n  after-backup:\n    - {run: x, timeout: soon}\n", 5, `"soon" is not a duration`, "3s"},
		{"relative repository", base + "repository: repo\n", 3, `the repository path "repo" is relative`, "absolute path"},
		{"bad compression", base + "compression: zstd\n", 3, `unknown value "zstd"`, "off, fastest, default, better"},
		{"bad version", base + "version: 2\n", 3, "unsupported job file version 2", "version 1"},
		{"bad writer on-timeout", base + "writers:\n  - sqlite: /srv/app/a.db\n    on-timeout: skip\n", 5, `writers[0].on-timeout: unknown value "skip"`, "snap, fail"},
		{"writer on-timeout typo", base + "writers:\n  - sqlite: /srv/app/a.db\n    on-timeout: FAIL\n", 5, `unknown value "FAIL"`, `did you mean "fail"?`},
		{"command on-timeout inside", base + "writers:\n  - command: {freeze: a, thaw: b, on-timeout: later}\n", 4, `writers[0].command.on-timeout: unknown value "later"`, "snap, fail"},
		{"command on-timeout outside", base + "writers:\n  - command: {freeze: a, thaw: b}\n    on-timeout: fail\n", 5, "on-timeout belongs inside command", "on-timeout: fail}"},
		{"bad checkpoint", base + "writers:\n  - postgres: host=/run/postgresql\n    checkpoint: always\n", 5, `writers[0].checkpoint: must be true or false, not the value "always"`, "true or false"},
		{"checkpoint not text", base + "writers:\n  - postgres: host=/run/postgresql\n    checkpoint: [true]\n", 5, "writers[0].checkpoint: must be true or false, not a list", "true or false"},
		{"checkpoint on sqlite", base + "writers:\n  - sqlite: /srv/app/a.db\n    checkpoint: true\n", 5, "writers[0].checkpoint: checkpoint is only for a postgres writer, not a sqlite writer", "postgres: writers"},
		{"checkpoint on mariadb", base + "writers:\n  - mariadb: root@tcp(db:3306)/\n    checkpoint: false\n", 5, "checkpoint is only for a postgres writer, not a mariadb writer", "postgres: writers"},
		{"checkpoint on command", base + "writers:\n  - command: {freeze: a, thaw: b}\n    checkpoint: true\n", 5, "checkpoint is only for a postgres writer, not a command writer", "postgres: writers"},
		{"checkpoint inside command", base + "writers:\n  - command: {freeze: a, thaw: b, checkpoint: true}\n", 4, `writers[0].command.checkpoint: unknown key "checkpoint"`, "freeze, thaw"},
		{"on_timeout spelling", base + "writers:\n  - sqlite: /srv/app/a.db\n    on_timeout: fail\n", 5, `unknown key "on_timeout"`, `did you mean "on-timeout"?`},
		{"bad hold", base + "quiesce:\n  hold: all\n", 4, `quiesce.hold: unknown value "all"`, "one of writers, off"},
		{"hold typo", base + "quiesce:\n  hold: writer\n", 4, `unknown value "writer"`, `did you mean "writers"?`},
		{"hold not text", base + "quiesce:\n  hold: [writers]\n", 4, "quiesce.hold: must be a text value", "writers, off"},
		{"hold-timeout zero", base + "quiesce:\n  hold-timeout: 0\n", 4, "hold-timeout must be more than 0", "hold: off"},
		{"hold-timeout too long", base + "quiesce:\n  hold-timeout: 30s\n", 4, "hold-timeout 30s is too long", "at most 10s"},
		{"hold-timeout without unit", base + "quiesce:\n  hold-timeout: 2\n", 4, "the duration 2 has no unit", "write 2s"},
		{"hold-timeout negative", base + "quiesce:\n  hold-timeout: -1s\n", 4, "negative duration", "cannot be negative"},
		{"hold-exclude relative path", base + "quiesce:\n  hold-exclude: [sbin/auditd]\n", 4, `quiesce.hold-exclude[0]: the executable path "sbin/auditd" is relative`, `"auditd"`},
		{"hold-exclude empty", base + "quiesce:\n  hold-exclude: [\"\"]\n", 4, "the process name is empty", "ps -o comm"},
		{"hold-exclude mapping", base + "quiesce:\n  hold-exclude: {a: b}\n", 4, "hold-exclude: must be a list", "/usr/sbin/auditd"},
		{"holdtimeout spelling", base + "quiesce:\n  hold_timeout: 3s\n", 4, `unknown key "hold_timeout"`, `did you mean "hold-timeout"?`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := Parse("/etc/stillpoint/app.yaml", []byte(nativeYAML(c.yaml)))
			if err == nil {
				t.Fatal("no error")
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error is %T, not Errors: %v", err, err)
			}
			var hit *Error
			for _, e := range es {
				if strings.Contains(e.Error(), native(c.msg)) {
					hit = e
				}
			}
			if hit == nil {
				t.Fatalf("no error says %q:\n%v", native(c.msg), err)
			}
			prefix := "/etc/stillpoint/app.yaml: "
			if c.line > 0 {
				prefix = "/etc/stillpoint/app.yaml:" + strconv.Itoa(c.line) + ":"
			}
			if !strings.HasPrefix(hit.Error(), prefix) {
				t.Errorf("error does not start with %q:\n%s", prefix, hit)
			}
			if !strings.Contains(hit.Hint, c.hint) || !strings.Contains(hit.Error(), "\n\thint: ") {
				t.Errorf("hint lacks %q:\n%s", c.hint, hit)
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	cases := []struct {
		name, yaml string
		line       int
		msg        string
	}{
		{"essential on-error", base + "hooks:\n  on-error:\n    - {run: x, essential: true}\n", 5, "essential has no effect on an on-error hook"},
		{"retries with read", "sources:\n  - path: /srv/app\n    open-files: read\n    retries: 4\n", 4, "retries has no effect with open-files: read"},
		{"nested sources", "sources:\n  - /srv\n  - /srv/app\n", 3, "/srv/app is inside the source /srv and will be backed up twice"},
		{"max-wait alone", base + "quiesce:\n  max-wait: 10s\n", 4, "max-wait has no effect without an inactivity period"},
		{"sqlite outside sources", base + "writers:\n  - sqlite: /var/lib/x.db\n", 4, "/var/lib/x.db is not under any source"},
		{"inactivity without snapshot", "sources:\n  - {path: /srv/app, snapshot: off}\nquiesce: {inactivity: 2s}\n", 3, "there is no snapshot to wait for"},
		{"hold-timeout with hold off", base + "quiesce:\n  hold: off\n  hold-timeout: 5s\n", 5, "hold-timeout has no effect with hold: off"},
		{"hold-exclude with hold off", base + "quiesce:\n  hold: off\n  hold-exclude: auditd\n", 5, "hold-exclude has no effect with hold: off"},
		{"hold without snapshot", "sources:\n  - {path: /srv/app, snapshot: off}\nquiesce: {hold: writers}\n", 3, "no snapshot to hold the writers for"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, warns, err := Parse("j.yaml", []byte(nativeYAML(c.yaml)))
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range warns {
				if strings.Contains(w.String(), native(c.msg)) {
					if w.Pos.Line != c.line || w.Hint == "" {
						t.Errorf("warning at line %d (want %d), hint %q", w.Pos.Line, c.line, w.Hint)
					}
					return
				}
			}
			t.Fatalf("no warning says %q: %v", native(c.msg), warns)
		})
	}
}

func TestShorthandsAndDefaults(t *testing.T) {
	y := `snapshot: on
open-files: skip
retries: 7
sources:
  - /srv/a
  - {path: /srv/b, retries: 1, snapshot: off}
writers:
  - mariadb: root@tcp(db:3306)/
    timeout: 5s
hooks:
  before-backup: app-ctl stop
  after-backup:
    - argv: [/bin/echo, done]
      essential: yes
`
	j, warns, err := Parse("j.yaml", []byte(nativeYAML(y)))
	if err != nil || len(warns) != 0 {
		t.Fatal(err, warns)
	}
	if !reflect.DeepEqual(j.Sources, []Source{{Path: native("/srv/a"), Snapshot: "on", OpenFiles: "skip", Retries: 7}, {Path: native("/srv/b"), Snapshot: "off", OpenFiles: "skip", Retries: 1}}) {
		t.Errorf("sources %+v", j.Sources)
	}
	if j.Writers[0] != (WriterSpec{Kind: "mysql", Target: "root@tcp(db:3306)/", Timeout: 5 * time.Second, OnTimeout: "snap"}) {
		t.Errorf("writer %+v", j.Writers[0])
	}
	if h := j.Hooks[quiesce.BeforeBackup]; len(h) != 1 || h[0].Run != "app-ctl stop" {
		t.Errorf("hook shorthand %+v", h)
	}
	if h := j.Hooks[quiesce.AfterBackup]; len(h) != 1 || !h[0].Essential {
		t.Errorf("essential: yes %+v", h)
	}
	if q := j.Quiesce; q.OnTimeout != "snap" || q.MaxWait != 0 || q.Hold != "" || q.HoldTimeout != DefaultHoldTimeout || q.HoldExclude != nil {
		t.Errorf("quiesce defaults %+v", j.Quiesce)
	}
}

// The hold keys and the writers' on-timeout, as a file sets them.
func TestHoldAndWriterOnTimeout(t *testing.T) {
	y := base + `quiesce:
  hold: off
writers:
  - sqlite: /srv/app/a.db
    on-timeout: fail
  - sqlite: /srv/app/b.db
    timeout: 3s
  - command: {freeze: a, thaw: b, timeout: 1s, on-timeout: fail}
  - postgres: "host=/run/postgresql"
    on-timeout: snap
`
	j, warns, err := Parse("j.yaml", []byte(nativeYAML(y)))
	if err != nil || len(warns) != 0 {
		t.Fatal(err, warns)
	}
	if q := j.Quiesce; q.Hold != "off" || q.HoldTimeout != DefaultHoldTimeout {
		t.Errorf("quiesce %+v", q)
	}
	var got []string
	for _, w := range j.Writers {
		got = append(got, w.OnTimeout)
	}
	if !reflect.DeepEqual(got, []string{"fail", "snap", "fail", "snap"}) {
		t.Errorf("on-timeout of the writers: %q", got)
	}
	for i, w := range j.Writers {
		if w.Checkpoint {
			t.Errorf("writers[%d] checkpoints without checkpoint: true: %+v", i, w)
		}
	}
	if p, ok := j.Pos("writers[2].command.on-timeout"); !ok || p.Line != 10 {
		t.Errorf("position of the command writer's on-timeout: %v %v", p, ok)
	}

	j, warns, err = Parse("j.yaml", []byte(nativeYAML(base+"quiesce:\n  hold: writers\n  hold-timeout: 10s\n  hold-exclude: [auditd, /usr/lib/postgresql/16/bin/postgres, a-very-long-process-name]\n")))
	if err != nil || len(warns) != 0 {
		t.Fatal(err, warns)
	}
	if q := j.Quiesce; q.Hold != "writers" || q.HoldTimeout != 10*time.Second || len(q.HoldExclude) != 3 {
		t.Errorf("quiesce %+v", q)
	}
	// a single name needs no list
	j, _, err = Parse("j.yaml", []byte(nativeYAML(base+"quiesce: {hold-exclude: auditd, hold-timeout: 500ms}\n")))
	if err != nil || !reflect.DeepEqual(j.Quiesce.HoldExclude, []string{"auditd"}) || j.Quiesce.HoldTimeout != 500*time.Millisecond {
		t.Fatalf("%v %+v", err, j)
	}
}

func TestHoldTimeoutBoundsMatchHold(t *testing.T) {
	if DefaultHoldTimeout != 2*time.Second || MaxHoldTimeout != 10*time.Second {
		t.Errorf("hold-timeout default %s, most %s; docs/job.md says 2s and 10s", DefaultHoldTimeout, MaxHoldTimeout)
	}
}

// A postgres writer's checkpoint: key, as a file sets it; off when left out.
func TestPostgresWriterCheckpoint(t *testing.T) {
	y := base + `writers:
  - postgres: "host=/run/postgresql"
    checkpoint: true
  - postgres: "host=/run/postgresql port=5433"
    checkpoint: false
  - postgres: "host=/run/postgresql port=5434"
  - {postgres: "host=/run/postgresql port=5435", checkpoint: yes, timeout: 20s}
`
	j, warns, err := Parse("j.yaml", []byte(nativeYAML(y)))
	if err != nil || len(warns) != 0 {
		t.Fatal(err, warns)
	}
	var got []bool
	for _, w := range j.Writers {
		got = append(got, w.Checkpoint)
	}
	if !reflect.DeepEqual(got, []bool{true, false, false, true}) {
		t.Errorf("checkpoint of the writers: %v", got)
	}
	if w := j.Writers[3]; w != (WriterSpec{Kind: "postgres", Target: "host=/run/postgresql port=5435", Timeout: 20 * time.Second, OnTimeout: "snap", Checkpoint: true}) {
		t.Errorf("writer %+v", w)
	}
	if p, ok := j.Pos("writers[1].checkpoint"); !ok || p.Line != 7 {
		t.Errorf("position of writers[1].checkpoint: %v %v", p, ok)
	}
}

// A dump hook makes a postgres writer without snapshots fine; a long
// inactivity gets a max-wait that can be reached.
func TestCombinationsThatAreFine(t *testing.T) {
	y := `sources: [{path: /srv/dump, snapshot: off}]
writers: [{postgres: "host=/run/postgresql"}]
hooks: {before-backup: [{run: "pg_dumpall -f /srv/dump/all.sql", essential: true}]}
`
	if _, _, err := Parse("j.yaml", []byte(nativeYAML(y))); err != nil {
		t.Fatal(err)
	}
	j, _, err := Parse("j.yaml", []byte(nativeYAML(base+"quiesce: {inactivity: 2m}\n")))
	if err != nil || j.Quiesce.MaxWait != 4*time.Minute {
		t.Fatalf("%v %+v", err, j)
	}
	// YAML anchors and merge keys work; explicit keys win.
	y = `sources:
  - &d {path: /srv/a, snapshot: required, retries: 2}
  - {<<: *d, path: /srv/b}
`
	j, _, err = Parse("j.yaml", []byte(nativeYAML(y)))
	if err != nil || !reflect.DeepEqual(j.Sources[1], Source{Path: native("/srv/b"), Snapshot: "required", OpenFiles: "retry", Retries: 2}) {
		t.Fatalf("merge key: %v %+v", err, j)
	}
}

func TestValidateBuiltJob(t *testing.T) {
	j := &Job{Sources: []Source{{Path: "rel", Snapshot: "auto", OpenFiles: "retry"}}}
	_, err := Validate(j)
	if err == nil || !strings.Contains(err.Error(), `sources[0].path: the source path "rel" is relative`) {
		t.Fatalf("got %v", err)
	}
	// A job built in code may leave the hold timeout and on-timeout out
	// (the run's defaults apply), but not set them wrong.
	ok := []Source{{Path: native("/srv/app"), Snapshot: "auto", OpenFiles: "retry"}}
	if _, err := Validate(&Job{Sources: ok, Writers: []WriterSpec{{Kind: "sqlite", Target: native("/srv/app/a.db")}, {Kind: "postgres", Target: "host=/run/postgresql", Checkpoint: true}}}); err != nil {
		t.Fatalf("defaults left out: %v", err)
	}
	j = &Job{Sources: ok, Quiesce: Quiesce{Hold: "on", HoldTimeout: 11 * time.Second},
		Writers: []WriterSpec{{Kind: "sqlite", Target: native("/srv/app/a.db"), OnTimeout: "wait"}, {Kind: "command", Freeze: "a", Thaw: "b", OnTimeout: "x"},
			{Kind: "mysql", Target: "root@tcp(db:3306)/", Checkpoint: true}}}
	_, err = Validate(j)
	for _, want := range []string{`quiesce.hold: unknown value "on"`, "hold-timeout 11s is too long", `writers[0].on-timeout: unknown value "wait"`, `writers[1].command.on-timeout: unknown value "x"`,
		"writers[2].checkpoint: checkpoint is only for a postgres writer, not a mysql writer"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("no error says %q: %v", want, err)
		}
	}
}
