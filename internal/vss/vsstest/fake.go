// Package vsstest is a scripted fake of the VSS backup components, for
// testing the requester and the snapshot provider on any platform. It
// plays what writers and providers do (fail at prepare or freeze, answer
// VSS_E_SNAPSHOT_SET_IN_PROGRESS, hang) and records every call in order,
// so a test can assert that AbortBackup and Release happened.
package vsstest

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/vss"
)

// Writer is a fake writer.
type Writer struct {
	Name            string
	Class, Instance vss.GUID
	// FailAt is the phase after which the writer is in a failed state:
	// vss.PhasePrepareForBackup, vss.PhaseDoSnapshotSet (it failed to
	// freeze) or vss.PhaseBackupComplete; "" never fails.
	FailAt  string
	Failure vss.HRESULT
	// FailTimes is in how many attempts it fails (0: in every one).
	FailTimes int
	// Files are the file descriptors its metadata names (none: a writer
	// whose files cannot be known); FilesError, when set, is why they
	// could not be read.
	Files      []vss.FileDesc
	FilesError error
}

// Fake makes scripted Components; every attempt of a set gets a new one.
type Fake struct {
	Writers []Writer
	// CreateError, when set, is what creating the components returns.
	CreateError error
	// Shadows is what QuerySnapshots lists.
	Shadows []vss.SnapshotProperties
	// Providers is what QueryProviders lists; Supports has, by provider
	// id, the volumes IsVolumeSupported says yes to (without case), and
	// VolumeErrors what it answers for a volume VSS does not know.
	Providers    []vss.ProviderProperties
	Supports     map[vss.GUID][]string
	VolumeErrors map[string]vss.HRESULT

	mu       sync.Mutex
	results  map[string][]vss.HRESULT
	hang     map[string]bool
	log      []string
	attempts int
	failed   map[int]int // writer index → attempts it failed in
	devices  int
	live     int
}

// New returns a fake with these writers.
func New(writers ...Writer) *Fake {
	return &Fake{Writers: writers, results: map[string][]vss.HRESULT{}, hang: map[string]bool{}, failed: map[int]int{}}
}

// Fail makes the next calls of method (over all attempts) fail with
// codes, one per call; later calls succeed. For an asynchronous method
// the code is what QueryStatus reports when the call finishes.
func (f *Fake) Fail(method string, codes ...vss.HRESULT) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.results[method] = append(f.results[method], codes...)
}

// Hang makes method's asynchronous call never finish until cancelled.
func (f *Fake) Hang(method string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hang[method] = true
}

// Calls returns the calls made so far, in order; each attempt starts with
// "Create".
func (f *Fake) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.log...)
}

// Live is how many components were created and not released.
func (f *Fake) Live() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.live
}

// Attempts is how many components were created.
func (f *Fake) Attempts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts
}

func (f *Fake) record(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, s)
}

func (f *Fake) next(method string) vss.HRESULT {
	f.mu.Lock()
	defer f.mu.Unlock()
	rs := f.results[method]
	if len(rs) == 0 {
		return vss.S_OK
	}
	f.results[method] = rs[1:]
	return rs[0]
}

// Factory returns the fake's vss.Factory.
func (f *Fake) Factory() vss.Factory {
	return func() (vss.Components, error) {
		f.record("Create")
		if f.CreateError != nil {
			return nil, f.CreateError
		}
		f.mu.Lock()
		f.attempts++
		f.live++
		n := f.attempts
		f.mu.Unlock()
		return &components{f: f, attempt: n}, nil
	}
}

// stage is how far a components object got; calls out of order answer
// VSS_E_BAD_STATE as VSS does.
type stage int

const (
	fresh stage = iota
	initialized
	gathered
	started
	added
	prepared
	snapped
	completed
)

type components struct {
	f        *Fake
	attempt  int
	stage    stage
	released bool
	volumes  []string
	statuses []vss.WriterStatus
	disabled []vss.GUID
}

func (c *components) call(name string, need stage) error {
	c.f.record(name)
	if c.released {
		panic("vsstest: " + name + " called after Release")
	}
	if c.stage < need {
		return vss.VSS_E_BAD_STATE
	}
	method := name
	if i := strings.IndexByte(name, '('); i >= 0 {
		method = name[:i]
	}
	if h := c.f.next(method); h != vss.S_OK {
		return h
	}
	return nil
}

func (c *components) InitializeForBackup() error {
	if err := c.call("InitializeForBackup", fresh); err != nil {
		return err
	}
	c.stage = initialized
	return nil
}

func (c *components) SetContext(ctx vss.Context) error {
	return c.call(fmt.Sprintf("SetContext(%d)", ctx), initialized)
}

func (c *components) SetBackupState(sel, boot bool, t vss.BackupType, partial bool) error {
	return c.call(fmt.Sprintf("SetBackupState(%t,%t,%d,%t)", sel, boot, t, partial), initialized)
}

func (c *components) async(name string, need, reached stage) (vss.Async, error) {
	c.f.record(name)
	if c.released {
		panic("vsstest: " + name + " called after Release")
	}
	if c.stage < need {
		return nil, vss.VSS_E_BAD_STATE
	}
	a := &async{c: c, name: name, result: c.f.next(name), polls: 1}
	c.f.mu.Lock()
	a.hang = c.f.hang[name]
	c.f.mu.Unlock()
	if a.result == vss.S_OK {
		c.stage = max(c.stage, reached)
	}
	return a, nil
}

func (c *components) GatherWriterMetadata() (vss.Async, error) {
	a, err := c.async("GatherWriterMetadata", initialized, gathered)
	if err == nil && c.statuses == nil {
		_, ws := c.writers()
		for _, w := range ws {
			c.statuses = append(c.statuses, vss.WriterStatus{Instance: w.Instance, Class: w.Class, Name: w.Name, State: vss.WriterStable})
		}
	}
	return a, err
}

// QuerySnapshots implements vss.Querier.
func (c *components) QuerySnapshots() ([]vss.SnapshotProperties, error) {
	if err := c.call("Query", initialized); err != nil {
		return nil, err
	}
	return append([]vss.SnapshotProperties(nil), c.f.Shadows...), nil
}

// QueryProviders implements vss.ProviderQuerier.
func (c *components) QueryProviders() ([]vss.ProviderProperties, error) {
	if err := c.call("QueryProviders", initialized); err != nil {
		return nil, err
	}
	return append([]vss.ProviderProperties(nil), c.f.Providers...), nil
}

// IsVolumeSupported implements vss.ProviderQuerier.
func (c *components) IsVolumeSupported(provider vss.GUID, volume string) (bool, error) {
	if err := c.call("IsVolumeSupported("+provider.String()+","+volume+")", initialized); err != nil {
		return false, err
	}
	if h, ok := c.f.VolumeErrors[volume]; ok {
		return false, h
	}
	if !strings.HasSuffix(volume, `\`) {
		return false, vss.E_INVALIDARG
	}
	for _, v := range c.f.Supports[provider] {
		if strings.EqualFold(v, volume) {
			return true, nil
		}
	}
	return false, nil
}

func (c *components) GetWriterMetadataCount() (int, error) {
	if err := c.call("GetWriterMetadataCount", gathered); err != nil {
		return 0, err
	}
	_, ws := c.writers()
	return len(ws), nil
}

func (c *components) GetWriterMetadata(i int) (vss.WriterIdentity, error) {
	if err := c.call(fmt.Sprintf("GetWriterMetadata(%d)", i), gathered); err != nil {
		return vss.WriterIdentity{}, err
	}
	_, ws := c.writers()
	w := ws[i]
	return vss.WriterIdentity{Instance: w.Instance, Class: w.Class, Name: w.Name,
		Files: append([]vss.FileDesc(nil), w.Files...), FilesError: w.FilesError}, nil
}

func (c *components) FreeWriterMetadata() error { return c.call("FreeWriterMetadata", gathered) }

// DisableWriterClasses must come before GatherWriterMetadata: VSS ignores
// it afterwards, which the fake answers with VSS_E_BAD_STATE so that a
// test sees it. Disabled writers are neither listed nor frozen.
func (c *components) DisableWriterClasses(classes []vss.GUID) error {
	var s []string
	for _, g := range classes {
		s = append(s, g.String())
	}
	if err := c.call("DisableWriterClasses("+strings.Join(s, ",")+")", initialized); err != nil {
		return err
	}
	if c.stage >= gathered {
		return vss.VSS_E_BAD_STATE
	}
	c.disabled = append(c.disabled, classes...)
	return nil
}

// writers are the fake's writers that are not disabled, with their index.
func (c *components) writers() (idx []int, ws []Writer) {
	for i, w := range c.f.Writers {
		if !slices.Contains(c.disabled, w.Class) {
			idx, ws = append(idx, i), append(ws, w)
		}
	}
	return idx, ws
}

func (c *components) StartSnapshotSet() (vss.GUID, error) {
	if err := c.call("StartSnapshotSet", gathered); err != nil {
		return vss.GUID{}, err
	}
	c.stage = started
	return vss.GUID{Data1: uint32(c.attempt)}, nil
}

func (c *components) AddToSnapshotSet(volume string, provider vss.GUID) (vss.GUID, error) {
	name := "AddToSnapshotSet(" + volume
	if !provider.IsZero() {
		name += "," + provider.String()
	}
	if err := c.call(name+")", started); err != nil {
		return vss.GUID{}, err
	}
	if !strings.HasSuffix(volume, `\`) {
		return vss.GUID{}, vss.E_INVALIDARG // VSS wants the trailing backslash
	}
	c.volumes = append(c.volumes, volume)
	c.stage = added
	return vss.GUID{Data1: uint32(c.attempt), Data2: uint16(len(c.volumes))}, nil
}

func (c *components) PrepareForBackup() (vss.Async, error) {
	a, err := c.async("PrepareForBackup", added, prepared)
	if err == nil {
		c.writerStates(vss.PhasePrepareForBackup)
	}
	return a, err
}

func (c *components) DoSnapshotSet() (vss.Async, error) {
	a, err := c.async("DoSnapshotSet", prepared, snapped)
	if err == nil {
		c.writerStates(vss.PhaseDoSnapshotSet)
	}
	return a, err
}

func (c *components) BackupComplete() (vss.Async, error) {
	a, err := c.async("BackupComplete", snapped, completed)
	if err == nil {
		c.writerStates(vss.PhaseBackupComplete)
	}
	return a, err
}

// writerStates moves every writer to its state after phase.
func (c *components) writerStates(phase string) {
	failedState := map[string]vss.WriterState{
		vss.PhasePrepareForBackup: vss.WriterFailedAtPrepareBackup,
		vss.PhaseDoSnapshotSet:    vss.WriterFailedAtFreeze,
		vss.PhaseBackupComplete:   vss.WriterFailedAtBackupComplete,
	}
	okState := map[string]vss.WriterState{
		vss.PhasePrepareForBackup: vss.WriterStable,
		vss.PhaseDoSnapshotSet:    vss.WriterWaitingForBackupComplete,
		vss.PhaseBackupComplete:   vss.WriterStable,
	}
	idx, ws := c.writers()
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	for j, w := range ws {
		i := idx[j]
		st := &c.statuses[j]
		if st.State.Failed() {
			continue
		}
		if w.FailAt == phase && (w.FailTimes == 0 || c.f.failed[i] < w.FailTimes) {
			c.f.failed[i]++
			st.State, st.Failure = failedState[phase], w.Failure
			continue
		}
		st.State = okState[phase]
	}
}

func (c *components) GatherWriterStatus() (vss.Async, error) {
	return c.async("GatherWriterStatus", gathered, fresh)
}

func (c *components) GetWriterStatusCount() (int, error) {
	if err := c.call("GetWriterStatusCount", gathered); err != nil {
		return 0, err
	}
	return len(c.statuses), nil
}

func (c *components) GetWriterStatus(i int) (vss.WriterStatus, error) {
	if err := c.call(fmt.Sprintf("GetWriterStatus(%d)", i), gathered); err != nil {
		return vss.WriterStatus{}, err
	}
	return c.statuses[i], nil
}

func (c *components) FreeWriterStatus() error { return c.call("FreeWriterStatus", gathered) }

func (c *components) GetSnapshotProperties(id vss.GUID) (vss.SnapshotProperties, error) {
	if err := c.call("GetSnapshotProperties", snapped); err != nil {
		return vss.SnapshotProperties{}, err
	}
	c.f.mu.Lock()
	c.f.devices++
	n := c.f.devices
	c.f.mu.Unlock()
	return vss.SnapshotProperties{ID: id, DeviceObject: fmt.Sprintf(`\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy%d`, n),
		Created: time.Now()}, nil
}

func (c *components) AbortBackup() error {
	return c.call("AbortBackup", fresh)
}

func (c *components) Release() {
	c.f.record("Release")
	if c.released {
		panic("vsstest: Release called twice")
	}
	c.released = true
	c.f.mu.Lock()
	c.f.live--
	c.f.mu.Unlock()
}

// async is a fake IVssAsync: pending for one poll, then its result; a
// hanging one stays pending until cancelled.
type async struct {
	c         *components
	name      string
	result    vss.HRESULT
	polls     int
	hang      bool
	cancelled bool
}

func (a *async) Wait(d time.Duration) error {
	if a.hang && !a.cancelled {
		time.Sleep(d) // a real Wait blocks for its whole slice
	}
	return nil
}

func (a *async) QueryStatus() (vss.HRESULT, error) {
	switch {
	case a.cancelled:
		return vss.VSS_S_ASYNC_CANCELLED, nil
	case a.hang || a.polls > 0:
		a.polls--
		return vss.VSS_S_ASYNC_PENDING, nil
	case a.result != vss.S_OK:
		return a.result, nil
	}
	return vss.VSS_S_ASYNC_FINISHED, nil
}

func (a *async) Cancel() error {
	a.c.f.record(a.name + ".Cancel")
	a.cancelled = true
	return nil
}

func (a *async) Release() {}
