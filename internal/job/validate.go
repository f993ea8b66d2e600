package job

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/stillpoint-backup/stillpoint/internal/filter"
	"github.com/stillpoint-backup/stillpoint/internal/livefile"
	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
	"github.com/stillpoint-backup/stillpoint/internal/quiesce"
)

// dumpTools are the programs whose presence in a before-* hook means the
// user dumps the database there, so no snapshot is needed for its writer.
var dumpTools = map[string][]string{
	"postgres": {"pg_dump", "pg_dumpall", "pg_basebackup"},
	"mysql":    {"mysqldump", "mariadb-dump", "mariabackup", "mariadb-backup", "xtrabackup", "mydumper"},
}

// schemeRe matches a repository URL such as s3:bucket/path or sftp:host:/p.
var schemeRe = regexp.MustCompile(`^[a-z][a-z0-9+]*:`)

// Validate checks the combinations of a job's values: the things a single
// key cannot tell. Load calls it; call it again on a Job built or changed
// in code (then problems name the key without a line). Defaults must have
// been applied, as Load does.
func Validate(j *Job) ([]Warning, error) {
	v := &validator{j: j}
	v.check()
	if len(v.errs) > 0 {
		return v.warns, v.errs
	}
	return v.warns, nil
}

type validator struct {
	j     *Job
	errs  Errors
	warns []Warning
}

func (v *validator) problem(key, hint, format string, args ...any) Problem {
	pr := Problem{File: v.j.File, Key: key, Message: fmt.Sprintf(format, args...), Hint: hint}
	pr.Pos = v.j.pos[key]
	return pr
}

func (v *validator) errorf(key, hint, format string, args ...any) {
	v.errs = append(v.errs, &Error{v.problem(key, hint, format, args...)})
}

func (v *validator) warnf(key, hint, format string, args ...any) {
	v.warns = append(v.warns, Warning{v.problem(key, hint, format, args...)})
}

func (v *validator) line(key string) int { return v.j.pos[key].Line }

func (v *validator) check() {
	j := v.j
	if len(j.Sources) == 0 {
		v.errorf("sources", "add: sources: [{path: /srv/app}]", "the job has no sources")
	}
	if r := j.Repository; r != "" && !schemeRe.MatchString(r) && !filepath.IsAbs(r) {
		v.errorf("repository", "write an absolute path such as /var/lib/stillpoint/repo", "the repository path %q is relative", r)
	}
	if j.Compression != "" && !contains(CompressionLevels, j.Compression) {
		v.errorf("compression", "one of "+strings.Join(CompressionLevels, ", "), "unknown value %q", j.Compression)
	}
	for i, t := range j.Tags {
		if strings.TrimSpace(t) == "" || strings.ContainsAny(t, ",\n") {
			v.errorf(fmt.Sprintf("tags[%d]", i), "tags are single words such as daily or app", "the tag %q is empty or holds a comma", t)
		}
	}
	v.patterns("exclude", j.Exclude)
	v.sources()
	v.staging()
	v.quiesce()
	v.writers()
	v.vss()
	v.hooks()
	v.retention()
	v.drill()
}

func (v *validator) sources() {
	seen := map[string]int{}
	var paths []string
	for i, s := range v.j.Sources {
		key := fmt.Sprintf("sources[%d]", i)
		switch {
		case s.Path == "":
			v.errorf(key+".path", "add path: /srv/app to this source", "the source has no path")
			continue
		case !filepath.IsAbs(s.Path):
			v.errorf(key+".path", "write an absolute path such as /srv/app: a job runs from any directory", "the source path %q is relative", s.Path)
			continue
		}
		p := filepath.Clean(s.Path)
		if first, dup := seen[p]; dup {
			v.errorf(key+".path", fmt.Sprintf("list each path once (it is sources[%d], line %d); put all its settings there", first, v.line(fmt.Sprintf("sources[%d].path", first))),
				"the source %s is listed twice", p)
			continue
		}
		seen[p] = i
		paths = append(paths, p)
		if !contains(SnapshotPolicies, s.Snapshot) {
			v.errorf(key+".snapshot", "one of "+strings.Join(SnapshotPolicies, ", "), "unknown value %q", s.Snapshot)
		}
		if _, err := livefile.ParseStrategy(s.OpenFiles); err != nil {
			v.errorf(key+".open-files", "one of "+strings.Join(OpenFileModes, ", "), "unknown value %q", s.OpenFiles)
		}
		switch {
		case s.Retries > MaxRetries:
			v.errorf(key+".retries", "at most 10: a file still busy after that is retried in the second pass at the end of the run; for files that are always busy use open-files: stage or skip",
				"%d retries are too many", s.Retries)
		case s.Retries < 0:
			v.errorf(key+".retries", "a number from 0 to 10", "retries cannot be negative")
		}
		if _, set := v.j.pos[key+".retries"]; set && s.OpenFiles == "read" && s.Retries > 0 {
			v.warnf(key+".retries", "use open-files: retry to re-read busy files, or remove retries", "retries has no effect with open-files: read")
		}
		v.patterns(key+".exclude", s.Exclude)
	}
	// A source inside another is read twice, each time with its own policy.
	for i, a := range paths {
		for _, b := range paths {
			if a != b && within(a, b) {
				key := fmt.Sprintf("sources[%d].path", indexOf(v.j.Sources, a, i))
				v.warnf(key, fmt.Sprintf("remove it, or exclude it from %s if it needs its own settings", b), "%s is inside the source %s and will be backed up twice", a, b)
				break
			}
		}
	}
}

func indexOf(srcs []Source, p string, fallback int) int {
	for i, s := range srcs {
		if filepath.Clean(s.Path) == p {
			return i
		}
	}
	return fallback
}

func (v *validator) patterns(key string, pats []string) {
	for i, p := range pats {
		if _, err := filter.CompileFor(pathmap.Native, p); err != nil {
			v.errorf(fmt.Sprintf("%s[%d]", key, i), `patterns use *, ? and [...] within a name, ** across directories, a trailing / for directories only`, "%v", err)
		}
	}
}

func (v *validator) staging() {
	j := v.j
	var sources []string
	for _, s := range j.Sources {
		if filepath.IsAbs(s.Path) {
			sources = append(sources, s.Path)
		}
	}
	check := func(key, dir string) {
		if !filepath.IsAbs(dir) {
			v.errorf(key, "write an absolute directory outside every source, e.g. /var/tmp/stillpoint-staging", "the staging directory %q is relative", dir)
			return
		}
		if err := livefile.CheckStagingDir(dir, sources); err != nil {
			v.errorf(key, "choose a directory outside every source, e.g. /var/tmp/stillpoint-staging: staged copies inside a source would be backed up themselves", "%v", err)
		}
	}
	if j.StagingDir != "" {
		check("staging-dir", j.StagingDir)
	}
	for i, s := range j.Sources {
		key := fmt.Sprintf("sources[%d]", i)
		if s.StagingDir != "" {
			check(key+".staging-dir", s.StagingDir)
		}
		if s.OpenFiles == "stage" && s.StagingDir == "" && j.StagingDir == "" {
			v.errorf(key+".open-files", "add staging-dir: /var/tmp/stillpoint-staging (outside every source) to the job or to this source", "open-files: stage needs a staging directory")
		}
	}
}

func (v *validator) quiesce() {
	q := v.j.Quiesce
	if q.Inactivity < 0 || q.MaxWait < 0 {
		v.errorf("quiesce", "durations cannot be negative", "negative duration")
	}
	_, maxSet := v.j.pos["quiesce.max-wait"]
	if q.Inactivity == 0 && maxSet {
		v.warnf("quiesce.max-wait", "set quiesce.inactivity too, e.g. 3s", "max-wait has no effect without an inactivity period")
	}
	if q.Inactivity > 0 && q.MaxWait < q.Inactivity {
		v.errorf("quiesce.max-wait", fmt.Sprintf("raise max-wait to well above the inactivity period (e.g. %s), or lower inactivity", max(DefaultMaxWait, 2*q.Inactivity)),
			"max-wait %s is shorter than inactivity %s, so the quiet period could never be reached", q.MaxWait, q.Inactivity)
	}
	if q.OnTimeout != "" && !contains(OnTimeoutActions, q.OnTimeout) {
		v.errorf("quiesce.on-timeout", "one of "+strings.Join(OnTimeoutActions, ", "), "unknown value %q", q.OnTimeout)
	}
	if q.Inactivity > 0 && !v.anySnapshot() {
		v.warnf("quiesce.inactivity", "set snapshot: auto, on or required on a source, or remove inactivity", "every source has snapshot: off, so there is no snapshot to wait for")
	}
	v.hold()
}

// hold checks quiesce.hold, hold-timeout and hold-exclude.
func (v *validator) hold() {
	q := v.j.Quiesce
	if q.Hold != "" && !contains(HoldModes, q.Hold) {
		v.errorf("quiesce.hold", "one of "+strings.Join(HoldModes, ", "), "unknown value %q", q.Hold)
	}
	_, timeoutSet := v.j.pos["quiesce.hold-timeout"]
	switch {
	case q.HoldTimeout < 0 || (timeoutSet && q.HoldTimeout == 0):
		v.errorf("quiesce.hold-timeout", fmt.Sprintf("write e.g. %s (the default); to hold nothing write hold: off", DefaultHoldTimeout),
			"hold-timeout must be more than 0")
	case q.HoldTimeout > MaxHoldTimeout:
		v.errorf("quiesce.hold-timeout", fmt.Sprintf("at most %s: a process stopped longer may make its clients time out; past hold-timeout the snapshot is taken crash-consistent anyway", MaxHoldTimeout),
			"hold-timeout %s is too long", q.HoldTimeout)
	}
	for i, x := range q.HoldExclude {
		key := fmt.Sprintf("quiesce.hold-exclude[%d]", i)
		switch {
		case strings.TrimSpace(x) == "":
			v.errorf(key, "write a process's command name (as ps -o comm shows it) or its executable's absolute path", "the process name is empty")
		case strings.Contains(x, "/") && !filepath.IsAbs(x):
			v.errorf(key, fmt.Sprintf("write the executable's absolute path (as /proc/PID/exe shows it), or just its name %q", filepath.Base(x)),
				"the executable path %q is relative, so it never matches a process", x)
		}
	}
	if q.Hold == "off" {
		for _, k := range []string{"quiesce.hold-timeout", "quiesce.hold-exclude"} {
			if _, set := v.j.pos[k]; set {
				v.warnf(k, "remove it, or set hold: writers", "%s has no effect with hold: off", strings.TrimPrefix(k, "quiesce."))
			}
		}
	}
	if _, set := v.j.pos["quiesce.hold"]; set && q.Hold == "writers" && !v.anySnapshot() {
		v.warnf("quiesce.hold", "set snapshot: auto, on or required on a source, or remove hold", "every source has snapshot: off, so there is no snapshot to hold the writers for")
	}
}

func (v *validator) anySnapshot() bool {
	for _, s := range v.j.Sources {
		if s.Snapshot != "off" {
			return true
		}
	}
	return false
}

func (v *validator) writers() {
	for i, w := range v.j.Writers {
		key := fmt.Sprintf("writers[%d]", i)
		kkey := key + "." + w.Kind
		if _, ok := v.j.pos[kkey]; !ok && w.Kind == "mysql" {
			kkey = key + ".mariadb"
		}
		switch w.Kind {
		case "sqlite":
			if !filepath.IsAbs(w.Target) {
				v.errorf(kkey, "write the database file's absolute path, e.g. /srv/app/app.db", "the SQLite database path %q is not absolute", w.Target)
			} else if !v.underSource(w.Target) {
				v.warnf(kkey, "add the database's directory to sources, or remove this writer", "%s is not under any source, so the writer protects nothing", w.Target)
			}
		case "postgres", "mysql":
			if strings.TrimSpace(w.Target) == "" {
				v.errorf(kkey, "write how to connect, e.g. "+map[string]string{"postgres": `"host=127.0.0.1 port=5432 user=postgres"`, "mysql": `"root@tcp(127.0.0.1:3306)/"`}[w.Kind], "the connection string is empty")
			}
			if !v.anySnapshot() && !v.dumpHook(w.Kind) {
				name := map[string]string{"postgres": "postgres writer needs a snapshot of the whole cluster", "mysql": "mysql writer needs a snapshot of the whole data directory"}[w.Kind]
				v.errorf(kkey, fmt.Sprintf("set snapshot: on or required on the source holding the data directory, or dump the database in a before-backup hook (e.g. %s) into a source", dumpTools[w.Kind][0]),
					"%s or a dump hook: every source has snapshot: off", name)
			}
		case "command":
			if strings.TrimSpace(w.Freeze) == "" || strings.TrimSpace(w.Thaw) == "" {
				v.errorf(kkey, `write command: {freeze: "app-ctl pause", thaw: "app-ctl resume"}`, "the command writer needs both a freeze and a thaw command")
			}
		default:
			v.errorf(key, "one of "+strings.Join(WriterKinds, ", "), "unknown writer kind %q", w.Kind)
		}
		if w.Checkpoint && w.Kind != "postgres" {
			v.errorf(key+".checkpoint", "remove it; checkpoint: is a key of postgres: writers", "checkpoint is only for a postgres writer, not a %s writer", w.Kind)
		}
		if w.Timeout < 0 {
			v.errorf(key+".timeout", "durations cannot be negative", "negative timeout")
		}
		if w.OnTimeout != "" && !contains(OnTimeoutActions, w.OnTimeout) {
			okey := key + ".on-timeout"
			if w.Kind == "command" {
				okey = key + ".command.on-timeout"
			}
			v.errorf(okey, "one of "+strings.Join(OnTimeoutActions, ", "), "unknown value %q", w.OnTimeout)
		}
	}
}

func (v *validator) underSource(p string) bool {
	for _, s := range v.j.Sources {
		if filepath.IsAbs(s.Path) && within(filepath.Clean(p), filepath.Clean(s.Path)) {
			return true
		}
	}
	return false
}

func (v *validator) dumpHook(kind string) bool {
	for _, pt := range []quiesce.Point{quiesce.BeforeBackup, quiesce.BeforeSnapshot} {
		for _, h := range v.j.Hooks[pt] {
			for _, tool := range dumpTools[kind] {
				if strings.Contains(h.String(), tool) {
					return true
				}
			}
		}
	}
	return false
}

func (v *validator) hooks() {
	for pt, hs := range v.j.Hooks {
		if !pt.Valid() {
			v.errorf("hooks."+string(pt), "one of "+strings.Join(hookPoints, ", "), "unknown hook point %q", pt)
			continue
		}
		for i, h := range hs {
			key := fmt.Sprintf("hooks.%s[%d]", pt, i)
			if (h.Run == "") == (len(h.Argv) == 0) {
				v.errorf(key, hookHint, "a hook needs exactly one of run and argv")
			}
			if h.Timeout < 0 {
				v.errorf(key+".timeout", "durations cannot be negative", "negative timeout")
			}
		}
	}
}

// within tells whether p is base or below it (both clean and absolute).
func within(p, base string) bool {
	rel, err := filepath.Rel(base, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// HasDumpHook tells whether a before-* hook dumps the database of a writer
// kind (pg_dump, mysqldump, …): then that writer may run without a
// snapshot that covers its files.
func (j *Job) HasDumpHook(kind string) bool {
	return (&validator{j: j}).dumpHook(kind)
}
