package daemon

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/history"
	"github.com/stillpoint-backup/stillpoint/internal/job"
	"github.com/stillpoint-backup/stillpoint/internal/notify"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/retryq"
	"github.com/stillpoint-backup/stillpoint/internal/run"
	"github.com/stillpoint-backup/stillpoint/internal/schedule"
	"github.com/stillpoint-backup/stillpoint/internal/service"
	"github.com/stillpoint-backup/stillpoint/internal/web"
)

// Options configure a Daemon.
type Options struct {
	// JobsDir holds the job files (*.yaml, *.yml).
	JobsDir string
	// StateDir holds history.db and the retry queues.
	StateDir string
	// Access is the repository of jobs that name none (--repo) and the
	// credentials of every job, as the CLI finds them.
	Access run.Access
	// Web configures the status pages; Addr "" is web.DefaultAddr.
	Web web.Options
	// NoWeb serves no pages (tests of the scheduling alone).
	NoWeb bool
	// Clock is schedule.Real{} when nil.
	Clock schedule.Clock
	// MaxSleep bounds one timer of the scheduler and of the follow-ups;
	// schedule.DefaultMaxSleep when 0.
	MaxSleep time.Duration
	// Log receives one line per event; nil is stderr.
	Log *log.Logger
	// Manager is told about readiness, reloads and status (sd_notify); nil
	// outside systemd.
	Manager *service.Notifier
	// Inhibitor keeps the machine awake during each run; nil for none.
	Inhibitor service.Inhibitor
	// RunJob runs one job once; nil is run.RunJob (tests replace it).
	RunJob func(ctx context.Context, jr run.JobRun) (*run.JobResult, error)
	// NotifyTimeout bounds the notifications of one run; default 2 minutes.
	NotifyTimeout time.Duration
	// Ready, when set, is called once the jobs are loaded and the pages
	// listen, with the address they listen on ("" without pages).
	Ready func(addr string)
}

// Daemon runs jobs on their schedules. Make one with New, start it with Run.
type Daemon struct {
	opts    Options
	clock   schedule.Clock
	log     *log.Logger
	hist    *history.DB
	closed  sync.Once // of hist
	metrics *web.Metrics
	sched   *schedule.Scheduler

	mu       sync.Mutex
	jobs     map[string]*jobState
	bad      []*LoadError          // of the latest load
	running  map[string]*activeRun // by job
	requests map[string]*activeRun // the next manual start of a job, by job
	finished map[string]int64      // run id → history id, for the pages
	repos    map[string]web.Repository
	drilling map[string]*activeRun // drills in progress, by job

	// drillTurn is held by the one drill that runs
	drillTurn chan struct{}
	// drillFn drills a job's newest snapshot; drillNewest but in tests
	drillFn func(ctx context.Context, js *jobState) (*repo.Snapshot, *repo.DrillResult, error)

	pokeFollow chan struct{}
	loopTurned atomic.Int64 // unix nanos of the follow-up loop's last turn
	inhibitErr sync.Once
}

// jobState is one loaded job.
type jobState struct {
	job    *job.Job
	queue  *retryq.Queue
	access run.Access
	notify *notify.Notifier
	// followAt is when the next follow-up is due; zero: none planned.
	followAt time.Time
	// sum is of the job file's bytes: a reload leaves an unchanged job alone
	sum [sha256.Size]byte
	// reschedule: the schedule changed while the job ran; the scheduler
	// takes the new one when the run ends.
	reschedule bool
	// lastDrill is the job's newest drill in the history; nil: none
	lastDrill *history.Run
}

// activeRun is a run in progress, for the pages.
type activeRun struct {
	id      string
	kind    history.Kind
	trigger string
	start   time.Time
}

// New opens the history database and loads the jobs. A job file that
// cannot be used is logged and left out (Problems lists them); only a
// missing jobs directory or an unusable state directory is an error.
func New(o Options) (*Daemon, error) {
	if o.Clock == nil {
		o.Clock = schedule.Real{}
	}
	if o.Log == nil {
		o.Log = log.New(os.Stderr, "", log.LstdFlags)
	}
	if o.RunJob == nil {
		o.RunJob = run.RunJob
	}
	if o.NotifyTimeout <= 0 {
		o.NotifyTimeout = 2 * time.Minute
	}
	if o.MaxSleep <= 0 {
		o.MaxSleep = schedule.DefaultMaxSleep
	}
	if o.StateDir == "" || o.JobsDir == "" {
		return nil, errors.New("daemon: the jobs and the state directory are needed")
	}
	// a relative directory is the one it names at start-up, whatever
	// happens to the working directory
	for _, dir := range []*string{&o.JobsDir, &o.StateDir} {
		abs, err := filepath.Abs(*dir)
		if err != nil {
			return nil, err
		}
		*dir = abs
	}
	hist, err := history.Open(filepath.Join(o.StateDir, history.FileName))
	if err != nil {
		return nil, err
	}
	d := &Daemon{opts: o, clock: o.Clock, log: o.Log, hist: hist, metrics: web.NewMetrics(),
		jobs: map[string]*jobState{}, running: map[string]*activeRun{}, requests: map[string]*activeRun{},
		finished: map[string]int64{}, repos: map[string]web.Repository{}, pokeFollow: make(chan struct{}, 1),
		drilling: map[string]*activeRun{}, drillTurn: make(chan struct{}, 1), drillFn: drillNewest}
	d.sched = schedule.New(d.runScheduled, schedule.Options{Clock: o.Clock, MaxSleep: o.MaxSleep, OnEvent: d.onEvent})
	if err := d.load(context.Background()); err != nil {
		hist.Close()
		return nil, err
	}
	return d, nil
}

// Close closes the history database. Run closes it as it returns; a
// daemon made and never run must be closed (on Windows an open file cannot
// be removed). Closing again does nothing.
func (d *Daemon) Close() error {
	var err error
	d.closed.Do(func() { err = d.hist.Close() })
	return err
}

// Metrics are the daemon's metrics, served on /metrics.
func (d *Daemon) Metrics() *web.Metrics { return d.metrics }

// Problems are the job files the latest load or reload could not use.
func (d *Daemon) Problems() []*LoadError {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]*LoadError(nil), d.bad...)
}

// JobNames are the loaded jobs, sorted.
func (d *Daemon) JobNames() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.names()
}

func (d *Daemon) names() []string {
	names := make([]string, 0, len(d.jobs))
	for n := range d.jobs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Reload reads the jobs directory again: new jobs are scheduled, removed
// ones unscheduled (a run in progress ends first), changed ones take
// effect from their next run. A file that became invalid keeps its job's
// previous definition. The error lists the files that could not be used.
func (d *Daemon) Reload(ctx context.Context) error {
	d.opts.Manager.Reloading()
	d.log.Printf("reloading the jobs in %s", d.opts.JobsDir)
	err := d.load(ctx)
	d.opts.Manager.Ready()
	d.updateStatus()
	if err != nil {
		return err
	}
	return joinLoadErrors(d.Problems())
}

// load reads the jobs directory and brings the jobs and the scheduler in
// line with it.
func (d *Daemon) load(ctx context.Context) error {
	loaded, bad, err := LoadJobs(d.opts.JobsDir)
	if err != nil {
		return err
	}
	for _, b := range bad {
		d.log.Printf("job file not used: %v", b)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	// a job whose file became invalid keeps its definition
	for _, b := range bad {
		for name, js := range d.jobs {
			if js.job.File == b.File {
				if _, taken := loaded[name]; !taken {
					loaded[name] = js.job
					d.log.Printf("job %s keeps its previous definition until %s is fixed", name, b.File)
				}
			}
		}
	}
	d.bad = bad
	for name := range d.jobs {
		if _, ok := loaded[name]; !ok {
			d.log.Printf("job %s removed", name)
			d.sched.Remove(name)
			d.sched.Remove(drillEntry(name))
			delete(d.jobs, name)
		}
	}
	for name, j := range loaded {
		old := d.jobs[name]
		sum := fileSum(j.File)
		if old != nil && old.sum == sum {
			continue // unchanged
		}
		js, err := d.newJobState(ctx, j)
		if err != nil {
			d.bad = append(d.bad, &LoadError{File: j.File, Err: err})
			d.log.Printf("job %s not used: %v", name, err)
			if old == nil {
				continue
			}
			js = old
		}
		js.sum = sum
		switch {
		case old == nil:
			if err := d.schedule(ctx, js); err != nil {
				d.bad = append(d.bad, &LoadError{File: j.File, Err: err})
				d.log.Printf("job %s not scheduled: %v", name, err)
				continue
			}
			d.metrics.AddJob(name)
			d.log.Printf("job %s loaded from %s (%s)", name, j.File, scheduleWords(j))
		case js != old:
			js.followAt = old.followAt
			if js.lastDrill == nil {
				js.lastDrill = old.lastDrill
			}
			if sameSchedule(old.job, j) {
				// the scheduler keeps its times
			} else if d.running[name] != nil {
				js.reschedule = true
			} else {
				d.reschedule(name, js)
			}
			d.log.Printf("job %s reloaded from %s (%s)", name, j.File, scheduleWords(j))
		}
		d.jobs[name] = js
		d.scheduleDrill(name, js)
		d.metrics.SetPendingRetries(name, js.queue.Len())
		if js.followAt.IsZero() {
			d.planFollowUp(name, js, d.clock.Now(), false)
		}
	}
	d.repos = map[string]web.Repository{}
	select {
	case d.pokeFollow <- struct{}{}:
	default:
	}
	return nil
}

func (d *Daemon) newJobState(ctx context.Context, j *job.Job) (*jobState, error) {
	q, err := retryq.Open(d.opts.StateDir, j.Name)
	if err != nil {
		return nil, err
	}
	if note := q.Damaged(); note != "" {
		d.log.Printf("job %s: %s", j.Name, note)
	}
	js := &jobState{job: j, queue: q, access: jobAccess(d.opts.Access, j), notify: notify.New(notify.FromJob(j.Notify))}
	if j.Drill != nil && j.Drill.Schedule != nil {
		if last, err := d.lastOf(ctx, j.Name, true); err == nil {
			js.lastDrill = last
		} else if !errors.Is(err, history.ErrNotFound) {
			return nil, err
		}
	}
	return js, nil
}

func fileSum(path string) [sha256.Size]byte {
	data, _ := os.ReadFile(path)
	return sha256.Sum256(data)
}

// jobAccess is the repository of a job: its repository: (and s3:), else
// the daemon's.
func jobAccess(base run.Access, j *job.Job) run.Access {
	a := base
	if j.Repository != "" {
		a.Repository = j.Repository
	}
	a.UseJobS3(j.S3)
	return a
}

// schedule adds a job to the scheduler, with its last start and success
// from the history, so missed times run once and done ones not again.
func (d *Daemon) schedule(ctx context.Context, js *jobState) error {
	sj := schedule.Job{Name: js.job.Name, Schedule: js.job.Schedule, Jitter: js.job.Jitter}
	if sj.Schedule == nil {
		sj.Schedule, sj.Jitter = never{}, 0
	}
	if last, err := d.lastOf(ctx, sj.Name, false); err == nil {
		sj.LastStart = last.Start
	} else if !errors.Is(err, history.ErrNotFound) {
		return err
	}
	if ok, err := d.hist.LastSuccess(ctx, sj.Name); err == nil {
		sj.LastSuccess = ok.Start
	}
	return d.sched.Add(sj)
}

// reschedule gives the scheduler a job's new schedule, keeping its last
// start and success; d.mu is held and the job is not running.
func (d *Daemon) reschedule(name string, js *jobState) {
	st, _ := d.sched.JobStatus(name)
	d.sched.Remove(name)
	sj := schedule.Job{Name: name, Schedule: js.job.Schedule, Jitter: js.job.Jitter, LastStart: st.LastStart, LastSuccess: st.LastSuccess}
	if sj.Schedule == nil {
		sj.Schedule, sj.Jitter = never{}, 0
	}
	if err := d.sched.Add(sj); err != nil {
		d.log.Printf("job %s not scheduled: %v", name, err)
	}
}

func sameSchedule(a, b *job.Job) bool {
	str := func(j *job.Job) string {
		if j.Schedule == nil {
			return ""
		}
		return j.Schedule.String()
	}
	return str(a) == str(b) && a.Jitter == b.Jitter
}

func scheduleWords(j *job.Job) string {
	if j.Schedule == nil {
		return "no schedule: it runs when asked"
	}
	s := "schedule " + j.Schedule.String()
	if j.Jitter > 0 {
		s += fmt.Sprintf(", jitter %s", j.Jitter)
	}
	return s
}

// never is the schedule of a job without schedule:: it runs when asked.
type never struct{}

func (never) Next(time.Time) time.Time { return time.Time{} }
func (never) String() string           { return "" }

// Run schedules the jobs, serves the pages and runs follow-ups until ctx
// ends; then it cancels the runs in progress, waits for them and returns
// nil. It returns an error when the pages cannot listen.
func (d *Daemon) Run(ctx context.Context) error {
	defer d.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	addr := ""
	if !d.opts.NoWeb {
		wo := d.opts.Web
		wo.Metrics = d.metrics
		srv, err := web.New(source{d}, wo)
		if err != nil {
			return err
		}
		srv.ErrorLog = d.log
		ln, err := web.Listen(wo)
		if err != nil {
			return err
		}
		addr = ln.Addr().String()
		scheme := "http"
		if wo.CertFile != "" {
			scheme = "https"
		}
		d.log.Printf("status pages on %s://%s/ (metrics on /metrics)", scheme, addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ctx, ln); err != nil && ctx.Err() == nil {
				d.log.Printf("status pages: %v", err)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.followUps(ctx)
	}()
	d.loopTurned.Store(time.Now().UnixNano())
	go d.opts.Manager.KeepAlive(ctx, d.alive)
	d.log.Printf("daemon started: %d jobs from %s, state in %s", len(d.JobNames()), d.opts.JobsDir, d.opts.StateDir)
	d.opts.Manager.Ready()
	if d.opts.Ready != nil {
		d.opts.Ready(addr)
	}
	d.updateStatus()
	schedDone := make(chan struct{})
	go func() {
		defer close(schedDone)
		d.sched.Run(ctx)
	}()
	<-ctx.Done()
	d.opts.Manager.Send("STOPPING=1")
	d.metrics.SetUp(false)
	d.log.Printf("stopping: the runs in progress are cancelled")
	<-schedDone
	wg.Wait()
	d.log.Printf("stopped")
	return nil
}

// alive is the watchdog's health check: the follow-up loop, which wakes
// at least every MaxSleep, still turns, and the scheduler answers.
func (d *Daemon) alive() bool {
	turned := time.Unix(0, d.loopTurned.Load())
	if time.Since(turned) > 2*d.opts.MaxSleep+10*time.Second {
		return false
	}
	d.sched.Status()
	return true
}

// updateStatus tells the service manager what runs and what comes next.
func (d *Daemon) updateStatus() {
	if d.opts.Manager == nil {
		return
	}
	d.mu.Lock()
	var running []string
	for n := range d.running {
		running = append(running, n)
	}
	d.mu.Unlock()
	sort.Strings(running)
	var parts []string
	if len(running) > 0 {
		parts = append(parts, "running "+strings.Join(running, ", "))
	}
	var next schedule.JobStatus
	for _, st := range d.sched.Status() {
		if !st.NextRun.IsZero() && (next.NextRun.IsZero() || st.NextRun.Before(next.NextRun)) {
			next = st
		}
	}
	if next.Name != "" {
		parts = append(parts, fmt.Sprintf("next %s at %s", next.Name, next.NextRun.Local().Format(time.DateTime)))
	}
	if len(parts) == 0 {
		parts = append(parts, "idle: no job is scheduled")
	}
	d.opts.Manager.Status(strings.Join(parts, "; "))
}

// onEvent logs the scheduler's events.
func (d *Daemon) onEvent(ev schedule.Event) {
	switch ev.Kind {
	case schedule.EventOverlap:
		d.log.Printf("job %s: its run of %s is skipped: the previous run still goes on (next at %s)", ev.Job,
			ev.Slot.Local().Format(time.DateTime), ev.Next.Local().Format(time.DateTime))
	case schedule.EventDeferred:
		d.log.Printf("job %s: its run of %s waits for the follow-up in progress and starts when it ends", ev.Job,
			ev.Slot.Local().Format(time.DateTime))
	case schedule.EventMissed:
		d.log.Printf("job %s: its run of %s was missed (down or asleep); it runs once now, %s late", ev.Job,
			ev.Slot.Local().Format(time.DateTime), ev.Late.Round(time.Second))
	}
}
