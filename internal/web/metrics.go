package web

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stillpoint-backup/stillpoint/internal/outcome"
)

// Metrics holds the daemon's Prometheus metrics in a registry of its own
// (not the global one), so each daemon and each test scrapes only its
// own. The daemon calls RunStarted and RunFinished around every run.
type Metrics struct {
	reg *prometheus.Registry

	up            prometheus.Gauge
	inProgress    *prometheus.GaugeVec
	runs          *prometheus.CounterVec
	lastSuccess   *prometheus.GaugeVec
	lastEnd       *prometheus.GaugeVec
	lastOK        *prometheus.GaugeVec
	lastDuration  *prometheus.GaugeVec
	readBytes     *prometheus.CounterVec
	addedBytes    *prometheus.CounterVec
	lastFiles     *prometheus.GaugeVec
	files         *prometheus.CounterVec
	pending       *prometheus.GaugeVec
	freezeSeconds *prometheus.GaugeVec
	quietWaitSecs *prometheus.GaugeVec
	drills        *prometheus.CounterVec
	lastDrill     *prometheus.GaugeVec
	lastDrillOK   *prometheus.GaugeVec
	drillPassed   *prometheus.GaugeVec
	mu            sync.Mutex
	runningPerJob map[string]int
}

// RunMetrics is what one finished run adds to the metrics.
type RunMetrics struct {
	Job        string
	Start, End time.Time
	Status     string // StatusOK, StatusPartial or StatusFailed
	BytesRead  int64  // file content read
	BytesAdded int64  // new data stored (after deduplication)
	Outcomes   outcome.Counts
	// FreezeMs is how long the snapshot set took to create; QuietWaitSecs
	// the write-inactivity wait before it.
	FreezeMs      float64
	QuietWaitSecs float64
	// PendingRetries is the size of the job's retry queue after the run.
	PendingRetries int
}

// NewMetrics returns the metrics with "up" set, and Go's process and
// runtime collectors registered beside them.
func NewMetrics() *Metrics {
	job := []string{"job"}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		up: prometheus.NewGauge(prometheus.GaugeOpts{Name: "stillpoint_up",
			Help: "1 while the stillpoint daemon runs."}),
		inProgress: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "stillpoint_runs_in_progress",
			Help: "Runs of the job in progress."}, job),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stillpoint_runs_total",
			Help: "Finished runs by status (ok, partial: snapshot with flagged files, failed: no snapshot)."}, []string{"job", "status"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "stillpoint_last_success_timestamp_seconds",
			Help: "End of the job's newest run that wrote a snapshot (status ok or partial), Unix time."}, job),
		lastEnd: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "stillpoint_last_run_timestamp_seconds",
			Help: "End of the job's newest run, Unix time."}, job),
		lastOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "stillpoint_last_run_success",
			Help: "1 when the job's newest run wrote a snapshot, 0 when it failed."}, job),
		lastDuration: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "stillpoint_last_run_duration_seconds",
			Help: "Wall time of the job's newest run."}, job),
		readBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stillpoint_read_bytes_total",
			Help: "File content read by the job's runs."}, job),
		addedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stillpoint_added_bytes_total",
			Help: "New data the job's runs stored, after deduplication."}, job),
		lastFiles: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "stillpoint_last_run_files",
			Help: "Files of the job's newest run by outcome."}, []string{"job", "outcome"}),
		files: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stillpoint_files_total",
			Help: "Files of the job's runs by outcome."}, []string{"job", "outcome"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "stillpoint_pending_retries",
			Help: "Files in the job's retry queue."}, job),
		freezeSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "stillpoint_last_run_snapshot_freeze_seconds",
			Help: "Time the newest run's snapshot set took to create (the writers' freeze window)."}, job),
		quietWaitSecs: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "stillpoint_last_run_quiet_wait_seconds",
			Help: "Write-inactivity wait of the job's newest run before its snapshot."}, job),
		drills: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stillpoint_drills_total",
			Help: "Finished restore drills by status (ok: every check passed, failed)."}, []string{"job", "status"}),
		lastDrill: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "stillpoint_last_drill_timestamp_seconds",
			Help: "End of the job's newest restore drill, Unix time."}, job),
		lastDrillOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "stillpoint_last_drill_success_timestamp_seconds",
			Help: "End of the job's newest restore drill whose every check passed, Unix time."}, job),
		drillPassed: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "stillpoint_last_drill_passed",
			Help: "1 when every check of the job's newest restore drill passed, 0 when one failed or it could not run."}, job),
		runningPerJob: map[string]int{},
	}
	m.reg.MustRegister(m.up, m.inProgress, m.runs, m.lastSuccess, m.lastEnd, m.lastOK, m.lastDuration,
		m.readBytes, m.addedBytes, m.lastFiles, m.files, m.pending, m.freezeSeconds, m.quietWaitSecs,
		m.drills, m.lastDrill, m.lastDrillOK, m.drillPassed,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.up.Set(1)
	return m
}

// Registry is the registry the metrics are in, for the daemon to add its own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// AddJob makes the job's series exist (at zero) before its first run, so
// a dashboard shows the job and an alert on its absence does not fire.
func (m *Metrics) AddJob(job string) {
	m.inProgress.WithLabelValues(job)
	m.pending.WithLabelValues(job)
	m.readBytes.WithLabelValues(job)
	m.addedBytes.WithLabelValues(job)
}

// RunStarted counts a run of job in progress until its RunFinished.
func (m *Metrics) RunStarted(job string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.runningPerJob[job]++
	m.inProgress.WithLabelValues(job).Set(float64(m.runningPerJob[job]))
}

// RunFinished records a finished run: it ends one run in progress of its
// job (if RunStarted counted one) and sets the job's last-run values. A
// zero End is now, a zero Start is End.
func (m *Metrics) RunFinished(r RunMetrics) {
	if r.End.IsZero() {
		r.End = time.Now()
	}
	if r.Start.IsZero() {
		r.Start = r.End
	}
	m.mu.Lock()
	if m.runningPerJob[r.Job] > 0 {
		m.runningPerJob[r.Job]--
	}
	m.inProgress.WithLabelValues(r.Job).Set(float64(m.runningPerJob[r.Job]))
	m.mu.Unlock()

	end := float64(r.End.UnixNano()) / 1e9
	m.runs.WithLabelValues(r.Job, r.Status).Inc()
	m.lastEnd.WithLabelValues(r.Job).Set(end)
	success := r.Status == StatusOK || r.Status == StatusPartial
	if success {
		m.lastSuccess.WithLabelValues(r.Job).Set(end)
		m.lastOK.WithLabelValues(r.Job).Set(1)
	} else {
		m.lastOK.WithLabelValues(r.Job).Set(0)
	}
	m.lastDuration.WithLabelValues(r.Job).Set(r.End.Sub(r.Start).Seconds())
	m.readBytes.WithLabelValues(r.Job).Add(float64(max(r.BytesRead, 0)))
	m.addedBytes.WithLabelValues(r.Job).Add(float64(max(r.BytesAdded, 0)))
	for _, o := range outcome.All() {
		n := r.Outcomes[o]
		m.lastFiles.WithLabelValues(r.Job, o.String()).Set(float64(n))
		m.files.WithLabelValues(r.Job, o.String()).Add(float64(max(n, 0)))
	}
	m.pending.WithLabelValues(r.Job).Set(float64(r.PendingRetries))
	m.freezeSeconds.WithLabelValues(r.Job).Set(r.FreezeMs / 1000)
	m.quietWaitSecs.WithLabelValues(r.Job).Set(r.QuietWaitSecs)
}

// DrillMetrics is what one finished restore drill adds to the metrics.
type DrillMetrics struct {
	Job        string
	Start, End time.Time
	Passed     bool // every check passed
}

// DrillFinished records a finished drill: it ends one run in progress of
// its job (if RunStarted counted one) and sets the job's drill values,
// leaving its backups' alone. A zero End is now.
func (m *Metrics) DrillFinished(r DrillMetrics) {
	if r.End.IsZero() {
		r.End = time.Now()
	}
	m.mu.Lock()
	if m.runningPerJob[r.Job] > 0 {
		m.runningPerJob[r.Job]--
	}
	m.inProgress.WithLabelValues(r.Job).Set(float64(m.runningPerJob[r.Job]))
	m.mu.Unlock()
	end := float64(r.End.UnixNano()) / 1e9
	m.lastDrill.WithLabelValues(r.Job).Set(end)
	if r.Passed {
		m.drills.WithLabelValues(r.Job, StatusOK).Inc()
		m.lastDrillOK.WithLabelValues(r.Job).Set(end)
		m.drillPassed.WithLabelValues(r.Job).Set(1)
	} else {
		m.drills.WithLabelValues(r.Job, StatusFailed).Inc()
		m.drillPassed.WithLabelValues(r.Job).Set(0)
	}
}

// SetPendingRetries sets the size of job's retry queue between runs.
func (m *Metrics) SetPendingRetries(job string, n int) {
	m.pending.WithLabelValues(job).Set(float64(n))
}

// SetUp sets stillpoint_up: the daemon sets 0 while it shuts down.
func (m *Metrics) SetUp(up bool) {
	if up {
		m.up.Set(1)
	} else {
		m.up.Set(0)
	}
}
