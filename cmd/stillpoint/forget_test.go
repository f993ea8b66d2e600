package main

import (
	"errors"
	"reflect"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/retention"
	"github.com/stillpoint-backup/stillpoint/internal/run"
)

// parseForget parses a forget command line into the run's options.
func parseForget(t *testing.T, args ...string) (run.ForgetOptions, error) {
	t.Helper()
	var f forgetFlags
	cmd := forgetCmd(&globals{}, &f)
	if err := cmd.ParseFlags(args); err != nil {
		return run.ForgetOptions{}, err
	}
	return forgetOptions(f, cmd.Flags().Args())
}

func TestForgetFlags(t *testing.T) {
	o, err := parseForget(t, "--keep-last", "3", "-d", "unlimited", "--keep-weekly=2", "--keep-within", "1y2m",
		"--keep-within-daily", "7d", "--keep-tag", "a,b", "--keep-tag", "c", "--group-by", "host,tags",
		"--host", "h1", "--tag", "x, y", "--path", "/srv", "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	want := retention.Policy{Last: 3, Daily: retention.Unlimited, Weekly: 2, Within: retention.Duration{Years: 1, Months: 2},
		WithinDaily: retention.Duration{Days: 7}, Tags: []retention.TagList{{"a", "b"}, {"c"}}}
	if !reflect.DeepEqual(o.Policy, want) {
		t.Errorf("policy %+v, want %+v", o.Policy, want)
	}
	if o.GroupBy != (retention.GroupBy{Host: true, Tags: true}) || !o.DryRun {
		t.Errorf("group-by %+v, dry-run %v", o.GroupBy, o.DryRun)
	}
	wantF := retention.Filter{Hosts: []string{"h1"}, Tags: []retention.TagList{{"x", "y"}}, Paths: []string{"/srv"}}
	if !reflect.DeepEqual(o.Filter, wantF) {
		t.Errorf("filter %+v", o.Filter)
	}
	if o, err := parseForget(t, "--keep-last", "1"); err != nil || o.GroupBy != retention.DefaultGroupBy {
		t.Errorf("default group-by: %+v, %v", o.GroupBy, err)
	}
	if o, err := parseForget(t, "--group-by", ""); err != nil || o.GroupBy != (retention.GroupBy{}) {
		t.Errorf("--group-by '': %+v, %v", o.GroupBy, err)
	}

	for _, bad := range [][]string{
		{"--keep-last", "-1"}, {"--keep-daily", "x"}, {"--keep-within", "3w"}, {"--keep-within-hourly", "-2d"},
		{"--group-by", "user"},
	} {
		if _, err := parseForget(t, bad...); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
	var ee *exitError
	if _, err := parseForget(t, "--keep-last", "1", "abc123"); !errors.As(err, &ee) || ee.code != exitUsage || ee.err != run.ErrPolicyAndIDs {
		t.Errorf("policy and ids: %v", err)
	}
	if o, err := parseForget(t, "abc", "def"); err != nil || !reflect.DeepEqual(o.IDs, []string{"abc", "def"}) {
		t.Errorf("ids: %+v, %v", o.IDs, err)
	}
}
