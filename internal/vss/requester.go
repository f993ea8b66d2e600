package vss

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Defaults of Options.
const (
	// DefaultPhaseTimeout bounds one asynchronous call. Writers get 60 s
	// to freeze and the system 10 s to hold writes; gathering metadata
	// from many writers on a busy server takes minutes.
	DefaultPhaseTimeout = 3 * time.Minute
	// DefaultTimeout bounds the whole set, retries and back-off included.
	DefaultTimeout = 10 * time.Minute
	// DefaultRetries is how often a set that failed with a transient
	// error (a timeout, a retryable writer error, a provider veto) is
	// tried again.
	DefaultRetries = 2
	// DefaultBackoff is the first wait when another set is being made;
	// it doubles up to MaxBackoff.
	DefaultBackoff = 5 * time.Second
	MaxBackoff     = time.Minute
	// DefaultSlice is how long one Wait blocks before the run's context
	// and the timeouts are looked at again.
	DefaultSlice = 250 * time.Millisecond
)

// Options tune a Requester. The zero value means the defaults, except
// Retries, which is taken as given (see DefaultOptions).
type Options struct {
	BackupType BackupType // 0 means BackupCopy
	// Provider chooses the shadow copy provider; zero lets Windows choose.
	Provider     GUID
	PhaseTimeout time.Duration
	Timeout      time.Duration
	Retries      int
	Backoff      time.Duration
	Slice        time.Duration
	// Require names writers (by name or class id, without case) that
	// must be present and must not fail; Exclude names writers that are
	// left out of the backup (DisableWriterClasses).
	Require, Exclude []string
}

// DefaultOptions are the options of a job that says nothing.
func DefaultOptions() Options { return Options{Retries: DefaultRetries} }

func (o Options) withDefaults() Options {
	if o.BackupType == 0 {
		o.BackupType = BackupCopy
	}
	if o.PhaseTimeout <= 0 {
		o.PhaseTimeout = DefaultPhaseTimeout
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Retries < 0 {
		o.Retries = 0
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.Slice <= 0 {
		o.Slice = DefaultSlice
	}
	return o
}

// Requester drives the documented backup sequence against a Components.
type Requester struct {
	factory Factory
	opts    Options
}

// NewRequester returns a requester that gets its components from f.
func NewRequester(f Factory, o Options) *Requester {
	return &Requester{factory: f, opts: o.withDefaults()}
}

// Snapshot is one volume's shadow copy in a set.
type Snapshot struct {
	Volume string `json:"volume"` // as added, e.g. C:\
	ID     GUID   `json:"id"`
	// Device is \\?\GLOBALROOT\Device\HarddiskVolumeShadowCopyN.
	Device  string    `json:"device"`
	Created time.Time `json:"created"`
}

// Check is one writer's state after one phase.
type Check struct {
	Phase   string      `json:"phase"`
	State   WriterState `json:"state"`
	Failure HRESULT     `json:"failure,omitempty"`
}

// Writer is what the requester saw of one writer.
type Writer struct {
	Name     string `json:"name"`
	Class    GUID   `json:"id"`
	Instance GUID   `json:"instance"`
	Required bool   `json:"required,omitempty"`
	Excluded bool   `json:"excluded,omitempty"`
	// Checks are its states after PrepareForBackup, DoSnapshotSet and
	// BackupComplete, as far as the set got.
	Checks []Check `json:"checks"`
	// Files are the files its metadata names (environment variables
	// expanded); FilesKnown is false when they cannot be known, and then
	// it covers every source (see Covers).
	Files      []FileDesc `json:"-"`
	FilesKnown bool       `json:"-"`
}

// LowersConsistency tells whether the writer failed before the shadow
// copies were made and is not excluded: what it covers in the set is
// crash-consistent, not application-consistent.
func (w Writer) LowersConsistency() bool {
	c, ok := w.Failed()
	return ok && !w.Excluded && c.Phase != PhaseBackupComplete
}

// Failed returns the first check in a failed state.
func (w Writer) Failed() (Check, bool) {
	for _, c := range w.Checks {
		if c.State.Failed() {
			return c, true
		}
	}
	return Check{}, false
}

// State is the writer's last state seen.
func (w Writer) State() WriterState {
	if len(w.Checks) == 0 {
		return WriterUnknown
	}
	return w.Checks[len(w.Checks)-1].State
}

// Set is a snapshot set that exists until Complete or Abort.
type Set struct {
	ID        GUID       `json:"id"`
	Snapshots []Snapshot `json:"snapshots"`
	Attempts  int        `json:"attempts"`
	// Notes say what happened on the way (retries, back-off).
	Notes []string `json:"notes,omitempty"`

	r     *Requester
	comps Components

	mu      sync.Mutex
	writers []Writer
	done    bool
}

// Device returns the shadow copy device of a volume of the set.
func (s *Set) Device(volume string) (string, bool) {
	for _, sn := range s.Snapshots {
		if strings.EqualFold(sn.Volume, volume) {
			return sn.Device, true
		}
	}
	return "", false
}

// Writers returns every writer seen, with its checks.
func (s *Set) Writers() []Writer {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Writer, len(s.writers))
	for i, w := range s.writers {
		w.Checks = append([]Check(nil), w.Checks...)
		w.Files = append([]FileDesc(nil), w.Files...)
		out[i] = w
	}
	return out
}

// FailedWriters lists the writers (not excluded) that failed before the
// shadow copies were made: their data in the set is crash-consistent.
func (s *Set) FailedWriters() []Writer {
	var out []Writer
	for _, w := range s.Writers() {
		if w.LowersConsistency() {
			out = append(out, w)
		}
	}
	return out
}

// Phases named in errors, checks and notes.
const (
	PhaseCreate            = "CreateVssBackupComponents"
	PhaseInitialize        = "InitializeForBackup"
	PhaseSetContext        = "SetContext"
	PhaseSetBackupState    = "SetBackupState"
	PhaseGatherMetadata    = "GatherWriterMetadata"
	PhaseDisableWriters    = "DisableWriterClasses"
	PhaseStartSet          = "StartSnapshotSet"
	PhaseAddToSet          = "AddToSnapshotSet"
	PhasePrepareForBackup  = "PrepareForBackup"
	PhaseDoSnapshotSet     = "DoSnapshotSet"
	PhaseGetProperties     = "GetSnapshotProperties"
	PhaseBackupComplete    = "BackupComplete"
	PhaseGatherWriterState = "GatherWriterStatus"
)

// Create makes one snapshot set of volumes ("C:\", "D:\"; each with its
// trailing backslash) with the documented sequence, retrying as the
// failure's HRESULT says, within Options.Timeout. On failure nothing is
// left: every attempt is aborted and released.
func (r *Requester) Create(ctx context.Context, volumes []string) (*Set, error) {
	if len(volumes) == 0 {
		return nil, errors.New("VSS: no volumes to snap")
	}
	deadline := time.Now().Add(r.opts.Timeout)
	cctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	backoff := r.opts.Backoff
	retries := 0
	ex, notes, err := r.exclusions(cctx, ctx)
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		set, err := r.attempt(cctx, ctx, volumes, ex, retries < r.opts.Retries)
		if err == nil {
			set.Attempts, set.Notes = attempt, notes
			return set, nil
		}
		ve := asError("", err)
		ve.Attempts = attempt
		if ve.Timeout > 0 || ve.Err != nil {
			return nil, ve
		}
		switch classify(ve.Code) {
		case inProgress:
			if time.Now().Add(backoff).After(deadline) {
				return nil, fmt.Errorf("%w; gave up: another wait would pass vss.timeout (%s)", ve, r.opts.Timeout)
			}
			notes = append(notes, fmt.Sprintf("VSS: another shadow copy was being made (%s); tried again after %s", ve.Code.Name(), backoff))
			if err := sleep(ctx, backoff); err != nil {
				return nil, &Error{Phase: ve.Phase, Err: err, Attempts: attempt}
			}
			backoff = min(2*backoff, MaxBackoff)
		case wholeSet:
			if retries >= r.opts.Retries {
				return nil, ve
			}
			retries++
			what := ve.Code.Name()
			if ve.Writer != "" {
				what = fmt.Sprintf("writer %q: %s", ve.Writer, ve.Code.Name())
			}
			notes = append(notes, fmt.Sprintf("VSS %s failed (%s); tried the whole set again (%d of %d)", ve.Phase, what, retries, r.opts.Retries))
		default:
			return nil, ve
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// exclusion is what Options.Exclude comes to: the writer classes to
// disable, and the writers they are.
type exclusion struct {
	classes []GUID
	writers []Writer
}

// exclusions resolves Options.Exclude to writer classes. Classes must be
// disabled before GatherWriterMetadata (afterwards it has no effect), so
// writers named by name are looked up with components of their own.
func (r *Requester) exclusions(cctx, parent context.Context) (exclusion, []string, error) {
	var ex exclusion
	var names []string
	for _, x := range r.opts.Exclude {
		if g, err := ParseGUID(x); err == nil {
			ex.classes = append(ex.classes, g)
		} else {
			names = append(names, x)
		}
	}
	if len(names) == 0 {
		return ex, nil, nil
	}
	ids, err := r.identities(cctx, parent)
	if err != nil {
		return ex, nil, err
	}
	var notes []string
	for _, n := range names {
		found := false
		for _, id := range ids {
			if !matches([]string{n}, id.Name, id.Class) {
				continue
			}
			found = true
			if !slices.Contains(ex.classes, id.Class) {
				ex.classes = append(ex.classes, id.Class)
			}
			ex.writers = append(ex.writers, Writer{Name: id.Name, Class: id.Class, Instance: id.Instance, Excluded: true})
		}
		if !found {
			notes = append(notes, fmt.Sprintf("VSS: vss.writers.exclude names %q, but no writer of that name is on this system", n))
		}
	}
	return ex, notes, nil
}

// identities gathers the writers' metadata with components of their own
// and returns who they are.
func (r *Requester) identities(cctx, parent context.Context) ([]WriterIdentity, error) {
	c, err := r.factory()
	if err != nil {
		return nil, asError(PhaseCreate, err)
	}
	defer c.Release()
	if err := c.InitializeForBackup(); err != nil {
		return nil, asError(PhaseInitialize, err)
	}
	if err := c.SetBackupState(false, false, r.opts.BackupType, false); err != nil {
		return nil, asError(PhaseSetBackupState, err)
	}
	if err := r.wait(cctx, parent, PhaseGatherMetadata, c.GatherWriterMetadata); err != nil {
		return nil, err
	}
	return writerIdentities(c)
}

// writerIdentities reads the metadata GatherWriterMetadata gathered, and
// frees it.
func writerIdentities(c Components) ([]WriterIdentity, error) {
	n, err := c.GetWriterMetadataCount()
	if err != nil {
		return nil, asError(PhaseGatherMetadata, err)
	}
	var ids []WriterIdentity
	for i := range n {
		id, err := c.GetWriterMetadata(i)
		if err != nil {
			return nil, asError(PhaseGatherMetadata, err)
		}
		ids = append(ids, id)
	}
	if err := c.FreeWriterMetadata(); err != nil {
		return nil, asError(PhaseGatherMetadata, err)
	}
	return ids, nil
}

// writerStatuses reads the states GatherWriterStatus gathered, and frees
// them.
func writerStatuses(c Components) ([]WriterStatus, error) {
	n, err := c.GetWriterStatusCount()
	if err != nil {
		return nil, asError(PhaseGatherWriterState, err)
	}
	var sts []WriterStatus
	for i := range n {
		st, err := c.GetWriterStatus(i)
		if err != nil {
			return nil, asError(PhaseGatherWriterState, err)
		}
		sts = append(sts, st)
	}
	if err := c.FreeWriterStatus(); err != nil {
		return nil, asError(PhaseGatherWriterState, err)
	}
	return sts, nil
}

// attempt runs the sequence once. cctx carries the total deadline, parent
// is the run's own context (to tell a timeout from a cancelled run).
func (r *Requester) attempt(cctx, parent context.Context, volumes []string, ex exclusion, mayRetry bool) (_ *Set, err error) {
	c, err := r.factory()
	if err != nil {
		return nil, asError(PhaseCreate, err)
	}
	s := &Set{r: r, comps: c}
	started := false
	defer func() {
		if err != nil {
			if started {
				_ = c.AbortBackup()
			}
			c.Release()
		}
	}()
	step := func(phase string, err error) error {
		if err != nil {
			return asError(phase, err)
		}
		return nil
	}
	if err := step(PhaseInitialize, c.InitializeForBackup()); err != nil {
		return nil, err
	}
	if err := step(PhaseSetContext, c.SetContext(ContextBackup)); err != nil {
		return nil, err
	}
	if err := step(PhaseSetBackupState, c.SetBackupState(false, false, r.opts.BackupType, false)); err != nil {
		return nil, err
	}
	if len(ex.classes) > 0 {
		if err := step(PhaseDisableWriters, c.DisableWriterClasses(ex.classes)); err != nil {
			return nil, err
		}
	}
	if err := r.wait(cctx, parent, PhaseGatherMetadata, c.GatherWriterMetadata); err != nil {
		return nil, err
	}
	s.writers = append(s.writers, ex.writers...)
	if err := s.identify(); err != nil {
		return nil, err
	}
	setID, err := c.StartSnapshotSet()
	if err != nil {
		return nil, asError(PhaseStartSet, err)
	}
	started = true
	s.ID = setID
	ids := make([]GUID, len(volumes))
	for i, v := range volumes {
		if ids[i], err = c.AddToSnapshotSet(v, r.opts.Provider); err != nil {
			e := asError(PhaseAddToSet, err)
			e.Volume = v
			return nil, e
		}
	}
	if err := r.wait(cctx, parent, PhasePrepareForBackup, c.PrepareForBackup); err != nil {
		return nil, err
	}
	if err := s.check(cctx, parent, PhasePrepareForBackup, mayRetry); err != nil {
		return nil, err
	}
	if err := r.wait(cctx, parent, PhaseDoSnapshotSet, c.DoSnapshotSet); err != nil {
		return nil, err
	}
	if err := s.check(cctx, parent, PhaseDoSnapshotSet, mayRetry); err != nil {
		return nil, err
	}
	for i, id := range ids {
		p, err := c.GetSnapshotProperties(id)
		if err != nil {
			e := asError(PhaseGetProperties, err)
			e.Volume = volumes[i]
			return nil, e
		}
		if p.DeviceObject == "" {
			return nil, &Error{Phase: PhaseGetProperties, Volume: volumes[i], Err: errors.New("the shadow copy has no device name")}
		}
		s.Snapshots = append(s.Snapshots, Snapshot{Volume: volumes[i], ID: id, Device: p.DeviceObject, Created: p.Created})
	}
	return s, nil
}

// matches tells whether a writer is named in names (name or class id).
func matches(names []string, name string, class GUID) bool {
	for _, n := range names {
		if strings.EqualFold(strings.TrimSpace(n), name) || strings.EqualFold(strings.Trim(n, "{} "), strings.Trim(class.String(), "{}")) {
			return true
		}
	}
	return false
}

// identify reads the writers' metadata and checks that required writers
// exist.
func (s *Set) identify() error {
	c, o := s.comps, s.r.opts
	ids, err := writerIdentities(c)
	if err != nil {
		return err
	}
	var names []string
	for _, id := range ids {
		names = append(names, id.Name)
		files, known := filesOf(id, lookupEnv)
		s.writers = append(s.writers, Writer{Name: id.Name, Class: id.Class, Instance: id.Instance,
			Required: matches(o.Require, id.Name, id.Class), Excluded: matches(o.Exclude, id.Name, id.Class),
			Files: files, FilesKnown: known})
	}
	for _, req := range o.Require {
		found := false
		for _, id := range ids {
			found = found || matches([]string{req}, id.Name, id.Class)
		}
		if !found {
			list := "none"
			if len(names) > 0 {
				list = strings.Join(names, ", ")
			}
			return &Error{Phase: PhaseGatherMetadata, Err: fmt.Errorf("required writer %q is not on this system (writers: %s); "+
				"start its application's service, or remove it from vss.writers.require", req, list)}
		}
	}
	return nil
}

// check gathers the writers' status after phase and records it. A
// failed writer that is required fails the set; one whose failure may pass
// on a new try fails the attempt while retries are left; others only
// lower the set's consistency.
func (s *Set) check(cctx, parent context.Context, phase string, mayRetry bool) error {
	c := s.comps
	if err := s.r.wait(cctx, parent, PhaseGatherWriterState+" after "+phase, c.GatherWriterStatus); err != nil {
		return err
	}
	sts, err := writerStatuses(c)
	if err != nil {
		return err
	}
	var fail *Error
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range sts {
		w := s.writer(st)
		w.Checks = append(w.Checks, Check{Phase: phase, State: st.State, Failure: st.Failure})
		if !st.State.Failed() || w.Excluded || fail != nil {
			continue
		}
		switch {
		case mayRetry && classify(st.Failure) == wholeSet:
			fail = &Error{Phase: phase, Code: st.Failure, Writer: w.Name, WriterState: st.State}
		case w.Required:
			fail = &Error{Phase: phase + " (a required writer, vss.writers.require)", Code: st.Failure, Writer: w.Name, WriterState: st.State}
		}
	}
	if fail != nil {
		return fail
	}
	return nil
}

// writer returns the record of the writer st is about, adding one for a
// writer that did not show in the metadata. Callers hold s.mu.
func (s *Set) writer(st WriterStatus) *Writer {
	for i := range s.writers {
		if s.writers[i].Instance == st.Instance && s.writers[i].Class == st.Class {
			return &s.writers[i]
		}
	}
	o := s.r.opts
	s.writers = append(s.writers, Writer{Name: st.Name, Class: st.Class, Instance: st.Instance,
		Required: matches(o.Require, st.Name, st.Class), Excluded: matches(o.Exclude, st.Name, st.Class)})
	return &s.writers[len(s.writers)-1]
}

// wait starts an asynchronous call and waits for it in slices, against
// the run's context, the phase timeout and the total deadline. On a
// timeout or a cancelled run it cancels the call.
func (r *Requester) wait(cctx, parent context.Context, phase string, start func() (Async, error)) error {
	a, err := start()
	if err != nil {
		return asError(phase, err)
	}
	defer a.Release()
	limit := time.Now().Add(r.opts.PhaseTimeout)
	for {
		if err := a.Wait(r.opts.Slice); err != nil {
			return asError(phase, err)
		}
		st, err := a.QueryStatus()
		if err != nil {
			return asError(phase, err)
		}
		switch {
		case st == VSS_S_ASYNC_PENDING:
		case st == VSS_S_ASYNC_CANCELLED:
			return &Error{Phase: phase, Err: errors.New("VSS cancelled the call (VSS_S_ASYNC_CANCELLED)")}
		case st.Failed():
			return &Error{Phase: phase, Code: st}
		default:
			return nil
		}
		switch {
		case parent.Err() != nil:
			_ = a.Cancel()
			return &Error{Phase: phase, Err: fmt.Errorf("run cancelled: %w", parent.Err())}
		case cctx.Err() != nil:
			_ = a.Cancel()
			return &Error{Phase: phase, Timeout: r.opts.Timeout, TimeoutKey: "vss.timeout, the limit for the whole set"}
		case time.Now().After(limit):
			_ = a.Cancel()
			return &Error{Phase: phase, Timeout: r.opts.PhaseTimeout, TimeoutKey: "vss.phase-timeout"}
		}
	}
}

// Complete ends the backup: BackupComplete, the writers' status after it,
// and the release of the components object, which deletes the shadow
// copies. It is idempotent; the release happens whatever fails.
func (s *Set) Complete(ctx context.Context) error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		return nil
	}
	s.done = true
	s.mu.Unlock()
	c := s.comps
	defer c.Release()
	cctx, cancel := context.WithTimeout(ctx, s.r.opts.PhaseTimeout)
	defer cancel()
	if err := s.r.wait(cctx, ctx, PhaseBackupComplete, c.BackupComplete); err != nil {
		_ = c.AbortBackup()
		return err
	}
	if err := s.check(cctx, ctx, PhaseBackupComplete, false); err != nil {
		_ = c.AbortBackup()
		return err
	}
	return nil
}

// Abort gives the set up without completing the backup: AbortBackup and
// release. It is idempotent.
func (s *Set) Abort() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return nil
	}
	s.done = true
	defer s.comps.Release()
	if err := s.comps.AbortBackup(); err != nil {
		return asError("AbortBackup", err)
	}
	return nil
}
