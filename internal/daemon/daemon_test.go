package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stillpoint-backup/stillpoint/internal/archiver"
	"github.com/stillpoint-backup/stillpoint/internal/history"
	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/retryq"
	"github.com/stillpoint-backup/stillpoint/internal/run"
	"github.com/stillpoint-backup/stillpoint/internal/schedule"
	"github.com/stillpoint-backup/stillpoint/internal/web"
)

// syncBuffer is a log that tests read while the daemon writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fakeRuns stands in for run.RunJob: it records each call, may block
// until released, and answers with a snapshot in which the files of
// failing are failed (locked), updating the queue as RunJob does.
type fakeRuns struct {
	mu      sync.Mutex
	calls   []run.JobRun
	block   chan struct{} // nil: return at once
	failing map[string]bool
}

func (f *fakeRuns) run(ctx context.Context, jr run.JobRun) (*run.JobResult, error) {
	f.mu.Lock()
	f.calls = append(f.calls, jr)
	block := f.block
	failing := map[string]bool{}
	for p := range f.failing {
		failing[p] = true
	}
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return &run.JobResult{}, ctx.Err()
		}
	}
	res := &run.JobResult{}
	tried := []string{jr.Options.Sources[0].Path}
	if jr.FollowUp {
		tried = nil
		for _, e := range jr.Queue.Due(jr.Now()) {
			res.Files = append(res.Files, run.RetryFile{Path: e.Path, Counted: e.Outcome})
			tried = append(tried, e.Path)
		}
		if len(tried) == 0 {
			return res, run.ErrNothingQueued
		}
	}
	snap := &repo.Snapshot{ID: repo.NewRandomID(), Paths: []string{jr.Options.Sources[0].Path},
		Outcomes: map[string]int64{"ok": 2}, Stats: repo.Stats{BytesRead: 1000, DataAdded: 600}}
	b := &run.BackupResult{Snapshot: snap}
	for p := range failing {
		b.Problems = append(b.Problems, archiver.Problem{Path: p, Outcome: outcome.Failed, Reason: outcome.ReasonLocked, Holder: "flock[42]"})
		snap.Outcomes["failed"]++
		snap.Partial = true
	}
	res.Backup = b
	now := jr.Now()
	ch, err := jr.Queue.Update(now, tried, retryq.FromProblems(b.Problems), jr.Policy)
	res.Retry = &run.RetryOutcome{Change: ch, Sentence: run.RetrySentence(ch, now, jr.FollowUp), Left: jr.Queue.Len(), Next: jr.Queue.NextAttempt(), Err: err}
	return res, nil
}

func (f *fakeRuns) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

func (f *fakeRuns) last() run.JobRun {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[len(f.calls)-1]
}

func (f *fakeRuns) setFailing(paths ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failing = map[string]bool{}
	for _, p := range paths {
		f.failing[p] = true
	}
}

type harness struct {
	d      *Daemon
	clock  *schedule.Fake
	runs   *fakeRuns
	log    *syncBuffer
	jobs   string
	state  string
	src    string
	cancel context.CancelFunc
	done   chan error
}

var start = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func writeJob(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func jobBody(src, extra string) string {
	return fmt.Sprintf("version: 1\nsources:\n  - path: %s\n    snapshot: off\n%s", src, extra)
}

// newHarness makes a daemon of the job files in files (name → body; %s
// is the source directory) on a fake clock, with fake runs.
func newHarness(t *testing.T, files map[string]string) *harness {
	t.Helper()
	h := &harness{clock: schedule.NewFake(start), runs: &fakeRuns{}, log: &syncBuffer{},
		jobs: t.TempDir(), state: t.TempDir(), src: t.TempDir()}
	for name, body := range files {
		writeJob(t, h.jobs, name, strings.ReplaceAll(body, "%s", h.src))
	}
	d, err := New(Options{JobsDir: h.jobs, StateDir: h.state, NoWeb: true, Clock: h.clock, MaxSleep: time.Minute,
		Log: log.New(h.log, "", 0), RunJob: h.runs.run})
	if err != nil {
		t.Fatal(err)
	}
	h.d = d
	// before the temporary directories go (cleanups run last first): a
	// daemon that runs is stopped first, and history.db is closed
	t.Cleanup(func() {
		h.stop()
		d.Close()
	})
	return h
}

func (h *harness) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- h.d.Run(ctx) }()
	t.Cleanup(h.stop)
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	<-h.done
}

// eventually waits (real time) for cond, advancing nothing.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *harness) idle(t *testing.T, job string) {
	t.Helper()
	eventually(t, job+" to finish its run", func() bool {
		h.d.mu.Lock()
		defer h.d.mu.Unlock()
		st, _ := h.d.sched.JobStatus(job)
		return h.d.running[job] == nil && !st.Running
	})
}

// A directory with one broken job file: the others load and are
// scheduled, and the error names the file and line.
func TestLoadReportsTheInvalidFileWithItsLineAndSchedulesTheOthers(t *testing.T) {
	h := newHarness(t, map[string]string{
		"home":   jobBody("%s", "schedule: every 6h\n"),
		"mail":   jobBody("%s", "name: mailbox\nschedule: \"0 2 * * *\"\n"),
		"broken": jobBody("%s", "schedule: every banana\n"),
	})
	if got := strings.Join(h.d.JobNames(), ","); got != "home,mailbox" {
		t.Fatalf("jobs %s, want home and mailbox (named by name:)", got)
	}
	probs := h.d.Problems()
	if len(probs) != 1 || !strings.Contains(probs[0].Error(), filepath.Join(h.jobs, "broken.yaml")+":5:") {
		t.Fatalf("problems %v, want broken.yaml line 5", probs)
	}
	if !strings.Contains(h.log.String(), "broken.yaml:5:") {
		t.Errorf("the log does not name broken.yaml:5:\n%s", h.log)
	}
	st, ok := h.d.sched.JobStatus("mailbox")
	if !ok || st.Schedule != "0 2 * * *" || st.Next.Local().Hour() != 2 {
		t.Errorf("mailbox scheduled %+v", st)
	}
	// two files of one name: the second is reported
	writeJob(t, h.jobs, "zagain", jobBody(h.src, "name: home\n"))
	if err := h.d.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "zagain.yaml:5:") || !strings.Contains(err.Error(), `"home" is taken`) {
		t.Errorf("reload with a duplicate name: %v", err)
	}
}

// A reload picks up an added, a removed and a changed job, and a file
// that broke keeps its job's previous definition.
func TestReloadAddsRemovesAndChangesJobs(t *testing.T) {
	h := newHarness(t, map[string]string{
		"a": jobBody("%s", "schedule: every 1h\n"),
		"b": jobBody("%s", "schedule: every 1h\n"),
		"c": jobBody("%s", "schedule: every 1h\n"),
	})
	h.start(t)
	eventually(t, "the first runs", func() bool { return h.runs.count() == 3 })
	for _, j := range []string{"a", "b", "c"} {
		h.idle(t, j)
	}
	os.Remove(filepath.Join(h.jobs, "a.yaml"))
	writeJob(t, h.jobs, "b", jobBody(h.src, "schedule: every 2h\n"))
	writeJob(t, h.jobs, "c", jobBody(h.src, "schedule: every\n"))
	writeJob(t, h.jobs, "d", jobBody(h.src, "schedule: every 30m\n"))
	err := h.d.Reload(context.Background())
	if err == nil || !strings.Contains(err.Error(), "c.yaml:5:") {
		t.Fatalf("reload: %v, want c.yaml's line", err)
	}
	if got := strings.Join(h.d.JobNames(), ","); got != "b,c,d" {
		t.Fatalf("jobs after reload %s, want b,c,d", got)
	}
	if st, _ := h.d.sched.JobStatus("b"); st.Schedule != "every 2h" || !st.Next.Equal(start.Add(2*time.Hour)) {
		t.Errorf("b after reload: %+v, want every 2h from its last run", st)
	}
	if st, _ := h.d.sched.JobStatus("c"); st.Schedule != "every 1h" {
		t.Errorf("c (its file broken) after reload: %+v, want its previous schedule", st)
	}
	if _, ok := h.d.sched.JobStatus("a"); ok {
		t.Error("a is still scheduled after its file was removed")
	}
	eventually(t, "d's first run", func() bool { return h.runs.count() == 4 })
	if got := h.runs.last().Name; got != "d" {
		t.Errorf("the run after the reload is of %s, want d", got)
	}
}

// A scheduled time that comes while the job runs is reported, not run
// a second time beside it.
func TestOverlapIsReportedNotDoubled(t *testing.T) {
	h := newHarness(t, map[string]string{"slow": jobBody("%s", "schedule: every 10s\n")})
	h.runs.block = make(chan struct{})
	h.start(t)
	eventually(t, "the first run", func() bool { return h.runs.count() == 1 })
	for range 3 {
		eventually(t, "the timers", func() bool { return h.clock.Timers() >= 2 })
		h.clock.Advance(10 * time.Second)
	}
	eventually(t, "the overlap in the log", func() bool { return strings.Contains(h.log.String(), "is skipped: the previous run still goes on") })
	if n := h.runs.count(); n != 1 {
		t.Fatalf("%d runs started while the first went on", n)
	}
	close(h.runs.block)
	h.idle(t, "slow")
	runs, _ := h.d.hist.List(context.Background(), "slow", 0)
	if len(runs) != 1 {
		t.Errorf("%d runs recorded, want 1", len(runs))
	}
}

// A full run whose time comes during a follow-up is not skipped: it waits
// for the follow-up and starts when that ends.
func TestFullRunDueDuringAFollowUpWaitsForIt(t *testing.T) {
	h := newHarness(t, map[string]string{"mail": jobBody("%s", "schedule: every 10m\nretry-after: 2m\n")})
	h.runs.setFailing(filepath.Join(h.src, "mail.box"))
	h.start(t)
	eventually(t, "the first run", func() bool { return h.runs.count() == 1 })
	h.idle(t, "mail")
	block := make(chan struct{})
	h.runs.mu.Lock()
	h.runs.block = block
	h.runs.mu.Unlock()
	for range 10 { // 09:10: the follow-up (09:02) still goes on
		eventually(t, "the timers", func() bool { return h.clock.Timers() >= 1 })
		h.clock.Advance(time.Minute)
		if h.runs.count() == 2 && !h.runs.last().FollowUp {
			t.Fatalf("the second run is not the follow-up: %+v", h.runs.last())
		}
	}
	eventually(t, "the follow-up", func() bool { return h.runs.count() == 2 })
	eventually(t, "the deferral in the log", func() bool { return strings.Contains(h.log.String(), "waits for the follow-up in progress") })
	if strings.Contains(h.log.String(), "is skipped") {
		t.Fatalf("a full run was skipped for a follow-up:\n%s", h.log.String())
	}
	h.runs.mu.Lock()
	h.runs.block = nil
	h.runs.mu.Unlock()
	close(block)
	eventually(t, "the full run after the follow-up", func() bool { return h.runs.count() == 3 })
	if jr := h.runs.last(); jr.FollowUp {
		t.Fatalf("the third run %+v, want the full run", jr)
	}
	h.idle(t, "mail")
	runs, _ := h.d.hist.List(context.Background(), "mail", 0)
	if len(runs) != 3 || runs[0].Kind != history.Full || runs[0].Trigger != "scheduled" || runs[1].Kind != history.FollowUp {
		t.Errorf("history (newest first): %+v", runs)
	}
}

// A run's results reach the history, the metrics, the job's webhook and
// the retry queue; its follow-up is planned at the queue's next attempt
// and runs then with only the queued file, and says so.
func TestRunReachesHistoryMetricsNotifyAndQueueAndFollowUpRunsAtNextAttempt(t *testing.T) {
	var mu sync.Mutex
	var hooks []notifyPayload
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p notifyPayload
		json.NewDecoder(r.Body).Decode(&p)
		mu.Lock()
		hooks = append(hooks, p)
		mu.Unlock()
	}))
	defer srv.Close()
	h := newHarness(t, map[string]string{"mail": jobBody("%s", fmt.Sprintf(
		"schedule: every 6h\nretry-after: 2m\nnotify:\n  webhook:\n    url: %s\n    on: [failure, flagged, success]\n", srv.URL))})
	locked := filepath.Join(h.src, "mail.box")
	h.runs.setFailing(locked)
	h.start(t)
	eventually(t, "the first run", func() bool { return h.runs.count() == 1 })
	h.idle(t, "mail")
	ctx := context.Background()

	last, err := h.d.hist.Last(ctx, "mail")
	if err != nil {
		t.Fatal(err)
	}
	if last.Kind != history.Full || last.Status != history.Partial || last.Outcomes["failed"] != 1 || last.RetriedFiles != 1 ||
		len(last.Flagged) != 1 || last.Flagged[0].Path != locked || !strings.Contains(last.Flagged[0].Reason, "locked") {
		t.Fatalf("history: %+v", last)
	}
	if got := retrySentence(last); got != "unable to back up 1 file (next attempt within 2 minutes)" {
		t.Errorf("history's retry sentence %q", got)
	}
	jobs, err := source{h.d}.Jobs(ctx)
	if err != nil || len(jobs) != 1 || len(jobs[0].Pending) != 1 || jobs[0].Pending[0].Path != locked ||
		jobs[0].LastRun == nil || jobs[0].LastRun.Retry != "unable to back up 1 file (next attempt within 2 minutes)" || jobs[0].LastRun.Error != "" {
		t.Fatalf("status page's jobs: %+v %v", jobs, err)
	}
	m := scrape(t, h.d.Metrics())
	if m["stillpoint_pending_retries"] != 1 || m[`stillpoint_last_run_files{outcome="failed"}`] != 1 ||
		m["stillpoint_last_success_timestamp_seconds"] != float64(last.End.Unix()) || m["stillpoint_read_bytes_total"] != 1000 {
		t.Errorf("metrics: %v", m)
	}
	eventually(t, "the webhook", func() bool { mu.Lock(); defer mu.Unlock(); return len(hooks) == 1 })
	if p := hooks[0]; p.Job != "mail" || p.Status != "partial" || len(p.Flagged) != 1 || !strings.Contains(p.Summary, "unable to back up 1 file") {
		t.Errorf("webhook payload %+v", p)
	}

	if got, want := h.d.NextFollowUp("mail"), start.Add(2*time.Minute); !got.Equal(want) {
		t.Fatalf("follow-up planned at %v, want the queue's next attempt %v", got, want)
	}
	h.runs.setFailing() // the lock is released
	h.clock.Advance(time.Minute)
	time.Sleep(50 * time.Millisecond)
	if n := h.runs.count(); n != 1 {
		t.Fatalf("a follow-up ran before its attempt was due (%d runs)", n)
	}
	h.clock.Advance(time.Minute)
	eventually(t, "the follow-up", func() bool { return h.runs.count() == 2 })
	if jr := h.runs.last(); !jr.FollowUp || !jr.DueOnly {
		t.Fatalf("second run %+v, want a follow-up", jr)
	}
	h.idle(t, "mail")
	fu, _ := h.d.hist.Last(ctx, "mail")
	if fu.Kind != history.FollowUp || fu.Trigger != "retry" || fu.Status != history.Success || fu.RetriedFiles != 1 ||
		retrySentence(fu) != "1 file backed up on retry" {
		t.Fatalf("follow-up in the history: %+v (%q)", fu, retrySentence(fu))
	}
	if runs, err := (source{h.d}).Runs(ctx, "mail", 1); err != nil || len(runs) != 1 || runs[0].Kind != "follow-up" || runs[0].Retry != "1 file backed up on retry" {
		t.Errorf("the follow-up on the status page: %+v %v", runs, err)
	}
	if m := scrape(t, h.d.Metrics()); m["stillpoint_pending_retries"] != 0 {
		t.Errorf("pending retries after the follow-up: %v", m["stillpoint_pending_retries"])
	}
	if !h.d.NextFollowUp("mail").IsZero() {
		t.Errorf("a follow-up is planned with an empty queue")
	}
}

// The queue is the job's file in the state directory: a new daemon
// finds the entry and plans its follow-up at the entry's time.
func TestQueueSurvivesRestart(t *testing.T) {
	files := map[string]string{"mail": jobBody("%s", "schedule: every 6h\nretry-after: 10m\n")}
	h := newHarness(t, files)
	h.runs.setFailing(filepath.Join(h.src, "x"))
	h.start(t)
	eventually(t, "the first run", func() bool { return h.runs.count() == 1 })
	h.idle(t, "mail")
	h.stop()
	d2, err := New(Options{JobsDir: h.jobs, StateDir: h.state, NoWeb: true, Clock: h.clock, Log: log.New(io.Discard, "", 0), RunJob: h.runs.run})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if got := d2.NextFollowUp("mail"); !got.Equal(start.Add(10 * time.Minute)) {
		t.Errorf("follow-up after restart planned at %v, want %v", got, start.Add(10*time.Minute))
	}
	st, _ := d2.sched.JobStatus("mail")
	if !st.Next.Equal(start.Add(6 * time.Hour)) {
		t.Errorf("the restarted daemon runs the job next at %v, want 6h after its last run", st.Next)
	}
}

// Cancelling the daemon cancels the run in progress, records it as failed
// and returns nil.
func TestStopCancelsTheRunAndRecordsIt(t *testing.T) {
	h := newHarness(t, map[string]string{"slow": jobBody("%s", "schedule: every 1h\n")})
	h.runs.block = make(chan struct{})
	h.start(t)
	eventually(t, "the run", func() bool { return h.runs.count() == 1 })
	h.cancel()
	h.cancel = nil
	if err := <-h.done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	hist, err := history.Open(filepath.Join(h.state, history.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer hist.Close()
	last, err := hist.Last(context.Background(), "slow")
	if err != nil || last.Status != history.Failed || len(last.Errors) == 0 || !strings.Contains(last.Errors[0], "canceled") {
		t.Fatalf("the cancelled run in the history: %+v %v", last, err)
	}
}

// The status page's run now starts a full run with the id it returns,
// which the run list shows while it goes on and after.
func TestRunNowFromTheStatusPage(t *testing.T) {
	h := newHarness(t, map[string]string{"manual": jobBody("%s", "")})
	h.runs.block = make(chan struct{})
	h.start(t)
	src := source{h.d}
	ctx := context.Background()
	var id string
	eventually(t, "the scheduler to start", func() bool {
		var err error
		id, err = src.RunNow(ctx, "manual")
		return err == nil
	})
	runs, err := src.Runs(ctx, "manual", 5)
	if err != nil || len(runs) != 1 || runs[0].ID != id || runs[0].Status != web.StatusRunning {
		t.Fatalf("runs while running: %+v %v", runs, err)
	}
	if _, err := src.RunNow(ctx, "manual"); err == nil || !strings.Contains(err.Error(), web.ErrBusy.Error()) {
		t.Errorf("a second run now: %v, want busy", err)
	}
	if _, err := src.RunNow(ctx, "nosuch"); err == nil || !strings.Contains(err.Error(), web.ErrNotFound.Error()) {
		t.Errorf("run now of an unknown job: %v", err)
	}
	close(h.runs.block)
	h.idle(t, "manual")
	det, err := src.Run(ctx, id)
	if err != nil || det.Status != web.StatusOK || det.Trigger != "manual" || det.Kind != "backup" {
		t.Fatalf("the run by its id after it ended: %+v %v", det, err)
	}
	if jobs, _ := src.Jobs(ctx); len(jobs) != 1 || jobs[0].Schedule != "" || !jobs[0].NextRun.IsZero() {
		t.Errorf("a job without schedule: %+v", jobs)
	}
}

type notifyPayload struct {
	Job     string `json:"job"`
	Status  string `json:"status"`
	Summary string `json:"summary"`
	Flagged []struct {
		Path string `json:"path"`
	} `json:"flagged"`
}

// scrape parses /metrics: name{outcome="…"} (the job label left out) → value.
func scrape(t *testing.T, m *web.Metrics) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, mt := range f.Metric {
			key := name
			for _, l := range mt.Label {
				if l.GetName() == "outcome" {
					key += `{outcome="` + l.GetValue() + `"}`
				}
			}
			switch {
			case mt.Gauge != nil:
				out[key] = mt.Gauge.GetValue()
			case mt.Counter != nil:
				out[key] = mt.Counter.GetValue()
			}
		}
	}
	return out
}

// A suspend (the wall clock jumps, the monotonic one does not) past a
// follow-up's time: the loop notices within MaxSleep and runs it once.
func TestFollowUpAfterSuspendRunsOnce(t *testing.T) {
	h := newHarness(t, map[string]string{"mail": jobBody("%s", "schedule: every 6h\nretry-after: 10m\n")})
	h.runs.setFailing(filepath.Join(h.src, "x"))
	h.start(t)
	eventually(t, "the first run", func() bool { return h.runs.count() == 1 })
	h.idle(t, "mail")
	h.clock.Jump(time.Hour)
	time.Sleep(50 * time.Millisecond)
	if n := h.runs.count(); n != 1 {
		t.Fatalf("%d runs before any timer fired", n)
	}
	h.clock.Advance(time.Minute) // MaxSleep: the loops wake and compare wall times
	eventually(t, "the follow-up after the suspend", func() bool { return h.runs.count() == 2 })
	h.idle(t, "mail")
	if jr := h.runs.last(); !jr.FollowUp {
		t.Fatalf("the run after the suspend is not a follow-up: %+v", jr)
	}
	h.clock.Advance(time.Minute)
	time.Sleep(50 * time.Millisecond)
	if n := h.runs.count(); n != 2 {
		t.Errorf("%d runs: the follow-up ran again", n)
	}
}
