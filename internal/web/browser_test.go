package web

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/browser"
)

// TestStatusPageInABrowser drives the pages in a headless chromium: the
// status page shows the job, the run page its flagged file and why, and
// "run now" starts a run that the job page then shows.
func TestStatusPageInABrowser(t *testing.T) {
	f := newFixture(t)
	ctx := browser.New(t, 2*time.Minute) // ended before the server closes
	text := func(sel string) string { t.Helper(); return browser.Text(t, ctx, sel) }
	shot := func(name string) { t.Helper(); browser.Screenshot(t, ctx, name) }

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
