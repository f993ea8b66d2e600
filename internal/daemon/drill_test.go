package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/history"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/run"
	"github.com/stillpoint-backup/stillpoint/internal/schedule"
	"github.com/stillpoint-backup/stillpoint/internal/web"
)

// A job with drill.schedule: a real backup at start, then a real drill
// at the drill's time (not before), recorded as kind drill with its
// checks and counted in the metrics; after a reload that adds a failing
// command verifier, the next drill is failed, names the verifier and
// reaches the webhook, which the passing one did not.
func TestDrillRunsOnItsScheduleAndAFailingVerifierIsReported(t *testing.T) {
	t.Setenv("STILLPOINT_CACHE_DIR", t.TempDir())
	var mu sync.Mutex
	var hooks []struct {
		Kind, Status, Summary string
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct{ Kind, Status, Summary string }
		json.NewDecoder(r.Body).Decode(&p)
		mu.Lock()
		hooks = append(hooks, p)
		mu.Unlock()
	}))
	defer srv.Close()

	src, scratch, jobs, state := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "app.txt"), []byte("the application's data"), 0o600); err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pw, []byte("drill test password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	body := func(drill string) string {
		return jobBody(src, fmt.Sprintf("schedule: every 6h\nnotify:\n  webhook:\n    url: %s\n    on: [failure]\ndrill:\n  schedule: every 1h\n  scratch: %s\n%s", srv.URL, scratch, drill))
	}
	writeJob(t, jobs, "app", body("  level: read\n"))
	clock := schedule.NewFake(start)
	logs := &syncBuffer{}
	d, err := New(Options{JobsDir: jobs, StateDir: state, NoWeb: true, Clock: clock, MaxSleep: time.Minute, Log: log.New(logs, "", 0),
		Access: run.Access{Repository: filepath.Join(t.TempDir(), "repo"), PasswordFile: pw}})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{d: d, clock: clock, log: logs}
	h.start(t)
	ctx := context.Background()
	runsOf := func(kind history.Kind) []*history.Run {
		all, err := d.hist.List(ctx, "app", 0)
		if err != nil {
			t.Fatal(err)
		}
		var out []*history.Run
		for _, r := range all {
			if r.Kind == kind {
				out = append(out, r)
			}
		}
		return out
	}
	eventually(t, "the first backup", func() bool { return len(runsOf(history.Full)) == 1 })
	h.idle(t, "app")
	if b := runsOf(history.Full)[0]; b.Status != history.Success {
		t.Fatalf("the backup: %+v (log:\n%s)", b, logs)
	}
	if n := len(runsOf(history.Drill)); n != 0 {
		t.Fatalf("%d drills before the drill's time", n)
	}
	jobsNow, _ := source{d}.Jobs(ctx)
	if len(jobsNow) != 1 || jobsNow[0].DrillSchedule != "every 1h" || !jobsNow[0].NextDrill.Equal(start.Add(time.Hour)) || jobsNow[0].LastDrill != nil {
		t.Fatalf("the job before its first drill: %+v", jobsNow)
	}

	advance := func() {
		eventually(t, "the timers", func() bool { return clock.Timers() >= 2 })
		clock.Advance(time.Hour)
	}
	advance()
	eventually(t, "the first drill", func() bool { return len(runsOf(history.Drill)) == 1 })
	dr := runsOf(history.Drill)[0]
	backup := runsOf(history.Full)[0]
	if dr.Status != history.Success || dr.Trigger != string(schedule.Scheduled) || dr.Snapshot != backup.Snapshot || len(dr.Errors) != 0 || len(dr.Steps) != 2 ||
		dr.Steps[0].Name != "check" || dr.Steps[1].Name != "restore" || dr.Steps[1].Status != "ok" {
		t.Fatalf("the drill in the history: %+v (log:\n%s)", dr, logs)
	}
	if entries, _ := os.ReadDir(scratch); len(entries) != 0 {
		t.Errorf("the drill left %d entries in its scratch directory", len(entries))
	}
	if n := len(runsOf(history.Full)); n != 1 {
		t.Errorf("%d backups: the drill's time ran a backup", n)
	}
	eventually(t, "the drill to be shown", func() bool {
		js, _ := source{d}.Jobs(ctx)
		return js[0].LastDrill != nil
	})
	js, _ := source{d}.Jobs(ctx)
	if js[0].LastDrill.Kind != "drill" || js[0].LastDrill.Status != web.StatusOK || js[0].LastRun == nil || js[0].LastRun.Kind != "backup" {
		t.Errorf("the job after its drill: last drill %+v, last run %+v", js[0].LastDrill, js[0].LastRun)
	}
	if m := scrape(t, d.Metrics()); m["stillpoint_last_drill_passed"] != 1 || m["stillpoint_last_drill_success_timestamp_seconds"] != float64(dr.End.Unix()) ||
		m["stillpoint_runs_in_progress"] != 0 || m["stillpoint_last_run_success"] != 1 {
		t.Errorf("metrics after the drill: %v", m)
	}

	// a command verifier runs under /bin/sh, on Windows under cmd /C
	failing := "echo no good >&2; exit 3"
	if runtime.GOOS == "windows" {
		failing = "echo no good 1>&2 & exit 3"
	}
	writeJob(t, jobs, "app", body("  level: restore\n  verify:\n    - command: "+failing+"\n"))
	if err := d.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if js, _ := (source{d}).Jobs(ctx); !js[0].NextDrill.Equal(start.Add(2 * time.Hour)) {
		t.Errorf("after a reload that kept the drill's schedule, the next drill is at %v, want %v", js[0].NextDrill, start.Add(2*time.Hour))
	}
	advance()
	eventually(t, "the second drill", func() bool { return len(runsOf(history.Drill)) == 2 })
	failed := runsOf(history.Drill)[0]
	if failed.Status != history.Failed || len(failed.Errors) != 1 || !strings.Contains(failed.Errors[0], "command") || !strings.Contains(failed.Errors[0], "no good") {
		t.Fatalf("the failed drill in the history: %+v", failed)
	}
	det, err := source{d}.Run(ctx, fmt.Sprint(failed.ID))
	if err != nil || len(det.Checks) != 3 || det.Checks[2].Name != "command" || det.Checks[2].OK || det.Status != web.StatusFailed {
		t.Errorf("the failed drill's page: %+v %v", det, err)
	}
	eventually(t, "the webhook of the failed drill", func() bool { mu.Lock(); defer mu.Unlock(); return len(hooks) == 1 })
	mu.Lock()
	if p := hooks[0]; p.Kind != "drill" || p.Status != "failed" || !strings.Contains(p.Summary, "1 of 3 checks") {
		t.Errorf("webhook payload %+v", p)
	}
	mu.Unlock()
	if m := scrape(t, d.Metrics()); m["stillpoint_last_drill_passed"] != 0 || m["stillpoint_last_drill_success_timestamp_seconds"] != float64(dr.End.Unix()) {
		t.Errorf("metrics after the failed drill: %v", m)
	}
	if !strings.Contains(logs.String(), "job app: drill of snapshot") || !strings.Contains(logs.String(), "failed") {
		t.Errorf("the log does not tell of the drills:\n%s", logs)
	}
}

// Two jobs whose drills fall due together: one drill runs at a time.
func TestDrillsRunOneAtATime(t *testing.T) {
	h := newHarness(t, map[string]string{
		"a": jobBody("%s", "schedule: every 6h\ndrill:\n  schedule: every 1h\n"),
		"b": jobBody("%s", "schedule: every 6h\ndrill:\n  schedule: every 1h\n"),
	})
	var mu sync.Mutex
	inside, most, calls := 0, 0, 0
	release := make(chan struct{})
	h.d.drillFn = func(ctx context.Context, js *jobState) (*repo.Snapshot, *repo.DrillResult, error) {
		mu.Lock()
		inside++
		calls++
		most = max(most, inside)
		mu.Unlock()
		<-release
		mu.Lock()
		inside--
		mu.Unlock()
		return nil, nil, fmt.Errorf("no snapshot of job %s", js.job.Name)
	}
	h.start(t)
	eventually(t, "the first backups", func() bool { return h.runs.count() == 2 })
	h.idle(t, "a")
	h.idle(t, "b")
	eventually(t, "the timers", func() bool { return h.clock.Timers() >= 2 })
	h.clock.Advance(time.Hour)
	eventually(t, "a drill", func() bool { mu.Lock(); defer mu.Unlock(); return calls == 1 })
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	if calls != 1 {
		t.Errorf("%d drills started together", calls)
	}
	mu.Unlock()
	close(release)
	eventually(t, "both drills", func() bool { mu.Lock(); defer mu.Unlock(); return calls == 2 })
	if most != 1 {
		t.Errorf("%d drills ran at once", most)
	}
	for _, job := range []string{"a", "b"} {
		eventually(t, job+"'s drill recorded", func() bool {
			r, err := h.d.lastOf(context.Background(), job, true)
			return err == nil && r.Status == history.Failed && strings.Contains(strings.Join(r.Errors, ""), "no snapshot of job "+job)
		})
	}
}
