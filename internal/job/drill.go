package job

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/schedule"
	"gopkg.in/yaml.v3"
)

// Drill is a job's restore drill (stillpoint drill): how deep it goes and
// which application verifiers judge the restored data.
type Drill struct {
	// Level is check, read or restore (see DrillLevels).
	Level string
	// Scratch is the directory the drill restores into; "" leaves the
	// choice to the caller (the system's temporary directory).
	Scratch string
	// ReadBack is M of the rotating pack read-back: each drill reads the
	// next 1/M of the packs, so M drills read them all.
	ReadBack int
	Verify   []Verifier
	// Schedule is when the daemon drills the job's newest snapshot, on
	// its own timer; nil: only when asked (stillpoint drill --job).
	Schedule schedule.Schedule
}

// Verifier is one application check of the restored data.
type Verifier struct {
	// Kind is sqlite, postgres, mysql, git or command.
	Kind string
	// Path is the original (backed-up) path it judges: the database file,
	// the data directory, the directory holding git repositories; for a
	// command, optional (its restored form is in the environment).
	Path string
	// Command is the command verifier's shell command line.
	Command string
	// Query, when set, must return a row whose first value is not empty,
	// NULL, 0 or false (sqlite, postgres, mysql).
	Query string
	// Database is the database Query runs in (postgres, mysql).
	Database string
	// User is the database role or account to connect as (postgres).
	User string
	// Timeout bounds the verifier; it is killed after it.
	Timeout time.Duration
}

// Drill defaults and value sets.
const (
	DefaultReadBack      = 10
	DefaultDrillTimeout  = 10 * time.Minute
	MaxReadBack          = 256 // the buckets of check --read-data-subset
	drillVerifierExample = "write e.g. - sqlite: /srv/app/app.db"
)

var (
	DrillLevels      = []string{"check", "read", "restore"}
	VerifierKinds    = []string{"sqlite", "postgres", "mysql", "git", "command"}
	drillKeys        = []string{"level", "scratch", "read-back", "verify", "schedule"}
	verifierKeys     = append(append([]string{}, VerifierKinds...), "mariadb", "path", "query", "database", "user", "timeout")
	verifierHints    = map[string]string{"sqlite": "the database file, e.g. /srv/app/app.db", "postgres": "the data directory, e.g. /srv/pg/data", "mysql": "the data directory, e.g. /var/lib/mysql", "git": "a repository or a directory holding repositories, e.g. /srv/repos", "command": `a shell command line, e.g. "/usr/local/bin/check-app --quick"`}
	verifierExamples = map[string]string{"sqlite": "/srv/app/app.db", "postgres": "/srv/pg/data", "mysql": "/var/lib/mysql", "git": "/srv/repos", "command": "/srv/app"}
	verifierOnlyOf   = map[string][]string{"query": {"sqlite", "postgres", "mysql"}, "database": {"postgres", "mysql"}, "user": {"postgres"}, "path": {"command"}}
)

func (p *parser) drill(n *yaml.Node) {
	f, ok := p.mapping(n, "drill", drillKeys, "write e.g. drill: {level: restore, verify: [{sqlite: /srv/app/app.db}]}")
	if !ok {
		return
	}
	d := &Drill{}
	if v, ok := f["level"]; ok {
		d.Level, _ = p.oneOf(v.val, "drill.level", DrillLevels)
	}
	if v, ok := f["scratch"]; ok {
		d.Scratch, _ = p.str(v.val, "drill.scratch", "an absolute directory with room for a restore, e.g. /var/tmp")
	}
	if v, ok := f["read-back"]; ok {
		d.ReadBack, _ = p.integer(v.val, "drill.read-back", fmt.Sprintf("a number from 1 to %d: each drill reads 1/N of the packs", MaxReadBack))
	}
	if v, ok := f["verify"]; ok {
		d.Verify = p.verifiers(v.val)
	}
	if v, ok := f["schedule"]; ok {
		hint := `when the daemon drills, e.g. "0 4 * * 0" (Sundays at 04:00), @weekly or "every 24h"`
		if s, ok := p.str(v.val, "drill.schedule", hint); ok {
			sched, err := schedule.Parse(s)
			if err != nil {
				p.errorf(v.val, "drill.schedule", hint, "%v", err)
			}
			d.Schedule = sched
		}
	}
	p.set("drill", resolve(n))
	p.job.Drill = d
}

func (p *parser) verifiers(n *yaml.Node) []Verifier {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "drill.verify", drillVerifierExample, "must be a list, not %s", describe(n))
		return nil
	}
	var out []Verifier
	for i, e := range n.Content {
		key := fmt.Sprintf("drill.verify[%d]", i)
		f, ok := p.mapping(e, key, verifierKeys, drillVerifierExample)
		if !ok {
			continue
		}
		var kinds []field
		for _, k := range append(append([]string{}, VerifierKinds...), "mariadb") {
			if v, ok := f[k]; ok {
				kinds = append(kinds, v)
			}
		}
		if len(kinds) != 1 {
			if len(kinds) == 0 {
				p.errorf(resolve(e), key, "start the entry with one of: "+strings.Join(VerifierKinds, ", "), "the verifier has no kind")
			} else {
				p.errorf(kinds[1].key, key, "put each verifier in its own list entry (its own '- ')", "one entry names two verifiers, %s and %s", kinds[0].key.Value, kinds[1].key.Value)
			}
			continue
		}
		kf := kinds[0]
		v := Verifier{Kind: kf.key.Value, Timeout: DefaultDrillTimeout}
		if v.Kind == "mariadb" {
			v.Kind = "mysql"
		}
		p.set(key, kf.key)
		s, _ := p.str(kf.val, key+"."+kf.key.Value, verifierHints[v.Kind])
		if v.Kind == "command" {
			v.Command = s
		} else {
			v.Path = s
		}
		for opt, kinds := range verifierOnlyOf {
			o, ok := f[opt]
			if !ok {
				continue
			}
			if !contains(kinds, v.Kind) {
				p.errorf(o.key, key+"."+opt, fmt.Sprintf("%s is for the %s verifiers; remove it here", opt, strings.Join(kinds, " and ")), "the %s verifier takes no %s", v.Kind, opt)
				continue
			}
			val, _ := p.str(o.val, key+"."+opt, map[string]string{"query": `a query, e.g. "SELECT count(*) FROM accounts"`, "database": "a database name, e.g. app", "user": "a role, e.g. postgres", "path": "the original path the command checks, e.g. /srv/app"}[opt])
			switch opt {
			case "query":
				v.Query = val
			case "database":
				v.Database = val
			case "user":
				v.User = val
			case "path":
				v.Path = val
			}
		}
		if t, ok := f["timeout"]; ok {
			v.Timeout, _ = p.duration(t.val, key+".timeout")
		}
		out = append(out, v)
	}
	return out
}

// drillDefaults fills what the drill section left out.
func drillDefaults(j *Job) {
	d := j.Drill
	if d == nil {
		return
	}
	if d.Level == "" {
		d.Level = "read"
		if len(d.Verify) > 0 {
			d.Level = "restore"
		}
	}
	if _, set := j.pos["drill.read-back"]; !set && d.ReadBack == 0 {
		d.ReadBack = DefaultReadBack
	}
}

// drill checks the section as a whole.
func (v *validator) drill() {
	d := v.j.Drill
	if d == nil {
		return
	}
	if d.Level != "" && !contains(DrillLevels, d.Level) {
		v.errorf("drill.level", "one of "+strings.Join(DrillLevels, ", "), "unknown value %q", d.Level)
	}
	if d.Scratch != "" && !filepath.IsAbs(d.Scratch) {
		v.errorf("drill.scratch", "write an absolute directory, e.g. /var/tmp", "the scratch directory %q is relative", d.Scratch)
	} else if d.Scratch != "" && v.underSource(d.Scratch) {
		v.errorf("drill.scratch", "choose a directory outside every source, e.g. /var/tmp", "the scratch directory %s is inside a source: the next backup would read the drill's restore", d.Scratch)
	}
	if d.ReadBack < 1 || d.ReadBack > MaxReadBack {
		v.errorf("drill.read-back", fmt.Sprintf("a number from 1 (read every pack each drill) to %d", MaxReadBack), "read-back %d is out of range", d.ReadBack)
	}
	if d.Level != "restore" && len(d.Verify) > 0 {
		v.warnf("drill.level", "write level: restore to run them, or remove verify:", "the verifiers run only at level restore; at level %s they are skipped", d.Level)
	}
	for i, w := range d.Verify {
		key := fmt.Sprintf("drill.verify[%d]", i)
		kkey := key + "." + w.Kind
		if _, ok := v.j.pos[kkey]; !ok && w.Kind == "mysql" {
			kkey = key + ".mariadb"
		}
		if !contains(VerifierKinds, w.Kind) {
			v.errorf(key, "one of "+strings.Join(VerifierKinds, ", "), "unknown verifier kind %q", w.Kind)
			continue
		}
		pkey := kkey
		if w.Kind == "command" {
			pkey = key + ".path"
			if strings.TrimSpace(w.Command) == "" {
				v.errorf(kkey, verifierHints["command"], "the command is empty")
			}
		}
		switch {
		case w.Path == "" && w.Kind == "command":
		case !filepath.IsAbs(w.Path):
			v.errorf(pkey, "write the absolute path as it was backed up, e.g. "+verifierExamples[w.Kind], "the path %q is not absolute", w.Path)
		case !v.underSource(w.Path):
			v.warnf(pkey, "add it to sources, or remove this verifier", "%s is not under any source, so the drill cannot find it in the snapshot and fails", w.Path)
		}
		if w.Timeout <= 0 {
			v.errorf(key+".timeout", "a positive duration, e.g. 5m", "the timeout must be more than 0")
		}
	}
}
