package job

import (
	"reflect"
	"strings"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/retention"
)

func TestRetention(t *testing.T) {
	j, warns, err := Parse("job.yaml", []byte(nativeYAML(`sources: [/srv/app]
tags: [nightly]
retention:
  keep-last: 3
  keep-daily: 7
  keep-weekly: unlimited
  keep-within: 1y2m
  keep-within-daily: 30d
  keep-within-hourly: 36h
  keep-tag: [monthly, "db, nightly"]
  group-by: host,paths,tags
`)))
	if err != nil || len(warns) > 0 {
		t.Fatalf("%v %v", err, warns)
	}
	want := &Retention{
		Policy: retention.Policy{Last: 3, Daily: 7, Weekly: retention.Unlimited, Within: retention.Duration{Years: 1, Months: 2},
			WithinDaily: retention.Duration{Days: 30}, WithinHourly: retention.Duration{Hours: 36},
			Tags: []retention.TagList{{"monthly"}, {"db", "nightly"}}},
		GroupBy: retention.GroupBy{Host: true, Paths: true, Tags: true},
	}
	if !reflect.DeepEqual(j.Retention, want) {
		t.Errorf("got  %+v\nwant %+v", j.Retention, want)
	}
	if p, ok := j.Pos("retention.keep-weekly"); !ok || p.Line != 6 {
		t.Errorf("position of retention.keep-weekly: %v %v", p, ok)
	}

	j, _, err = Parse("job.yaml", []byte(nativeYAML("sources: [/srv/app]\nretention: {keep-daily: 7}\n")))
	if err != nil || j.Retention.GroupBy != retention.DefaultGroupBy {
		t.Errorf("default group-by: %+v, %v", j.Retention, err)
	}
	if j, _, _ := Parse("job.yaml", []byte(nativeYAML("sources: [/srv/app]\n"))); j.Retention != nil {
		t.Errorf("no retention: %+v", j.Retention)
	}
}

func TestRetentionErrors(t *testing.T) {
	for _, c := range []struct {
		yaml string
		want []string // in the message, each
	}{
		{"retention: {keep-daily: -1}", []string{"job.yaml:2:25: retention.keep-daily: negative count -1", "hint: write unlimited"}},
		{"retention: {keep-daily: many}", []string{"retention.keep-daily: must be a count", "unlimited"}},
		{"retention: {keep-daily: 1.5}", []string{"retention.keep-daily: must be a count"}},
		{"retention: {keep-within: 30}", []string{"retention.keep-within: the duration 30 has no unit", "write 30d"}},
		{"retention: {keep-within: 2w}", []string{`"2w" is not a retention duration`, "write 14d rather than 2w"}},
		{"retention: {keep-within-daily: -3d}", []string{"negative duration -3d"}},
		{"retention: {keep-dayly: 7}", []string{`unknown key "keep-dayly"`, `did you mean "keep-daily"?`}},
		{"retention:\n  group-by: host,user", []string{"retention.group-by", `unknown grouping "user"`}},
		{"retention: {}", []string{"retention has no rule", "remove retention: to keep every snapshot"}},
		{"retention: {keep-last: 0}", []string{"retention has no rule"}},
		{"retention: 7", []string{"retention: must be a mapping"}},
		{`retention: {keep-tag: [""]}`, []string{"retention.keep-tag[0]: the tag is empty"}},
	} {
		_, _, err := Parse("job.yaml", []byte(nativeYAML("sources: [/srv/app]\n"+c.yaml+"\n")))
		if err == nil {
			t.Errorf("%s: no error", c.yaml)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", c.yaml, err, w)
			}
		}
	}
	// only keep-tag, and the job's snapshots do not carry it: a warning
	_, warns, err := Parse("job.yaml", []byte(nativeYAML("sources: [/srv/app]\ntags: [nightly]\nretention: {keep-tag: [monthly]}\n")))
	if err != nil || len(warns) != 1 || !strings.Contains(warns[0].String(), "match no keep-tag list") {
		t.Errorf("keep-tag only: %v %v", warns, err)
	}
	if _, warns, err := Parse("job.yaml", []byte(nativeYAML("sources: [/srv/app]\ntags: [monthly]\nretention: {keep-tag: [monthly]}\n"))); err != nil || len(warns) != 0 {
		t.Errorf("keep-tag the job carries: %v %v", warns, err)
	}
}
