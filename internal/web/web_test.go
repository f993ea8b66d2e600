package web

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

// fixture is a daemon with one job whose last run flagged a locked file,
// and a repository with a snapshot whose names are odd.
type fixture struct {
	src  *fakeSource
	repo *repo.Repository
	snap *repo.Snapshot
	srv  *httptest.Server
	now  time.Time
}

// retryWords is the retry sentence of the fixture's last run.
const retryWords = "unable to back up 1 file (next attempt within 10 minutes)"

// oddNames are file names a page must show and link to unchanged.
var oddNames = []string{
	"<img src=x onerror=alert(1)>.txt",
	`a b%20c?x=1#frag.txt`,
	"new\nline.txt",
	"latin1-\xff.bin",
	"grüße & \"quotes\".txt",
	`back\slash.txt`,
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	now := time.Date(2026, 3, 14, 9, 30, 0, 0, time.UTC)
	r := newTestRepo(t)
	files := []testFile{
		{path: "/srv/db/data.db", data: "stored but locked", outcome: outcome.Failed, reason: outcome.ReasonLocked},
		{path: "/srv/db/log.txt", data: "it changed while read", outcome: outcome.Changed, reason: "size changed"},
		{path: "/srv/app/config.yml", data: "port: 8080\n", outcome: outcome.OK},
	}
	for i, n := range oddNames {
		files = append(files, testFile{path: "/srv/odd/" + n, data: "content of file " + string(rune('A'+i)), outcome: outcome.OK})
	}
	snap := saveSnapshot(t, r, now.Add(-time.Hour), []string{"/srv"}, files)
	if err := r.SaveDrill(context.Background(), &repo.DrillResult{Snapshot: snap.ID, Origin: snap.ID, Time: now.Add(-30 * time.Minute), Host: "web-test", Level: "restore", OK: true,
		Steps: []repo.DrillStep{{Name: "restore", OK: true}, {Name: "sqlite", Path: "/srv/db/data.db", OK: true}}}); err != nil {
		t.Fatal(err)
	}
	last := &RunDetail{
		RunSummary: RunSummary{ID: "run-41", Job: "db", Kind: "backup", Trigger: "schedule", Start: now.Add(-time.Hour), End: now.Add(-time.Hour + 95*time.Second),
			Status: StatusPartial, Snapshot: snap.ID.String(), Outcomes: outcome.Counts{outcome.OK: 1, outcome.Changed: 1, outcome.Failed: 1}, BytesRead: 4096, BytesAdded: 1024,
			Retry: retryWords},
		Consistency: "file",
		Flagged: []FlaggedFile{
			{Path: "/srv/db/data.db", Outcome: outcome.Failed, Reason: outcome.ReasonLocked, Message: "locked by another process", Holder: "sqlite3[4242]", Queued: true},
			{Path: "/srv/db/log.txt", Outcome: outcome.Changed, Reason: "size changed"},
		},
		Hooks:    []HookResult{{Name: "before-backup", Command: "pg_dump -f /srv/db/dump.sql", OK: true, DurationSecs: 1.5}},
		Writers:  []WriterInfo{{Name: "sqlite", HeldMs: 12, Frozen: true, Consistency: "application"}},
		FreezeMs: 42, QuietWaitSecs: 3,
	}
	src := &fakeSource{
		jobs: []JobStatus{
			{Name: "db", Schedule: "hourly", Paths: []string{"/srv/db"}, Repository: "main", LastRun: &last.RunSummary, LastSuccess: last.End,
				NextRun: now.Add(-5 * time.Minute), Overdue: true, OverdueReason: "the 09:25 run did not start",
				Pending: []PendingRetry{{Path: "/srv/db/data.db", Outcome: outcome.Failed, Reason: outcome.ReasonLocked, Attempts: 2, NextAttempt: now.Add(10 * time.Minute)}}},
			{Name: "home & <docs>", Schedule: "daily 02:00", Paths: []string{"/home"}, Repository: "main", NextRun: now.Add(16 * time.Hour)},
		},
		runs:  []*RunDetail{last},
		repos: []Repository{{Name: "main", Repo: r}},
		now:   now.Add(-2 * time.Second),
	}
	s, err := New(src, Options{Metrics: NewMetrics()})
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return now }
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &fixture{src: src, repo: r, snap: snap, srv: srv, now: now}
}

func get(t *testing.T, c *http.Client, u string) (int, string, http.Header) {
	t.Helper()
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

func mustContain(t *testing.T, where, body string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("%s does not show %q", where, w)
		}
	}
}

func TestJobsPageShowsStatusOverdueAndRetries(t *testing.T) {
	f := newFixture(t)
	code, body, h := get(t, nil, f.srv.URL+"/")
	if code != 200 {
		t.Fatalf("GET /: %d\n%s", code, body)
	}
	if ct := h.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	mustContain(t, "the jobs page", body,
		`<a href="/jobs/db" class="job-name">db</a>`,
		`<span class="badge status-partial">partial</span>`,
		`class="badge overdue" title="the 09:25 run did not start">overdue</span>`,
		`<span class="badge pending">1 pending</span>`,
		`failed 1</span>`, `changed 1</span>`,
		`took 1 min 35 s`,
		`in 10 min 0 s`, // the next retry attempt
		`<tr class="job overdue">`,
		`<a href="/runs/run-41#flagged">2 not stored whole</a>`,
		`<div class="sub retry">`+retryWords+`</div>`,
		// a job name is escaped in text and in its link
		`<a href="/jobs/home%20&amp;%20%3Cdocs%3E" class="job-name">home &amp; &lt;docs&gt;</a>`,
		`name="csrf" value="`,
	)
	if strings.Contains(body, "<docs>") {
		t.Error("a job name reached the page unescaped")
	}
}

func TestJobAndRunPagesShowFlaggedFilesAndWhy(t *testing.T) {
	f := newFixture(t)
	code, body, _ := get(t, nil, f.srv.URL+"/runs/run-41")
	if code != 200 {
		t.Fatalf("GET run: %d\n%s", code, body)
	}
	mustContain(t, "the run page", body,
		`<td class="path">/srv/db/data.db</td>`, "locked by another process", "sqlite3[4242]",
		`<span class="badge outcome-failed">failed</span>`, `<span class="badge pending">queued</span>`,
		`/srv/db/log.txt`, "size changed",
		"pg_dump -f /srv/db/dump.sql", "freeze 42 ms", "quiet wait 3.0 s",
		`href="/snapshots/`+f.snap.ID.String()+`/browse/"`,
		`<dt>Retry</dt><dd class="retry">`+retryWords+`</dd>`)
	if strings.Contains(body, `<ul class="errors">`) {
		t.Error("the run page shows the retry sentence among the errors")
	}

	code, body, _ = get(t, nil, f.srv.URL+"/jobs/db")
	if code != 200 {
		t.Fatalf("GET job: %d\n%s", code, body)
	}
	mustContain(t, "the job page", body, `<a href="/runs/run-41">run-41</a>`, "/srv/db/data.db", `<td class="num">2</td>`, "the 09:25 run did not start", "4.0 KiB",
		`<div class="sub retry">`+retryWords+`</div>`)
	if strings.Contains(body, `error-text">`+retryWords) {
		t.Error("the job page shows the retry sentence as an error")
	}

	for _, u := range []string{"/runs/nope", "/jobs/nope"} {
		if code, body, _ := get(t, nil, f.srv.URL+u); code != 404 || !strings.Contains(body, "not found") {
			t.Errorf("GET %s: %d, want 404 saying not found\n%s", u, code, body)
		}
	}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func TestRunNowFormNeedsItsTokenAndShowsTheNewRun(t *testing.T) {
	f := newFixture(t)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	// no token, and a token of another browser (no cookie): refused
	resp, err := c.PostForm(f.srv.URL+"/jobs/db/run", url.Values{"csrf": {"00"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("post without the page's token: %d, want 403", resp.StatusCode)
	}
	_, body, _ := get(t, c, f.srv.URL+"/")
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no csrf token in the page")
	}
	if resp, err = http.PostForm(f.srv.URL+"/jobs/db/run", url.Values{"csrf": {m[1]}}); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("post of the token without its cookie: %d, want 403", resp.StatusCode)
	}
	// another site's page posting the form
	req, _ := http.NewRequest("POST", f.srv.URL+"/jobs/db/run", strings.NewReader(url.Values{"csrf": {m[1]}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if resp, err = c.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site post: %d, want 403", resp.StatusCode)
	}
	if calls := f.src.calls(); len(calls) != 0 {
		t.Fatalf("refused posts started runs: %v", calls)
	}

	resp, err = c.PostForm(f.srv.URL+"/jobs/db/run", url.Values{"csrf": {m[1]}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/jobs/db?started=db-manual-1" {
		t.Fatalf("run now: %d to %q, want 303 to the job page", resp.StatusCode, resp.Header.Get("Location"))
	}
	if calls := f.src.calls(); !slices.Equal(calls, []string{"db"}) {
		t.Fatalf("RunNow calls %v, want [db]", calls)
	}
	_, body, _ = get(t, c, f.srv.URL+"/jobs/db?started=db-manual-1")
	mustContain(t, "the job page after run now", body, "Run db-manual-1 started.", `<a href="/runs/db-manual-1">db-manual-1</a>`,
		`<span class="badge status-running">running</span>`, `<meta http-equiv="refresh" content="10">`, "disabled")

	// the run is in progress: a second press is refused with the reason
	resp, err = c.PostForm(f.srv.URL+"/jobs/db/run", url.Values{"csrf": {m[1]}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict || !strings.Contains(string(b), "already running") {
		t.Errorf("run now while running: %d\n%s", resp.StatusCode, b)
	}
}

func decode[T any](t *testing.T, c *http.Client, u string, wantCode int) T {
	t.Helper()
	code, body, h := get(t, c, u)
	if code != wantCode {
		t.Fatalf("GET %s: %d, want %d\n%s", u, code, wantCode, body)
	}
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("GET %s: Content-Type %q", u, ct)
	}
	var v T
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("GET %s: %v\n%s", u, err, body)
	}
	return v
}

func TestAPI(t *testing.T) {
	f := newFixture(t)
	api := f.srv.URL + "/api/v1"

	jobs := decode[struct{ Jobs []JobStatus }](t, nil, api+"/jobs", 200)
	if len(jobs.Jobs) != 2 || jobs.Jobs[0].Name != "db" || !jobs.Jobs[0].Overdue || len(jobs.Jobs[0].Pending) != 1 ||
		jobs.Jobs[0].Pending[0].Attempts != 2 || !jobs.Jobs[0].Pending[0].NextAttempt.Equal(f.now.Add(10*time.Minute)) ||
		jobs.Jobs[0].LastRun.Outcomes[outcome.Failed] != 1 {
		t.Errorf("jobs: %+v", jobs.Jobs)
	}

	// empty lists are [], times not set are left out
	_, rawJobs, _ := get(t, nil, api+"/jobs")
	mustContain(t, "the jobs' JSON", rawJobs, `"pending_retries": []`, `"last_run": null`)
	if strings.Contains(rawJobs, "0001-01-01") {
		t.Errorf("a zero time in the JSON:\n%s", rawJobs)
	}

	job := decode[struct {
		Job  JobStatus
		Runs []RunSummary
	}](t, nil, api+"/jobs/db", 200)
	if job.Job.Name != "db" || len(job.Runs) != 1 || job.Runs[0].ID != "run-41" || job.Runs[0].BytesRead != 4096 {
		t.Errorf("job: %+v", job)
	}
	e := decode[apiError](t, nil, api+"/jobs/none", 404)
	if e.Status != 404 || !strings.Contains(e.Error, `no job "none"`) {
		t.Errorf("unknown job: %+v", e)
	}
	decode[apiError](t, nil, api+"/jobs/db/runs?limit=0", 400)

	run := decode[RunDetail](t, nil, api+"/runs/run-41", 200)
	if len(run.Flagged) != 2 || run.Flagged[0].Message != "locked by another process" || run.Flagged[0].Outcome != outcome.Failed ||
		run.FreezeMs != 42 || run.Writers[0].Name != "sqlite" || run.Snapshot != f.snap.ID.String() {
		t.Errorf("run: %+v", run)
	}
	// outcomes are keyed by name in the JSON
	_, raw, _ := get(t, nil, api+"/runs/run-41")
	mustContain(t, "the run's JSON", raw, `"retry": "`+retryWords+`"`, `"failed": 1`, `"outcome": "failed"`, `"reason": "locked"`, `"errors": []`)

	snaps := decode[struct {
		Snapshots []SnapshotInfo
		Errors    []string
	}](t, nil, api+"/snapshots", 200)
	if len(snaps.Snapshots) != 1 || len(snaps.Errors) != 0 {
		t.Fatalf("snapshots: %+v", snaps)
	}
	sn := snaps.Snapshots[0]
	if sn.ID != f.snap.ID.String() || sn.Repository != "main" || sn.Consistency != "file" || !sn.Partial ||
		sn.Outcomes[outcome.Failed] != 1 || sn.Drill == nil || !sn.Drill.OK || !slices.Equal(sn.Drill.Verifiers, []string{"sqlite"}) {
		t.Errorf("snapshot: %+v (drill %+v)", sn, sn.Drill)
	}
	one := decode[SnapshotInfo](t, nil, api+"/snapshots/"+f.snap.ID.Short(), 200)
	if one.ID != sn.ID || one.Drill == nil {
		t.Errorf("snapshot by prefix: %+v", one)
	}
	decode[apiError](t, nil, api+"/snapshots/ffffffffff", 404)

	type tree struct {
		Path    string
		Entry   Entry
		Entries []Entry
	}
	root := decode[tree](t, nil, api+"/snapshots/latest/tree/", 200)
	if root.Path != "/" || len(root.Entries) != 1 || root.Entries[0].Name != "srv" || root.Entries[0].Type != "dir" {
		t.Errorf("root: %+v", root)
	}
	db := decode[tree](t, nil, api+"/snapshots/latest/tree/srv/db", 200)
	if len(db.Entries) != 2 || db.Entries[0].Name != "data.db" || db.Entries[0].Outcome != outcome.Failed || db.Entries[0].Reason != "locked" {
		t.Errorf("/srv/db: %+v", db.Entries)
	}
	file := decode[tree](t, nil, api+"/snapshots/latest/tree/srv/app/config.yml", 200)
	if file.Entry.Type != "file" || file.Entry.Size != 11 || file.Entries != nil {
		t.Errorf("a file's tree: %+v", file)
	}
	decode[apiError](t, nil, api+"/snapshots/latest/tree/srv/nothing", 404)
	decode[apiError](t, nil, api+"/nothing", 404)

	// run now: accepted with the run's id, then busy
	post := func() (int, map[string]any) {
		resp, err := http.Post(api+"/jobs/db/run", "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode, v
	}
	if code, v := post(); code != 202 || v["run_id"] != "db-manual-1" {
		t.Errorf("run now: %d %v", code, v)
	}
	if code, v := post(); code != 409 {
		t.Errorf("run now while running: %d %v, want 409", code, v)
	}
	after := decode[RunDetail](t, nil, api+"/runs/db-manual-1", 200)
	if after.Status != StatusRunning || after.Trigger != "manual" {
		t.Errorf("the started run: %+v", after)
	}
}

var hrefs = regexp.MustCompile(`<a href="([^"]*)"`)

func TestBrowseAndDownloadOddNames(t *testing.T) {
	f := newFixture(t)
	code, body, _ := get(t, nil, f.srv.URL+"/snapshots/"+f.snap.ID.Short()+"/browse/srv/odd")
	if code != 200 {
		t.Fatalf("browse: %d\n%s", code, body)
	}
	if strings.Contains(body, "<img") || strings.Contains(body, "\xff") {
		t.Fatal("a name reached the page unescaped")
	}
	mustContain(t, "the listing", body, "&lt;img src=x onerror=alert(1)&gt;.txt", `new\nline.txt`, `latin1-\xff.bin`, `back\\slash.txt`,
		"grüße &amp; &#34;quotes&#34;.txt", "a b%20c?x=1#frag.txt")

	// every file's link, as the page has it, downloads that file
	got := map[string]string{}
	for _, m := range hrefs.FindAllStringSubmatch(body, -1) {
		u := strings.ReplaceAll(m[1], "&amp;", "&")
		if !strings.Contains(u, "/file/") {
			continue
		}
		resp, err := http.Get(f.srv.URL + u)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/octet-stream" {
			t.Errorf("%s: Content-Type %q", u, ct)
		}
		if !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") {
			t.Errorf("%s: Content-Disposition %q", u, resp.Header.Get("Content-Disposition"))
		}
		got[u] = string(b)
	}
	if len(got) != len(oddNames) {
		t.Fatalf("%d download links, want %d: %v", len(got), len(oddNames), got)
	}
	for i, n := range oddNames {
		u := fileURL(f.snap.ID.String(), "/srv/odd/"+n)
		if want := "content of file " + string(rune('A'+i)); got[u] != want {
			t.Errorf("%q downloaded %q, want %q", n, got[u], want)
		}
	}

	// a file's browse address leads to its download
	code, body, _ = get(t, nil, f.srv.URL+browseURL("latest", "/srv/app/config.yml"))
	if code != 200 || body != "port: 8080\n" {
		t.Errorf("browse a file: %d %q", code, body)
	}
	if code, body, _ := get(t, nil, f.srv.URL+browseURL("latest", "/srv/none")); code != 404 || !strings.Contains(body, "/srv/none") {
		t.Errorf("browse a missing path: %d\n%s", code, body)
	}
}

func TestDownloadOfAFileNotWholeNeedsForce(t *testing.T) {
	f := newFixture(t)
	u := f.srv.URL + fileURL(f.snap.ID.String(), "/srv/db/log.txt")
	code, body, _ := get(t, nil, u)
	if code != http.StatusConflict {
		t.Fatalf("not-whole file: %d, want 409\n%s", code, body)
	}
	mustContain(t, "the refusal", body, "was not backed up whole (changed: size changed)", `/file/srv/db/log.txt?force=1">Download it anyway`)
	code, body, _ = get(t, nil, u+"?force=1")
	if code != 200 || body != "it changed while read" {
		t.Errorf("forced download: %d %q", code, body)
	}
}

// A file that failed before any of it was read has nothing to download,
// forced or not: a 404 that says so, not a server error.
func TestDownloadOfAFileWithoutContent(t *testing.T) {
	f := newFixture(t)
	snap := saveSnapshot(t, f.repo, f.now, []string{"/srv"}, []testFile{{path: "/srv/mail/box", outcome: outcome.Failed, reason: outcome.ReasonLocked}})
	u := f.srv.URL + fileURL(snap.ID.String(), "/srv/mail/box")
	for _, q := range []string{"", "?force=1"} {
		code, body, _ := get(t, nil, u+q)
		if code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404\n%s", q, code, body)
		}
		mustContain(t, "the answer", body, "was not backed up (failed: locked)", "no content")
		if strings.Contains(body, "Download it anyway") {
			t.Errorf("GET %s offers a forced download of nothing", q)
		}
	}
}

func TestArchiveDownload(t *testing.T) {
	f := newFixture(t)
	resp, err := http.Get(f.srv.URL + archiveURL(f.snap.ID.String(), "/srv/db", "tar"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Disposition") != `attachment; filename=db.tar` {
		t.Fatalf("archive: %d %q", resp.StatusCode, resp.Header.Get("Content-Disposition"))
	}
	files := map[string]string{}
	tr := tar.NewReader(resp.Body)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		io.Copy(&b, tr)
		if h.Typeflag == tar.TypeReg {
			files[h.Name] = b.String()
		}
	}
	if files["srv/db/data.db"] != "stored but locked" || files["srv/db/log.txt"] != "it changed while read" || len(files) != 2 {
		t.Errorf("archive holds %v", files)
	}
}

func TestSnapshotsPage(t *testing.T) {
	f := newFixture(t)
	code, body, _ := get(t, nil, f.srv.URL+"/snapshots")
	if code != 200 {
		t.Fatalf("snapshots: %d\n%s", code, body)
	}
	mustContain(t, "the snapshots page", body, `<a class="mono" href="/snapshots/`+f.snap.ID.String()+`/browse/">`+f.snap.ID.Short()+`</a>`,
		`<span class="badge consistency-file">file</span>`, `<span class="badge status-ok">verified</span>`, "restore", "sqlite",
		"/srv: none, file", `<span class="badge status-partial">partial</span>`)

	f.src.reposErr = errors.New("repository offsite: connection refused")
	_, body, _ = get(t, nil, f.srv.URL+"/snapshots")
	mustContain(t, "the snapshots page with a repository down", body, "repository offsite: connection refused", f.snap.ID.Short())
}

func TestSecurityHeaders(t *testing.T) {
	f := newFixture(t)
	_, _, h := get(t, nil, f.srv.URL+"/")
	if !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'") || h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers: %v", h)
	}
	code, css, _ := get(t, nil, f.srv.URL+"/static/style.css")
	if code != 200 || !strings.Contains(css, "table.list") {
		t.Errorf("style sheet: %d", code)
	}
}

func TestBrowseASnapshotOfWindowsPaths(t *testing.T) {
	r := newTestRepo(t)
	snap := saveSnapshot(t, r, time.Now(), []string{`C:\Data`}, []testFile{{path: "/C/Data/Report.docx", data: "docx bytes", outcome: outcome.OKSnapshot}})
	s, err := New(&fakeSource{repos: []Repository{{Name: "win", Repo: r}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	id := snap.ID.String()
	// names compare as NTFS compares them
	code, body, _ := get(t, nil, srv.URL+browseURL(id, "/c/DATA"))
	if code != 200 {
		t.Fatalf("browse: %d\n%s", code, body)
	}
	mustContain(t, "the listing", body, `C:\Data`, `>C:</a>`, `href="/snapshots/`+id+`/file/C/Data/Report.docx"`)
	if code, body, _ := get(t, nil, srv.URL+fileURL(id, "/C/data/report.DOCX")); code != 200 || body != "docx bytes" {
		t.Errorf("download in other case: %d %q", code, body)
	}
}

// A job's drill: its schedule and last drill on the job page and in the
// API; the drill's run page lists its checks, the failed one with why,
// and no files section.
func TestDrillOnTheJobAndRunPages(t *testing.T) {
	f := newFixture(t)
	drill := &RunDetail{
		RunSummary: RunSummary{ID: "run-43", Job: "db", Kind: "drill", Trigger: "scheduled", Start: f.now.Add(-20 * time.Minute), End: f.now.Add(-19 * time.Minute),
			Status: StatusFailed, Snapshot: f.snap.ID.String(), Outcomes: outcome.Counts{}, Error: "sqlite /srv/db/data.db: database disk image is malformed"},
		Checks: []DrillCheck{{Name: "check", OK: true, Message: "structure of 1 snapshot verified"},
			{Name: "restore", OK: true, Message: "9 files, 200 B restored and verified against their hashes"},
			{Name: "sqlite", OK: false, Message: "/srv/db/data.db: database disk image is malformed"}},
	}
	f.src.mu.Lock()
	f.src.runs = append([]*RunDetail{drill}, f.src.runs...)
	j := f.src.job("db")
	j.DrillSchedule, j.NextDrill, j.LastDrill = "0 4 * * 0", f.now.Add(2*time.Hour), &drill.RunSummary
	f.src.mu.Unlock()

	_, body, _ := get(t, nil, f.srv.URL+"/")
	mustContain(t, "the jobs page", body, `<div class="sub drill">drill <a href="/runs/run-43">failed</a>`)
	_, body, _ = get(t, nil, f.srv.URL+"/jobs/db")
	mustContain(t, "the job page", body, `<dt>Drill</dt>`, `<a href="/runs/run-43">`, `<span class="badge status-failed">failed</span>`,
		"database disk image is malformed", "0 4 * * 0, next", "in 2 h 0 min")
	_, body, _ = get(t, nil, f.srv.URL+"/runs/run-43")
	mustContain(t, "the drill's page", body, `<h2 id="checks">Drill checks</h2>`, `<td>sqlite</td><td><span class="badge status-failed">failed</span></td><td class="reason">/srv/db/data.db: database disk image is malformed</td>`,
		"restored and verified against their hashes")
	if strings.Contains(body, "Files not stored whole") {
		t.Error("the drill's page has a section of files not stored whole")
	}
	_, body, _ = get(t, nil, f.srv.URL+"/runs/run-41")
	if strings.Contains(body, "Drill checks") {
		t.Error("a backup's page has a drill checks section")
	}

	job := decode[struct{ Job JobStatus }](t, nil, f.srv.URL+"/api/v1/jobs/db", 200)
	if ld := job.Job.LastDrill; ld == nil || ld.ID != "run-43" || ld.Status != StatusFailed || job.Job.DrillSchedule != "0 4 * * 0" || !job.Job.NextDrill.Equal(f.now.Add(2*time.Hour)) {
		t.Errorf("the job's drill in the API: %+v", job.Job)
	}
	run := decode[RunDetail](t, nil, f.srv.URL+"/api/v1/runs/run-43", 200)
	if len(run.Checks) != 3 || run.Checks[2].OK || run.Checks[2].Name != "sqlite" || !run.Checks[0].OK {
		t.Errorf("the drill's checks in the API: %+v", run.Checks)
	}
	_, raw, _ := get(t, nil, f.srv.URL+"/api/v1/runs/run-41")
	mustContain(t, "a backup's JSON", raw, `"checks": []`)
}
