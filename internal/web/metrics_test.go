package web

import (
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stillpoint-backup/stillpoint/internal/outcome"
)

// scrape reads /metrics as Prometheus does and parses it with its text parser.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequest("GET", url+"/metrics", nil)
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value is the sample of family name whose labels are exactly labels
// (name=value pairs); NaN when there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return math.NaN()
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
next:
	for _, m := range f.Metric {
		if len(m.Label) != len(want) {
			continue
		}
		for _, l := range m.Label {
			if want[l.GetName()] != l.GetValue() {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Untyped != nil:
			return m.Untyped.GetValue()
		}
	}
	return math.NaN()
}

func TestMetricsMatchTheRecordedRuns(t *testing.T) {
	m := NewMetrics()
	s, err := New(&fakeSource{}, Options{Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()

	m.AddJob("idle")
	m.RunStarted("db")
	m.RunStarted("db")
	fams := scrape(t, srv.URL)
	if v := value(fams, "stillpoint_up"); v != 1 {
		t.Errorf("up %v", v)
	}
	if v := value(fams, "stillpoint_runs_in_progress", "job", "db"); v != 2 {
		t.Errorf("runs in progress %v, want 2", v)
	}
	if v := value(fams, "stillpoint_pending_retries", "job", "idle"); v != 0 {
		t.Errorf("a job added before its first run: pending %v, want 0", v)
	}

	start := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	first := RunMetrics{Job: "db", Start: start, End: start.Add(95500 * time.Millisecond), Status: StatusPartial,
		BytesRead: 5 << 20, BytesAdded: 3 << 10,
		Outcomes: outcome.Counts{outcome.OK: 120, outcome.OKSnapshot: 7, outcome.Changed: 1, outcome.Failed: 2},
		FreezeMs: 42, QuietWaitSecs: 3.5, PendingRetries: 2}
	m.RunFinished(first)
	fams = scrape(t, srv.URL)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"stillpoint_runs_in_progress", []string{"job", "db"}, 1},
		{"stillpoint_last_run_duration_seconds", []string{"job", "db"}, 95.5},
		{"stillpoint_last_success_timestamp_seconds", []string{"job", "db"}, float64(first.End.UnixNano()) / 1e9},
		{"stillpoint_last_run_timestamp_seconds", []string{"job", "db"}, float64(first.End.UnixNano()) / 1e9},
		{"stillpoint_last_run_success", []string{"job", "db"}, 1},
		{"stillpoint_read_bytes_total", []string{"job", "db"}, 5 << 20},
		{"stillpoint_added_bytes_total", []string{"job", "db"}, 3 << 10},
		{"stillpoint_last_run_files", []string{"job", "db", "outcome", "ok"}, 120},
		{"stillpoint_last_run_files", []string{"job", "db", "outcome", "ok-snapshot"}, 7},
		{"stillpoint_last_run_files", []string{"job", "db", "outcome", "changed"}, 1},
		{"stillpoint_last_run_files", []string{"job", "db", "outcome", "failed"}, 2},
		{"stillpoint_last_run_files", []string{"job", "db", "outcome", "skipped-open"}, 0},
		{"stillpoint_files_total", []string{"job", "db", "outcome", "failed"}, 2},
		{"stillpoint_pending_retries", []string{"job", "db"}, 2},
		{"stillpoint_last_run_snapshot_freeze_seconds", []string{"job", "db"}, 0.042},
		{"stillpoint_last_run_quiet_wait_seconds", []string{"job", "db"}, 3.5},
		{"stillpoint_runs_total", []string{"job", "db", "status", "partial"}, 1},
	} {
		if got := value(fams, c.name, c.labels...); math.Abs(got-c.want) > 1e-9 || math.IsNaN(got) {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}

	// a failed run: counters add up, the last success stays the first run's
	second := RunMetrics{Job: "db", Start: start.Add(time.Hour), End: start.Add(time.Hour + 2*time.Second), Status: StatusFailed,
		BytesRead: 1 << 20, Outcomes: outcome.Counts{outcome.Failed: 3}}
	m.RunFinished(second)
	m.SetPendingRetries("db", 5)
	m.RunFinished(RunMetrics{Job: "db", Status: StatusFailed}) // no RunStarted: in progress stays at 0
	fams = scrape(t, srv.URL)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"stillpoint_runs_in_progress", []string{"job", "db"}, 0},
		{"stillpoint_last_success_timestamp_seconds", []string{"job", "db"}, float64(first.End.UnixNano()) / 1e9},
		{"stillpoint_last_run_success", []string{"job", "db"}, 0},
		{"stillpoint_read_bytes_total", []string{"job", "db"}, 6 << 20},
		{"stillpoint_files_total", []string{"job", "db", "outcome", "failed"}, 5},
		{"stillpoint_last_run_files", []string{"job", "db", "outcome", "ok"}, 0},
		{"stillpoint_runs_total", []string{"job", "db", "status", "failed"}, 2},
		{"stillpoint_runs_total", []string{"job", "db", "status", "partial"}, 1},
	} {
		if got := value(fams, c.name, c.labels...); math.Abs(got-c.want) > 1e-9 || math.IsNaN(got) {
			t.Errorf("after the failed runs: %s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if got := value(fams, "stillpoint_pending_retries", "job", "db"); got != 0 {
		// the last RunFinished said 0 pending: it wins over SetPendingRetries before it
		t.Errorf("pending retries %v, want 0", got)
	}
	if fams["go_goroutines"] == nil || fams["process_start_time_seconds"] == nil {
		t.Error("the Go and process collectors are missing")
	}
	m.SetUp(false)
	if v := value(scrape(t, srv.URL), "stillpoint_up"); v != 0 {
		t.Errorf("up after SetUp(false): %v", v)
	}
}

func TestMetricsAreNotInTheDefaultRegistry(t *testing.T) {
	a, b := NewMetrics(), NewMetrics()
	a.RunStarted("x")
	srv := httptest.NewServer(b.Handler())
	defer srv.Close()
	if v := value(scrape(t, srv.URL), "stillpoint_runs_in_progress", "job", "x"); !math.IsNaN(v) {
		t.Errorf("a second Metrics sees the first one's run: %v", v)
	}
}

// A drill sets the drill gauges of its job and leaves its backups' alone.
func TestDrillMetrics(t *testing.T) {
	m := NewMetrics()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	t0 := time.Date(2026, 3, 14, 4, 0, 0, 0, time.UTC)
	m.RunFinished(RunMetrics{Job: "db", Start: t0.Add(-time.Hour), End: t0.Add(-time.Hour + time.Minute), Status: StatusOK})
	m.RunStarted("db")
	m.DrillFinished(DrillMetrics{Job: "db", Start: t0, End: t0.Add(time.Minute), Passed: true})
	m.RunStarted("db")
	m.DrillFinished(DrillMetrics{Job: "db", Start: t0.Add(time.Hour), End: t0.Add(time.Hour + time.Minute), Passed: false})
	fams := scrape(t, srv.URL)
	want := map[string]float64{
		"stillpoint_last_drill_timestamp_seconds":         float64(t0.Add(time.Hour + time.Minute).Unix()),
		"stillpoint_last_drill_success_timestamp_seconds": float64(t0.Add(time.Minute).Unix()),
		"stillpoint_last_drill_passed":                    0,
		"stillpoint_runs_in_progress":                     0,
		"stillpoint_last_success_timestamp_seconds":       float64(t0.Add(-time.Hour + time.Minute).Unix()),
		"stillpoint_last_run_success":                     1,
	}
	for name, v := range want {
		if got := value(fams, name, "job", "db"); got != v {
			t.Errorf("%s = %v, want %v", name, got, v)
		}
	}
	if ok, failed := value(fams, "stillpoint_drills_total", "job", "db", "status", "ok"), value(fams, "stillpoint_drills_total", "job", "db", "status", "failed"); ok != 1 || failed != 1 {
		t.Errorf("drills_total ok %v failed %v, want 1 and 1", ok, failed)
	}
	if n := value(fams, "stillpoint_runs_total", "job", "db", "status", "ok"); n != 1 {
		t.Errorf("runs_total{ok} = %v: a drill was counted as a backup run", n)
	}
}
