package job

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/stillpoint-backup/stillpoint/internal/quiesce"
)

// The keys each mapping accepts.
var (
	topKeys     = []string{"version", "repository", "host", "tags", "compression", "staging-dir", "exclude", "snapshot", "open-files", "retries", "sources", "quiesce", "writers", "vss", "hooks", "retention", "drill", "s3", "name", "schedule", "jitter", "retry-after", "notify"}
	sourceKeys  = []string{"path", "snapshot", "open-files", "retries", "exclude", "staging-dir"}
	quiesceKeys = []string{"inactivity", "max-wait", "on-timeout", "hold", "hold-timeout", "hold-exclude"}
	commandKeys = []string{"freeze", "thaw", "timeout", "on-timeout"}
	hookKeys    = []string{"run", "argv", "timeout", "essential"}
	writerKeys  = append(append([]string{}, WriterKinds...), "mariadb", "timeout", "on-timeout", "checkpoint")
	hookPoints  = func() []string {
		s := make([]string, len(quiesce.Points))
		for i, p := range quiesce.Points {
			s[i] = string(p)
		}
		return s
	}()
)

type parser struct {
	file  string
	job   *Job
	errs  Errors
	warns []Warning
}

func (p *parser) problem(n *yaml.Node, key, hint, format string, args ...any) Problem {
	pr := Problem{File: p.file, Key: key, Message: fmt.Sprintf(format, args...), Hint: hint}
	if n != nil {
		pr.Pos = Pos{n.Line, n.Column}
	}
	return pr
}

func (p *parser) errorf(n *yaml.Node, key, hint, format string, args ...any) {
	p.errs = append(p.errs, &Error{p.problem(n, key, hint, format, args...)})
}

func (p *parser) warnf(n *yaml.Node, key, hint, format string, args ...any) {
	p.warns = append(p.warns, Warning{p.problem(n, key, hint, format, args...)})
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

func (p *parser) parse(data []byte) {
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.errorf(nil, "", "a job needs at least: sources: [{path: /srv/app}]", "the job file is empty")
			return
		}
		var n *yaml.Node
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			line, _ := strconv.Atoi(m[1])
			n = &yaml.Node{Line: line, Column: 1}
		}
		p.errorf(n, "", "check the indentation (spaces, not tabs) and quote values containing ': ' or starting with '*', '&', '!', '%' or '@'",
			"not valid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
		return
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.errorf(&extra, "", "put one job in each file; remove the '---' line", "a second YAML document in the file")
		return
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		p.errorf(root, "", "a job needs at least: sources: [{path: /srv/app}]", "the job file is empty")
		return
	}
	p.top(root)
}

// field is one key of a mapping.
type field struct {
	key, val *yaml.Node
	merged   bool // came from a "<<" merge key: an explicit key overrides it
}

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// mapping returns the fields of a mapping node by name, reporting keys
// not in allowed (with a suggestion), repeated keys and a node that is not
// a mapping. YAML merge keys ("<<: *defaults") are expanded.
func (p *parser) mapping(n *yaml.Node, where string, allowed []string, hint string) (map[string]field, bool) {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		p.errorf(n, where, hint, "must be a mapping of keys to values, not %s", describe(n))
		return nil, false
	}
	fields := map[string]field{}
	var add func(m *yaml.Node, merged bool)
	add = func(m *yaml.Node, merged bool) {
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := m.Content[i], resolve(m.Content[i+1])
			if k.Value == "<<" && k.Tag == "!!merge" {
				if v.Kind == yaml.MappingNode {
					add(v, true)
				} else {
					for _, s := range v.Content {
						add(resolve(s), true)
					}
				}
				continue
			}
			if old, dup := fields[k.Value]; dup {
				if merged {
					continue // the explicit key wins over a merged one
				}
				if !old.merged {
					p.errorf(k, join(where, k.Value), "remove one of them", "set twice (first on line %d)", old.key.Line)
					continue
				}
			}
			if !contains(allowed, k.Value) {
				p.errorf(k, join(where, k.Value), suggest(k.Value, allowed), "unknown key %q", k.Value)
				continue
			}
			fields[k.Value] = field{k, v, merged}
		}
	}
	add(n, false)
	return fields, true
}

func join(where, key string) string {
	if where == "" {
		return key
	}
	return where + "." + key
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "this"
}

// set records where key was set.
func (p *parser) set(key string, n *yaml.Node) { p.job.pos[key] = Pos{n.Line, n.Column} }

func (p *parser) str(n *yaml.Node, key, hint string) (string, bool) {
	p.set(key, n)
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, key, hint, "must be a text value, not %s", describe(n))
		return "", false
	}
	return n.Value, true
}

func (p *parser) oneOf(n *yaml.Node, key string, values []string) (string, bool) {
	hint := "one of " + strings.Join(values, ", ")
	s, ok := p.str(n, key, hint)
	if !ok {
		return "", false
	}
	if !contains(values, s) {
		if d := closest(strings.ToLower(s), values); d != "" {
			hint = fmt.Sprintf("did you mean %q? (%s)", d, hint)
		}
		p.errorf(n, key, hint, "unknown value %q", s)
		return "", false
	}
	return s, true
}

func (p *parser) integer(n *yaml.Node, key, hint string) (int, bool) {
	p.set(key, n)
	var v int
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&v) != nil {
		p.errorf(n, key, hint, "must be a whole number, not %s", describe(n))
		return 0, false
	}
	return v, true
}

func (p *parser) boolean(n *yaml.Node, key string) (bool, bool) {
	p.set(key, n)
	var v bool
	if n.Kind != yaml.ScalarNode || n.Decode(&v) != nil {
		p.errorf(n, key, "write true or false", "must be true or false, not %s", describe(n))
		return false, false
	}
	return v, true
}

const durationHint = "write a number with a unit: 500ms, 3s, 2m or 1h30m"

func (p *parser) duration(n *yaml.Node, key string) (time.Duration, bool) {
	p.set(key, n)
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, key, durationHint, "must be a duration, not %s", describe(n))
		return 0, false
	}
	if n.Value == "0" {
		return 0, true
	}
	if n.Tag == "!!int" || n.Tag == "!!float" {
		p.errorf(n, key, fmt.Sprintf("write %ss for seconds", n.Value), "the duration %s has no unit", n.Value)
		return 0, false
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		p.errorf(n, key, durationHint, "%q is not a duration", n.Value)
		return 0, false
	}
	if d < 0 {
		p.errorf(n, key, "durations cannot be negative", "negative duration %s", n.Value)
		return 0, false
	}
	return d, true
}

// strList accepts a list of text values or a single one.
func (p *parser) strList(n *yaml.Node, key, hint string) []string {
	p.set(key, n)
	n = resolve(n)
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		return []string{n.Value}
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, key, hint, "must be a list, not %s", describe(n))
		return nil
	}
	var out []string
	for i, e := range n.Content {
		e = resolve(e)
		k := fmt.Sprintf("%s[%d]", key, i)
		if s, ok := p.str(e, k, hint); ok {
			out = append(out, s)
		}
	}
	return out
}

func (p *parser) top(root *yaml.Node) {
	f, ok := p.mapping(root, "", topKeys, "a job file is a mapping; start with: sources: [{path: /srv/app}]")
	if !ok {
		return
	}
	j := p.job
	if v, ok := f["version"]; ok {
		if n, ok := p.integer(v.val, "version", "write version: 1"); ok && n != 1 {
			p.errorf(v.val, "version", "this stillpoint reads version 1; upgrade stillpoint for newer job files", "unsupported job file version %d", n)
		}
	}
	if v, ok := f["repository"]; ok {
		j.Repository, _ = p.str(v.val, "repository", "a path such as /var/lib/stillpoint/repo")
	}
	if v, ok := f["host"]; ok {
		j.Host, _ = p.str(v.val, "host", "the host name recorded in snapshots, e.g. web-1")
	}
	if v, ok := f["tags"]; ok {
		j.Tags = p.strList(v.val, "tags", `a list such as [daily, app]`)
	}
	if v, ok := f["compression"]; ok {
		j.Compression, _ = p.oneOf(v.val, "compression", CompressionLevels)
	}
	if v, ok := f["staging-dir"]; ok {
		j.StagingDir, _ = p.str(v.val, "staging-dir", "an absolute directory outside every source, e.g. /var/tmp/stillpoint-staging")
	}
	if v, ok := f["exclude"]; ok {
		j.Exclude = p.strList(v.val, "exclude", `a list of patterns such as ["*.tmp", "cache/"]`)
	}
	// Top-level snapshot, open-files and retries are defaults for sources.
	var def Source
	var defRetries *yaml.Node
	if v, ok := f["snapshot"]; ok {
		def.Snapshot, _ = p.oneOf(v.val, "snapshot", SnapshotPolicies)
	}
	if v, ok := f["open-files"]; ok {
		def.OpenFiles, _ = p.oneOf(v.val, "open-files", OpenFileModes)
	}
	if v, ok := f["retries"]; ok {
		def.Retries, _ = p.integer(v.val, "retries", "a number from 0 to 10")
		defRetries = v.val
	}
	if v, ok := f["sources"]; ok {
		p.sources(v.val, def, defRetries)
	} else {
		p.errorf(root, "sources", "add: sources: [{path: /srv/app}]", "the job has no sources")
	}
	if v, ok := f["quiesce"]; ok {
		p.quiesce(v.val)
	}
	if v, ok := f["writers"]; ok {
		p.writers(v.val)
	}
	if v, ok := f["vss"]; ok {
		p.vss(v.val)
	}
	if v, ok := f["hooks"]; ok {
		p.hooks(v.val)
	}
	if v, ok := f["retention"]; ok {
		p.retention(v.val)
	}
	if v, ok := f["drill"]; ok {
		p.drill(v.val)
	}
	if v, ok := f["s3"]; ok {
		p.s3(v.val)
	}
	p.service(f)
	if v, ok := f["notify"]; ok {
		p.notify(v.val)
	}
}

func (p *parser) sources(n *yaml.Node, def Source, defRetries *yaml.Node) {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "sources", "write each source on its own line starting with '- path: '", "must be a list, not %s", describe(n))
		return
	}
	if len(n.Content) == 0 {
		p.errorf(n, "sources", "add at least one: - path: /srv/app", "the list of sources is empty")
	}
	for i, e := range n.Content {
		e = resolve(e)
		key := fmt.Sprintf("sources[%d]", i)
		s := def
		if defRetries != nil {
			p.job.pos[key+".retries"] = Pos{defRetries.Line, defRetries.Column}
		}
		if e.Kind == yaml.ScalarNode { // "- /srv/app": a path with the defaults
			s.Path, _ = p.str(e, key+".path", "an absolute path such as /srv/app")
			p.job.Sources = append(p.job.Sources, s)
			continue
		}
		f, ok := p.mapping(e, key, sourceKeys, "write - path: /srv/app, or just - /srv/app")
		if !ok {
			continue
		}
		if v, ok := f["path"]; ok {
			s.Path, _ = p.str(v.val, key+".path", "an absolute path such as /srv/app")
		} else {
			p.errorf(e, key+".path", "add path: /srv/app to this source", "the source has no path")
		}
		if v, ok := f["snapshot"]; ok {
			s.Snapshot, _ = p.oneOf(v.val, key+".snapshot", SnapshotPolicies)
		}
		if v, ok := f["open-files"]; ok {
			s.OpenFiles, _ = p.oneOf(v.val, key+".open-files", OpenFileModes)
		}
		if v, ok := f["retries"]; ok {
			s.Retries, _ = p.integer(v.val, key+".retries", "a number from 0 to 10")
		}
		if v, ok := f["exclude"]; ok {
			s.Exclude = p.strList(v.val, key+".exclude", `a list of patterns such as ["*.tmp", "cache/"]`)
		}
		if v, ok := f["staging-dir"]; ok {
			s.StagingDir, _ = p.str(v.val, key+".staging-dir", "an absolute directory outside every source")
		}
		p.job.Sources = append(p.job.Sources, s)
	}
}

func (p *parser) quiesce(n *yaml.Node) {
	f, ok := p.mapping(n, "quiesce", quiesceKeys, "write e.g. quiesce: {inactivity: 3s, max-wait: 60s}")
	if !ok {
		return
	}
	q := &p.job.Quiesce
	if v, ok := f["inactivity"]; ok {
		q.Inactivity, _ = p.duration(v.val, "quiesce.inactivity")
	}
	if v, ok := f["max-wait"]; ok {
		q.MaxWait, _ = p.duration(v.val, "quiesce.max-wait")
	}
	if v, ok := f["on-timeout"]; ok {
		q.OnTimeout, _ = p.oneOf(v.val, "quiesce.on-timeout", OnTimeoutActions)
	}
	if v, ok := f["hold"]; ok {
		q.Hold, _ = p.oneOf(v.val, "quiesce.hold", HoldModes)
	}
	if v, ok := f["hold-timeout"]; ok {
		q.HoldTimeout, _ = p.duration(v.val, "quiesce.hold-timeout")
	}
	if v, ok := f["hold-exclude"]; ok {
		q.HoldExclude = p.strList(v.val, "quiesce.hold-exclude", `a list of process names or executable paths, e.g. [backup-agent, /usr/sbin/auditd]`)
	}
}

func (p *parser) writers(n *yaml.Node) {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "writers", "write each writer on its own line, e.g. - sqlite: /srv/app/app.db", "must be a list, not %s", describe(n))
		return
	}
	for i, e := range n.Content {
		key := fmt.Sprintf("writers[%d]", i)
		f, ok := p.mapping(e, key, writerKeys, "write e.g. - sqlite: /srv/app/app.db")
		if !ok {
			continue
		}
		var kinds []field
		for _, k := range append(append([]string{}, WriterKinds...), "mariadb") {
			if v, ok := f[k]; ok {
				kinds = append(kinds, v)
			}
		}
		if len(kinds) != 1 {
			if len(kinds) == 0 {
				p.errorf(resolve(e), key, "start the entry with one of: "+strings.Join(WriterKinds, ", "), "the writer has no kind")
			} else {
				p.errorf(kinds[1].key, key, "put each writer in its own list entry (its own '- ')", "one entry names two writers, %s and %s", kinds[0].key.Value, kinds[1].key.Value)
			}
			continue
		}
		kf := kinds[0]
		w := WriterSpec{Kind: kf.key.Value}
		if w.Kind == "mariadb" {
			w.Kind = "mysql" // the same protocol and writer
		}
		wkey := key + "." + kf.key.Value
		p.set(key, kf.key)
		if v, ok := f["checkpoint"]; ok {
			if w.Kind == "postgres" {
				w.Checkpoint, _ = p.boolean(v.val, key+".checkpoint")
			} else {
				p.errorf(v.key, key+".checkpoint", "remove it; checkpoint: is a key of postgres: writers", "checkpoint is only for a postgres writer, not a %s writer", kf.key.Value)
			}
		}
		if w.Kind == "command" {
			if _, ok := f["timeout"]; ok {
				p.errorf(f["timeout"].key, key+".timeout", "move it inside: command: {freeze: ..., thaw: ..., timeout: 30s}", "the command writer's timeout belongs inside command:")
			}
			if _, ok := f["on-timeout"]; ok {
				p.errorf(f["on-timeout"].key, key+".on-timeout", "move it inside: command: {freeze: ..., thaw: ..., on-timeout: fail}", "the command writer's on-timeout belongs inside command:")
			}
			cf, ok := p.mapping(kf.val, wkey, commandKeys, `write command: {freeze: "app-ctl pause", thaw: "app-ctl resume", timeout: 30s}`)
			if !ok {
				continue
			}
			for _, k := range []string{"freeze", "thaw"} {
				v, ok := cf[k]
				if !ok {
					p.errorf(kf.key, wkey+"."+k, fmt.Sprintf(`add %s: "app-ctl %s"; a command writer needs both freeze and thaw so the application is never left paused`, k, map[string]string{"freeze": "pause", "thaw": "resume"}[k]), "the command writer has no %s command", k)
					continue
				}
				s, _ := p.str(v.val, wkey+"."+k, "a shell command line")
				if k == "freeze" {
					w.Freeze = s
				} else {
					w.Thaw = s
				}
			}
			if v, ok := cf["timeout"]; ok {
				w.Timeout, _ = p.duration(v.val, wkey+".timeout")
			} else {
				w.Timeout = quiesce.DefaultCommandTimeout
			}
			if v, ok := cf["on-timeout"]; ok {
				w.OnTimeout, _ = p.oneOf(v.val, wkey+".on-timeout", OnTimeoutActions)
			}
		} else {
			w.Target, _ = p.str(kf.val, wkey, map[string]string{
				"sqlite":   "the database file, e.g. /srv/app/app.db",
				"postgres": `a connection string, e.g. "host=127.0.0.1 port=5432 user=postgres"`,
				"mysql":    `a DSN, e.g. "root@tcp(127.0.0.1:3306)/"`,
			}[w.Kind])
			if v, ok := f["timeout"]; ok {
				w.Timeout, _ = p.duration(v.val, key+".timeout")
			}
			if v, ok := f["on-timeout"]; ok {
				w.OnTimeout, _ = p.oneOf(v.val, key+".on-timeout", OnTimeoutActions)
			}
		}
		p.job.Writers = append(p.job.Writers, w)
	}
}

func (p *parser) hooks(n *yaml.Node) {
	f, ok := p.mapping(n, "hooks", hookPoints, "write e.g. hooks: {before-backup: [{run: \"app-ctl stop\"}]}")
	if !ok {
		return
	}
	p.job.Hooks = quiesce.Hooks{}
	for _, pt := range hookPoints {
		v, ok := f[pt]
		if !ok {
			continue
		}
		key := "hooks." + pt
		list := v.val
		if list.Kind != yaml.SequenceNode { // a single hook without the list
			list = &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{list}}
		}
		for i, e := range list.Content {
			e = resolve(e)
			hkey := fmt.Sprintf("%s[%d]", key, i)
			if h, ok := p.hook(e, hkey, quiesce.Point(pt)); ok {
				p.job.Hooks[quiesce.Point(pt)] = append(p.job.Hooks[quiesce.Point(pt)], h)
			}
		}
	}
}

const hookHint = `write {run: "shell command"} or {argv: [program, arg]}, with optional timeout: and essential:`

func (p *parser) hook(e *yaml.Node, key string, pt quiesce.Point) (quiesce.Hook, bool) {
	var h quiesce.Hook
	p.set(key, e)
	if e.Kind == yaml.ScalarNode && e.Tag != "!!null" { // "- app-ctl stop"
		h.Run = e.Value
		return h, true
	}
	f, ok := p.mapping(e, key, hookKeys, hookHint)
	if !ok {
		return h, false
	}
	run, hasRun := f["run"]
	argv, hasArgv := f["argv"]
	switch {
	case hasRun && hasArgv:
		p.errorf(argv.key, key, "keep run: for a shell command line or argv: for a program with arguments, not both", "the hook has both run and argv")
		return h, false
	case hasRun:
		if h.Run, ok = p.str(run.val, key+".run", hookHint); ok && strings.TrimSpace(h.Run) == "" {
			p.errorf(run.val, key+".run", hookHint, "the command is empty")
			return h, false
		}
	case hasArgv:
		h.Argv = p.strList(argv.val, key+".argv", "a list such as [/usr/bin/app-ctl, stop]")
		if len(h.Argv) == 0 || h.Argv[0] == "" {
			p.errorf(argv.val, key+".argv", "a list such as [/usr/bin/app-ctl, stop]", "the command is empty")
			return h, false
		}
	default:
		p.errorf(e, key, hookHint, "the hook has no command")
		return h, false
	}
	if v, ok := f["timeout"]; ok {
		h.Timeout, _ = p.duration(v.val, key+".timeout")
	}
	if v, ok := f["essential"]; ok {
		h.Essential, _ = p.boolean(v.val, key+".essential")
		if h.Essential && pt == quiesce.OnError {
			p.warnf(v.val, key+".essential", "remove essential: it only matters where it can stop the run", "essential has no effect on an on-error hook: the run has already failed")
		}
	}
	return h, true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// suggest is the hint for an unknown key.
func suggest(got string, allowed []string) string {
	if d := closest(got, allowed); d != "" {
		return fmt.Sprintf("did you mean %q?", d)
	}
	return "known keys here: " + strings.Join(allowed, ", ")
}

// closest returns the allowed word got most likely meant: the same but for
// case, '_' for '-' or a missing '-', or a small typo; "" when none is close.
func closest(got string, allowed []string) string {
	norm := func(s string) string {
		return strings.NewReplacer("-", "", "_", "", " ", "").Replace(strings.ToLower(s))
	}
	best, bestD := "", 3
	for _, a := range allowed {
		if norm(a) == norm(got) {
			return a
		}
		limit := min(2, len(a)/3)
		if d := editDistance(norm(got), norm(a)); d <= limit && d < bestD {
			best, bestD = a, d
		}
	}
	if best == "" {
		for _, a := range allowed { // "postgresql" → "postgres", "repo" → "repository"
			g, n := norm(got), norm(a)
			if len(n) >= 4 && len(g) >= 4 && (strings.HasPrefix(g, n) || strings.HasPrefix(n, g)) {
				return a
			}
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
