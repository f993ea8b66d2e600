package job

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/schedule"
)

// The keys of the service (stillpoint daemon): name, schedule, jitter,
// retry-after, and notify (notify.go).

const (
	scheduleHint = `a cron line such as "0 2 * * *" (minute hour day month weekday), @daily, or an interval such as "every 6h"`
	nameHint     = "letters, digits, '.', '_' and '-', e.g. name: app-db"
	maxNameLen   = 64
)

var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// service parses the top-level service keys.
func (p *parser) service(f map[string]field) {
	j := p.job
	if _, ok := f["name"]; !ok && p.file != "" {
		j.Name = defaultName(p.file)
		if !validName(j.Name) {
			p.errorf(nil, "name", "add name: to the job file, "+nameHint, "the job is named after its file, %q, which is not usable as a job name", j.Name)
		}
	}
	if v, ok := f["name"]; ok {
		if s, ok := p.str(v.val, "name", nameHint); ok {
			if !validName(s) {
				p.errorf(v.val, "name", nameHint, "%q is not usable as a job name", s)
			}
			j.Name = s
		}
	}
	if v, ok := f["schedule"]; ok {
		if s, ok := p.str(v.val, "schedule", scheduleHint); ok {
			sched, err := schedule.Parse(s)
			if err != nil {
				p.errorf(v.val, "schedule", scheduleHint, "%v", err)
			}
			j.Schedule = sched
		}
	}
	if v, ok := f["jitter"]; ok {
		j.Jitter, _ = p.duration(v.val, "jitter")
		switch {
		case j.Schedule == nil && f["schedule"].key == nil:
			p.errorf(v.key, "jitter", "add schedule: or remove jitter:", "jitter without a schedule")
		case j.Schedule != nil:
			if gap := schedule.Shortest(j.Schedule, time.Now()); j.Jitter >= gap {
				p.errorf(v.val, "jitter", fmt.Sprintf("make it shorter than %v, the shortest time between two runs of %q", gap, j.Schedule), "the jitter %v is not below the time between runs", j.Jitter)
			}
		}
	}
	if v, ok := f["retry-after"]; ok {
		d, ok := p.duration(v.val, "retry-after")
		if ok && d == 0 {
			p.errorf(v.val, "retry-after", "a duration such as 15m; remove the key for the default", "retry-after must be more than 0")
		}
		j.RetryAfter = d
		if j.Schedule != nil && d > 0 {
			if gap := schedule.Shortest(j.Schedule, time.Now()); d >= gap {
				p.warnf(v.val, "retry-after", fmt.Sprintf("make it shorter than %v, or the next scheduled run comes first and does the work", gap),
					"the follow-up run %v after a run would come no sooner than the next scheduled run", d)
			}
		}
	}
}

func validName(s string) bool { return len(s) <= maxNameLen && nameRe.MatchString(s) }

// defaultName is the name of a job without name: its file's name without
// the extension.
func defaultName(file string) string {
	base := filepath.Base(file)
	for _, ext := range []string{".yaml", ".yml"} {
		base = strings.TrimSuffix(base, ext)
	}
	return base
}
