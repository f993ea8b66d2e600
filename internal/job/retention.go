package job

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/stillpoint-backup/stillpoint/internal/retention"
)

// Retention is a job's forget policy, applied to the snapshots of the
// job's host and paths after each backup of the job that saved a snapshot.
type Retention struct {
	Policy  retention.Policy
	GroupBy retention.GroupBy
}

var retentionKeys = []string{"keep-last", "keep-hourly", "keep-daily", "keep-weekly", "keep-monthly", "keep-yearly",
	"keep-within", "keep-within-hourly", "keep-within-daily", "keep-within-weekly", "keep-within-monthly", "keep-within-yearly",
	"keep-tag", "group-by"}

const (
	retentionHint      = "write e.g. retention: {keep-daily: 7, keep-weekly: 4, keep-monthly: 12}"
	retentionCountHint = "a whole number from 0, or unlimited"
	retentionDurHint   = "years, months, days and hours, e.g. 1y6m, 30d or 36h (as restic's --keep-within)"
)

func (p *parser) retention(n *yaml.Node) {
	f, ok := p.mapping(n, "retention", retentionKeys, retentionHint)
	if !ok {
		return
	}
	r := &Retention{GroupBy: retention.DefaultGroupBy}
	pol := &r.Policy
	counts := map[string]*int{"keep-last": &pol.Last, "keep-hourly": &pol.Hourly, "keep-daily": &pol.Daily,
		"keep-weekly": &pol.Weekly, "keep-monthly": &pol.Monthly, "keep-yearly": &pol.Yearly}
	durations := map[string]*retention.Duration{"keep-within": &pol.Within, "keep-within-hourly": &pol.WithinHourly,
		"keep-within-daily": &pol.WithinDaily, "keep-within-weekly": &pol.WithinWeekly,
		"keep-within-monthly": &pol.WithinMonthly, "keep-within-yearly": &pol.WithinYearly}
	for _, k := range retentionKeys {
		v, ok := f[k]
		if !ok {
			continue
		}
		key := "retention." + k
		switch {
		case counts[k] != nil:
			*counts[k], _ = p.retentionCount(v.val, key)
		case durations[k] != nil:
			*durations[k], _ = p.retentionDuration(v.val, key)
		case k == "keep-tag":
			for i, s := range p.strList(v.val, key, `a list of tags, e.g. [monthly]; "a,b" keeps snapshots that have both`) {
				l := retention.ParseTagList(s)
				pol.Tags = append(pol.Tags, l)
				if strings.TrimSpace(s) == "" {
					p.errorf(resolve(v.val), fmt.Sprintf("%s[%d]", key, i), "name a tag the job's snapshots carry, e.g. keep-tag: [monthly]", "the tag is empty")
				}
			}
		case k == "group-by":
			s, ok := p.str(v.val, key, "host,paths (the default), or host,paths,tags")
			if ok {
				g, err := retention.ParseGroupBy(s)
				if err != nil {
					p.errorf(v.val, key, "host,paths (the default), or host,paths,tags", "%v", err)
				}
				r.GroupBy = g
			}
		}
	}
	p.set("retention", resolve(n))
	p.job.Retention = r
}

func (p *parser) retentionCount(n *yaml.Node, key string) (int, bool) {
	p.set(key, n)
	n = resolve(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" && n.Value == "unlimited" {
		return retention.Unlimited, true
	}
	var v int
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&v) != nil {
		p.errorf(n, key, retentionCountHint, "must be a count, not %s", describe(n))
		return 0, false
	}
	if v < 0 {
		p.errorf(n, key, "write unlimited to keep one snapshot of every period", "negative count %d", v)
		return 0, false
	}
	return v, true
}

func (p *parser) retentionDuration(n *yaml.Node, key string) (retention.Duration, bool) {
	p.set(key, n)
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, key, retentionDurHint, "must be a duration, not %s", describe(n))
		return retention.Duration{}, false
	}
	if n.Tag == "!!int" || n.Tag == "!!float" {
		p.errorf(n, key, fmt.Sprintf("write %sd for days or %sh for hours", n.Value, n.Value), "the duration %s has no unit", n.Value)
		return retention.Duration{}, false
	}
	d, err := retention.ParseDuration(n.Value)
	if err != nil {
		hint := retentionDurHint
		if strings.ContainsAny(n.Value, "ws") {
			hint += "; there are no weeks, minutes or seconds: write 14d rather than 2w"
		}
		p.errorf(n, key, hint, "%q is not a retention duration", n.Value)
		return retention.Duration{}, false
	}
	if d.Years < 0 || d.Months < 0 || d.Days < 0 || d.Hours < 0 {
		p.errorf(n, key, retentionDurHint, "negative duration %s", n.Value)
		return retention.Duration{}, false
	}
	return d, true
}

// retention checks the policy as a whole.
func (v *validator) retention() {
	r := v.j.Retention
	if r == nil {
		return
	}
	if err := r.Policy.Validate(); err != nil {
		v.errorf("retention", retentionHint, "%v", err)
		return
	}
	if r.Policy.Empty() {
		v.errorf("retention", retentionHint+"; remove retention: to keep every snapshot",
			"retention has no rule that keeps a snapshot: it would remove them all, and is refused (as restic refuses an empty policy)")
		return
	}
	onlyTags := r.Policy
	onlyTags.Tags = nil
	if onlyTags.Empty() {
		// only keep-tag: the job's own snapshots must carry one of the lists
		for _, l := range r.Policy.Tags {
			if matchesAll(l, v.j.Tags) {
				return
			}
		}
		v.warnf("retention.keep-tag", "add a counting rule such as keep-last: 1, or give the job a tag the list keeps",
			"the job's snapshots (tags %v) match no keep-tag list: retention keeps only older snapshots that do, and refuses to run when none do", v.j.Tags)
	}
}

func matchesAll(l retention.TagList, tags []string) bool {
	for _, t := range l {
		if !contains(tags, t) {
			return false
		}
	}
	return true
}
