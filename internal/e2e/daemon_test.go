//go:build linux

package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stillpoint-backup/stillpoint/internal/snapshot"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/browser"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/ci"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/loopfs"
)

// daemonProc is a `stillpoint daemon` the test started.
type daemonProc struct {
	cmd  *exec.Cmd
	addr string // http://127.0.0.1:PORT
	mu   sync.Mutex
	log  strings.Builder
	done chan struct{}
}

var pagesLine = regexp.MustCompile(`status pages on (http://127\.0\.0\.1:\d+)/`)

// startDaemon starts the daemon on jobs and state, listening on a free
// port of 127.0.0.1 that it logs (unless extra flags say otherwise), and
// waits for that line.
func startDaemon(t *testing.T, e *env, jobs, state string, extra ...string) *daemonProc {
	t.Helper()
	d := &daemonProc{done: make(chan struct{})}
	d.cmd = e.command(context.Background(), append([]string{"daemon", "--jobs", jobs, "--state-dir", state, "--listen", "127.0.0.1:0"}, extra...)...)
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			d.mu.Lock()
			d.log.WriteString(line + "\n")
			d.mu.Unlock()
			if m := pagesLine.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", tail(d.logText()))
		}
	})
	select {
	case d.addr = <-addr:
	case <-d.done:
		t.Fatalf("the daemon ended before it listened:\n%s", d.logText())
	case <-time.After(time.Minute):
		t.Fatalf("the daemon did not say where it listens:\n%s", d.logText())
	}
	return d
}

func (d *daemonProc) logText() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

// stop sends SIGTERM and returns the exit code.
func (d *daemonProc) stop(t *testing.T) int {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(2 * time.Minute):
		t.Fatal("the daemon did not stop within 2 minutes of SIGTERM")
	}
	return d.cmd.ProcessState.ExitCode()
}

func (d *daemonProc) get(t *testing.T, path string) []byte {
	t.Helper()
	resp, err := http.Get(d.addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s\n%s", path, resp.Status, body)
	}
	return body
}

type apiJob struct {
	Name    string `json:"name"`
	LastRun *struct {
		ID       string           `json:"id"`
		Kind     string           `json:"kind"`
		Status   string           `json:"status"`
		Error    string           `json:"error"`
		Retry    string           `json:"retry"`
		Outcomes map[string]int64 `json:"outcomes"`
	} `json:"last_run"`
	Running *struct {
		ID string `json:"id"`
	} `json:"running"`
	Pending []struct {
		Path     string `json:"path"`
		Reason   string `json:"reason"`
		Attempts int    `json:"attempts"`
	} `json:"pending_retries"`
}

func (d *daemonProc) job(t *testing.T, name string) apiJob {
	t.Helper()
	var body struct {
		Jobs []apiJob `json:"jobs"`
	}
	if err := json.Unmarshal(d.get(t, "/api/v1/jobs"), &body); err != nil {
		t.Fatal(err)
	}
	for _, j := range body.Jobs {
		if j.Name == name {
			return j
		}
	}
	t.Fatalf("no job %s in /api/v1/jobs", name)
	return apiJob{}
}

// waitFor polls cond every 100 ms for up to a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type historyEntry struct {
	ID           int64            `json:"id"`
	Kind         string           `json:"kind"`
	Trigger      string           `json:"trigger"`
	Status       string           `json:"status"`
	End          time.Time        `json:"end"`
	Outcomes     map[string]int64 `json:"outcomes"`
	RetriedFiles int              `json:"retried_files"`
	Errors       []string         `json:"errors"`
	Steps        []struct {
		Kind    string `json:"kind"`
		Message string `json:"message"`
	} `json:"steps"`
}

func (h historyEntry) retrySentence() string {
	for _, s := range h.Steps {
		if s.Kind == "retry-queue" {
			return s.Message
		}
	}
	return ""
}

// historyOf is `stillpoint history JOB --json`, newest first.
func historyOf(t *testing.T, e *env, state, job string) []historyEntry {
	t.Helper()
	res := e.must(t, 0, "history", job, "--json", "--limit", "0", "--state-dir", state)
	var runs []historyEntry
	if err := json.Unmarshal([]byte(strings.TrimSpace(res.stdout)), &runs); err != nil {
		t.Fatalf("history --json: %v\n%s", err, res.stdout)
	}
	return runs
}

// scrapeMetrics parses /metrics: name{outcome} of job → value.
func scrapeMetrics(t *testing.T, d *daemonProc, job string) map[string]float64 {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(d.get(t, "/metrics"))))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.Metric {
			key, ours := name, false
			for _, l := range m.Label {
				switch l.GetName() {
				case "job":
					ours = l.GetValue() == job
				case "outcome", "status":
					key += "{" + l.GetValue() + "}"
				}
			}
			if !ours && len(m.Label) > 0 {
				continue
			}
			switch {
			case m.Gauge != nil:
				out[key] = m.Gauge.GetValue()
			case m.Counter != nil:
				out[key] = m.Counter.GetValue()
			}
		}
	}
	return out
}

// The daemon with a job every minute and retry-after 2s: a file locked by
// another process is queued and the API says so; once released, the next
// follow-up stores it (restore latest has it; the history has a follow-up
// "1 file backed up on retry"); /metrics agrees with the history; locked
// again and queued by a new run, the entry survives a SIGTERM and a
// restart.
func TestDaemonQueuesLockedFileAndFollowUpStoresIt(t *testing.T) {
	src := filepath.Join(t.TempDir(), "data")
	os.MkdirAll(src, 0o755)
	mail, notes := filepath.Join(src, "mail.box"), filepath.Join(src, "notes.txt")
	mustWrite(t, mail, []byte("mail, locked at first"))
	mustWrite(t, notes, []byte("notes"))
	jobs, state := t.TempDir(), t.TempDir()
	writeNamedJob(t, jobs, "mailjob", fmt.Sprintf("version: 1\nsources:\n  - path: %s\n    snapshot: off\n    open-files: retry\n    retries: 0\nschedule: every 1m\nretry-after: 2s\n", src))
	e := newEnv(t)
	e.must(t, 0, "init")

	release := lockWithChild(t, mail)
	d := startDaemon(t, e, jobs, state)
	var j apiJob
	waitFor(t, "the first run in the API", func() bool { j = d.job(t, "mailjob"); return j.LastRun != nil })
	if len(j.Pending) != 1 || j.Pending[0].Path != mail || j.Pending[0].Reason == "" || j.LastRun.Status != "partial" ||
		j.LastRun.Retry != "unable to back up 1 file (next attempt within 1 minute)" || j.LastRun.Error != "" {
		t.Fatalf("the job after its first run: %+v", j)
	}
	release()
	var fu historyEntry
	waitFor(t, "a follow-up that stores the file", func() bool {
		for _, h := range historyOf(t, e, state, "mailjob") {
			if h.Kind == "follow-up" && h.Status == "success" {
				fu = h
				return true
			}
		}
		return false
	})
	if fu.Trigger != "retry" || fu.RetriedFiles != 1 || fu.retrySentence() != "1 file backed up on retry" {
		t.Fatalf("the follow-up in the history: %+v", fu)
	}
	dst := t.TempDir()
	e.must(t, 0, "restore", "latest", "--target", dst)
	if got, _ := os.ReadFile(filepath.Join(dst, mail)); string(got) != "mail, locked at first" {
		t.Errorf("restore latest: mail.box is %q", got)
	}
	if j = d.job(t, "mailjob"); len(j.Pending) != 0 || j.LastRun.Kind != "follow-up" || j.LastRun.Retry != "1 file backed up on retry" {
		t.Errorf("the job after the follow-up: %+v", j)
	}

	// the metrics of the last run are the history's
	hist := historyOf(t, e, state, "mailjob")
	last := hist[0]
	m := scrapeMetrics(t, d, "mailjob")
	if got := m["stillpoint_last_success_timestamp_seconds"]; math.Abs(got-float64(last.End.UnixNano())/1e9) > 0.001 {
		t.Errorf("last success %v, the history's last run ended %v", got, last.End)
	}
	for _, o := range []string{"ok", "failed", "skipped-open", "changed"} {
		if got := m["stillpoint_last_run_files{"+o+"}"]; got != float64(last.Outcomes[o]) {
			t.Errorf("files %s: metrics %v, history %d", o, got, last.Outcomes[o])
		}
	}
	if m["stillpoint_pending_retries"] != 0 || m["stillpoint_up"] != 1 || m["stillpoint_runs_total{partial}"] < 1 {
		t.Errorf("metrics: %v", m)
	}

	// changed (an unchanged file is not read again) and locked, then
	// queued by a run asked for through the API
	mustWrite(t, mail, []byte("mail, version 2"))
	release = lockWithChild(t, mail)
	resp, err := http.Post(d.addr+"/api/v1/jobs/mailjob/run", "application/json", nil)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("run now: %v %v", resp, err)
	}
	resp.Body.Close()
	waitFor(t, "the file queued again", func() bool { j = d.job(t, "mailjob"); return len(j.Pending) == 1 && j.Running == nil })
	attempts := j.Pending[0].Attempts
	if code := d.stop(t); code != 0 {
		t.Fatalf("the daemon exited %d on SIGTERM", code)
	}
	d = startDaemon(t, e, jobs, state)
	if j = d.job(t, "mailjob"); len(j.Pending) != 1 || j.Pending[0].Path != mail || j.Pending[0].Attempts < attempts {
		t.Fatalf("the queue after a restart: %+v, want %s with at least %d attempts", j.Pending, mail, attempts)
	}
	release()
	if code := d.stop(t); code != 0 {
		t.Fatalf("the daemon exited %d on SIGTERM", code)
	}
	e.must(t, 0, "check")
}

// SIGTERM while the daemon's run reads a btrfs snapshot: the daemon exits
// 0, the snapshot set is gone, the on-error hook ran, no snapshot was
// written and the history has the run as failed.
func TestDaemonSigtermDuringRunReleasesTheSet(t *testing.T) {
	ci.NeedRoot(t)
	mnt := loopfs.Btrfs(t, 512)
	src := filepath.Join(mnt, "data")
	os.MkdirAll(src, 0o755)
	buf := make([]byte, 4<<20)
	for i := range 48 {
		rand.Read(buf)
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("f%02d", i)), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	jobs, state := t.TempDir(), t.TempDir()
	marker := filepath.Join(t.TempDir(), "on-error-ran")
	writeNamedJob(t, jobs, "btrfsjob", fmt.Sprintf("version: 1\nsources:\n  - path: %s\n    snapshot: required\nschedule: every 1h\nhooks:\n  after-snapshot: sleep 3\n  on-error: echo \"$STILLPOINT_ERROR\" > %s\n", src, marker))
	e := newEnv(t)
	e.must(t, 0, "init")
	d := startDaemon(t, e, jobs, state)
	// the after-snapshot hook (which runs to its end even when the run is
	// stopped: it resumes the application) keeps the run going once its
	// snapshot exists; the label alone is written before the snapshot
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && !snapshotTaken(mnt) {
		time.Sleep(5 * time.Millisecond)
	}
	if !snapshotTaken(mnt) {
		t.Fatal("no snapshot taken within 30 s")
	}
	if code := d.stop(t); code != 0 {
		t.Fatalf("the daemon exited %d on SIGTERM", code)
	}
	runs := historyOf(t, e, state, "btrfsjob")
	if len(runs) != 1 {
		t.Fatalf("%d runs recorded, want 1", len(runs))
	}
	if runs[0].Status != "failed" {
		t.Fatalf("the run ended %s, want failed: stopped by the signal", runs[0].Status)
	}
	if los, _ := snapshot.FindLeftovers([]string{mnt}); len(los) != 0 {
		t.Fatalf("the stopped run left its snapshot set: %+v", los)
	}
	if entries, _ := os.ReadDir(filepath.Join(mnt, ".stillpoint-snapshots")); len(entries) != 0 {
		t.Fatalf("snapshot directory not empty: %v", entries)
	}
	if got, err := os.ReadFile(marker); err != nil || len(strings.TrimSpace(string(got))) == 0 {
		t.Fatalf("on-error hook: %q %v, want it run with the error", got, err)
	}
	if ids := e.snapshotIDs(t); len(ids) != 0 {
		t.Fatalf("the stopped run wrote snapshots %v", ids)
	}
	// the run's context ends with the daemon's: "context canceled", or the
	// signal itself when it is the cause that reaches the run first
	if errs := strings.Join(runs[0].Errors, " "); !strings.Contains(errs, "canceled") && !strings.Contains(errs, "terminated") {
		t.Errorf("the history's errors of the stopped run: %v", runs[0].Errors)
	}
	if out := e.must(t, 0, "doctor", mnt); strings.Contains(out.stdout, "leftover") && !strings.Contains(out.stdout, "no leftover") {
		t.Errorf("doctor finds leftovers:\n%s", out.stdout)
	}
	e.must(t, 0, "check")
}

// snapshotTaken tells whether a snapshot exists below a label's directory
// on the filesystem at mnt.
func snapshotTaken(mnt string) bool {
	dirs, _ := os.ReadDir(filepath.Join(mnt, ".stillpoint-snapshots"))
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		if snaps, _ := os.ReadDir(filepath.Join(mnt, ".stillpoint-snapshots", d.Name())); len(snaps) > 0 {
			return true
		}
	}
	return false
}

// SIGHUP with a job file broken: the daemon logs its file and line and
// runs the other job on.
func TestDaemonSighupWithBrokenJobKeepsTheOthers(t *testing.T) {
	src := t.TempDir()
	mustWrite(t, filepath.Join(src, "a"), []byte("a"))
	jobs, state := t.TempDir(), t.TempDir()
	body := fmt.Sprintf("version: 1\nsources:\n  - path: %s\n    snapshot: off\nschedule: every 2s\n", src)
	writeNamedJob(t, jobs, "good", body)
	writeNamedJob(t, jobs, "other", body)
	e := newEnv(t)
	e.must(t, 0, "init")
	d := startDaemon(t, e, jobs, state)
	waitFor(t, "both jobs' first runs", func() bool {
		return len(historyOf(t, e, state, "good")) > 0 && len(historyOf(t, e, state, "other")) > 0
	})
	writeNamedJob(t, jobs, "broken", fmt.Sprintf("version: 1\nsources:\n  - path: %s\nschedule: every\n", src))
	os.Remove(filepath.Join(jobs, "other.yaml"))
	d.cmd.Process.Signal(syscall.SIGHUP)
	want := filepath.Join(jobs, "broken.yaml") + ":4:"
	waitFor(t, "the reload's error in the log", func() bool { return strings.Contains(d.logText(), want) })
	before := len(historyOf(t, e, state, "good"))
	waitFor(t, "a run of good after the reload", func() bool { return len(historyOf(t, e, state, "good")) > before })
	var body2 struct {
		Jobs []apiJob `json:"jobs"`
	}
	json.Unmarshal(d.get(t, "/api/v1/jobs"), &body2)
	if len(body2.Jobs) != 1 || body2.Jobs[0].Name != "good" {
		t.Errorf("jobs after the reload: %+v, want good alone", body2.Jobs)
	}
	if code := d.stop(t); code != 0 {
		t.Fatalf("the daemon exited %d on SIGTERM", code)
	}
}

// The daemon's status page in chromium: the job with its flagged file and
// why; "run now" starts a run that the job page then lists.
func TestDaemonStatusPageInABrowser(t *testing.T) {
	browser.Chromium(t)
	src := filepath.Join(t.TempDir(), "data")
	os.MkdirAll(src, 0o755)
	mail := filepath.Join(src, "mail.box")
	mustWrite(t, mail, []byte("mail"))
	jobs, state := t.TempDir(), t.TempDir()
	writeNamedJob(t, jobs, "mailjob", fmt.Sprintf("version: 1\nsources:\n  - path: %s\n    snapshot: off\n    retries: 0\nschedule: every 1h\nretry-after: 1h\n", src))
	e := newEnv(t)
	e.must(t, 0, "init")
	lockWithChild(t, mail)
	d := startDaemon(t, e, jobs, state)
	var j apiJob
	waitFor(t, "the first run", func() bool { j = d.job(t, "mailjob"); return j.LastRun != nil })

	ctx := browser.New(t, 2*time.Minute)
	if err := chromedp.Do(ctx, chromedp.Navigate(d.addr+"/"), chromedp.WaitVisible(chromedp.CSS("tr.job"))); err != nil {
		t.Fatal(err)
	}
	row := browser.Text(t, ctx, "tr.job")
	for _, want := range []string{"mailjob", src, "partial", "1 pending", "Run now"} {
		if !strings.Contains(row, want) {
			t.Errorf("the job's row does not show %q: %q", want, row)
		}
	}
	browser.Screenshot(t, ctx, "daemon-status.png")
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(`tr.job a[href="/runs/`+j.LastRun.ID+`"]`))); err != nil {
		t.Fatal(err)
	}
	flagged := browser.Text(t, ctx, "table.flagged tbody tr")
	for _, want := range []string{mail, "failed", "locked", "flock[", "queued"} {
		if !strings.Contains(flagged, want) {
			t.Errorf("the run page's flagged file does not show %q: %q", want, flagged)
		}
	}
	browser.Screenshot(t, ctx, "daemon-run.png")

	if err := chromedp.Do(ctx, chromedp.Navigate(d.addr+"/jobs/mailjob")); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(`.title-row form button`))); err != nil {
		t.Fatal(err)
	}
	notice := browser.Text(t, ctx, ".notice")
	id := strings.TrimSuffix(strings.TrimPrefix(notice, "Run "), " started.")
	if !strings.HasPrefix(notice, "Run ") || id == "" {
		t.Fatalf("notice after run now: %q", notice)
	}
	waitFor(t, "the run now to end", func() bool { j = d.job(t, "mailjob"); return j.Running == nil && j.LastRun.ID != "1" })
	if err := chromedp.Do(ctx, chromedp.Navigate(d.addr+"/runs/"+id)); err != nil {
		t.Fatal(err)
	}
	if page := browser.Text(t, ctx, "body"); !strings.Contains(page, "manual") {
		t.Errorf("the run started by run now is not shown as manual:\n%s", page)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(d.addr+"/jobs/mailjob")); err != nil {
		t.Fatal(err)
	}
	if runs := browser.Text(t, ctx, "#runs + table tbody"); strings.Count(runs, "partial") < 2 {
		t.Errorf("the job page does not list both runs: %q", runs)
	}
	browser.Screenshot(t, ctx, "daemon-run-now.png")
	if code := d.stop(t); code != 0 {
		t.Fatalf("the daemon exited %d on SIGTERM", code)
	}
}
