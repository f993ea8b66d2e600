package web

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/ci"
)

// chromium finds Debian's chromium; without it the test skips, except in CI.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if ci.Enabled() {
		t.Fatal("chromium is not installed (test.sh installs Debian's chromium)")
	}
	t.Skip("chromium is not installed")
	return ""
}

// artifacts is where screenshots go: $STILLPOINT_ARTIFACTS, else the test's temp dir.
func artifacts(t *testing.T) string {
	dir := os.Getenv("STILLPOINT_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestStatusPageInABrowser drives the pages in a headless chromium: the
// status page shows the job, the run page its flagged file and why, and
// "run now" starts a run that the job page then shows.
func TestStatusPageInABrowser(t *testing.T) {
	bin := chromium(t)
	f := newFixture(t)
	out := artifacts(t)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU,
		// containers often give /dev/shm a few MiB only
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1400, 900), chromedp.UserDataDir(t.TempDir()))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	// ends chromium and waits for it, also when the test fails
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	// the first Run starts the browser: it gets no deadline of its own
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelTimeout()

	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		p := filepath.Join(out, name)
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", p)
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(f.srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("tr.job"))); err != nil {
		t.Fatal(err)
	}
	row := text("tr.job")
	for _, want := range []string{"db", "/srv/db", "partial", "overdue", "1 pending", "failed 1", "Run now"} {
		if !strings.Contains(row, want) {
			t.Errorf("the job's row does not show %q: %q", want, row)
		}
	}
	shot("web-status.png")

	// the last run's page, reached by its link, names the file and why
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(`tr.job a[href="/runs/run-41"]`))); err != nil {
		t.Fatal(err)
	}
	flagged := text("table.flagged tbody tr")
	for _, want := range []string{"/srv/db/data.db", "failed", "locked by another process", "sqlite3[4242]", "queued"} {
		if !strings.Contains(flagged, want) {
			t.Errorf("the run page's flagged file does not show %q: %q", want, flagged)
		}
	}
	shot("web-run.png")

	// run now, from the job page
	if err := chromedp.Do(ctx, chromedp.Navigate(f.srv.URL+"/jobs/db")); err != nil {
		t.Fatal(err)
	}
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(`.title-row form button`)))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 {
		t.Errorf("after run now: status %d", resp.Status)
	}
	if calls := f.src.calls(); !slices.Equal(calls, []string{"db"}) {
		t.Fatalf("RunNow calls %v, want [db]", calls)
	}
	if n := text(".notice"); !strings.Contains(n, "Run db-manual-1 started.") {
		t.Errorf("notice %q", n)
	}
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	runs := text("#runs + table tbody")
	if !strings.Contains(runs, "db-manual-1") || !strings.Contains(runs, "running") {
		t.Errorf("the new run is not in the job's runs: %q", runs)
	}
	disabled, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector(".title-row form button").disabled`))
	if err != nil || !disabled {
		t.Errorf("run now stays enabled while the run is in progress (%v)", err)
	}
	shot("web-run-now.png")

	// browsing the run's snapshot: odd names are shown escaped and link to their files
	if err := chromedp.Do(ctx, chromedp.Navigate(f.srv.URL+browseURL(f.snap.ID.String(), "/srv/odd")), chromedp.WaitVisible(chromedp.CSS("table.browse"))); err != nil {
		t.Fatal(err)
	}
	listing := text("table.browse tbody")
	for _, want := range []string{"<img src=x onerror=alert(1)>.txt", `new\nline.txt`, `latin1-\xff.bin`} {
		if !strings.Contains(listing, want) {
			t.Errorf("the listing does not show %q: %q", want, listing)
		}
	}
	shot("web-browse.png")
}
