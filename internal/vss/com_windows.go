package vss

import (
	"errors"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

var (
	modVssAPI                     = windows.NewLazySystemDLL("VssApi.dll")
	procCreateVssBackupComponents = modVssAPI.NewProc("CreateVssBackupComponentsInternal")
	procVssFreeSnapshotProperties = modVssAPI.NewProc("VssFreeSnapshotPropertiesInternal")
	modOle32                      = windows.NewLazySystemDLL("ole32.dll")
	procCoInitializeSecurity      = modOle32.NewProc("CoInitializeSecurity")
	modOleAut32                   = windows.NewLazySystemDLL("oleaut32.dll")
	procSysFreeString             = modOleAut32.NewProc("SysFreeString")
)

// COM security for the process: writers call back into the requester, so
// they must be allowed to (the values of Microsoft's vshadow sample).
const (
	rpcAuthnLevelPktPrivacy = 6
	rpcImpLevelIdentify     = 2
	eoacDynamicCloaking     = 0x40
)

// VSS_OBJECT_TYPE values for Query.
const (
	objectNone     = 1
	objectSnapshot = 3
)

var securityOnce sync.Once

// freeSnapshotProperties frees the strings VSS allocated in a
// VSS_SNAPSHOT_PROP (a test replaces it: Wine's VssApi.dll lacks it).
var freeSnapshotProperties = func(p *snapshotProp) {
	_, _, _ = procVssFreeSnapshotProperties.Call(uintptr(unsafe.Pointer(p)))
}

// iunknown is a COM object: a pointer to its vtable.
type iunknown struct {
	vtbl *[64]uintptr
}

func (o *iunknown) call(slot int, args ...uintptr) HRESULT {
	r, _, _ := syscall.SyscallN(o.vtbl[slot], append([]uintptr{uintptr(unsafe.Pointer(o))}, args...)...)
	return HRESULT(uint32(r))
}

func (o *iunknown) release() { o.call(slotRelease) }

func hr(h HRESULT) error {
	if h.Failed() {
		return h
	}
	return nil
}

func b2u(b bool) uintptr {
	if b {
		return 1
	}
	return 0
}

// comThread runs every COM call of one components object on one OS
// thread, initialised for the multithreaded apartment.
type comThread struct {
	calls chan func()
}

func startThread() (*comThread, error) {
	t := &comThread{calls: make(chan func())}
	errc := make(chan error, 1)
	go func() {
		// never unlocked: the thread ends with this goroutine, so no
		// other goroutine inherits its COM state
		runtime.LockOSThread()
		if err := windows.CoInitializeEx(0, windows.COINIT_MULTITHREADED); err != nil && err != syscall.Errno(S_FALSE) {
			errc <- &Error{Phase: "CoInitializeEx", Code: HRESULT(uint32(err.(syscall.Errno)))}
			return
		}
		defer windows.CoUninitialize()
		securityOnce.Do(func() {
			// RPC_E_TOO_LATE: the process set it already, which is fine
			_, _, _ = procCoInitializeSecurity.Call(0, ^uintptr(0), 0, 0,
				rpcAuthnLevelPktPrivacy, rpcImpLevelIdentify, 0, eoacDynamicCloaking, 0)
		})
		errc <- nil
		for f := range t.calls {
			f()
		}
	}()
	return t, <-errc
}

func (t *comThread) do(f func()) {
	done := make(chan struct{})
	t.calls <- func() { f(); close(done) }
	<-done
}

func (t *comThread) stop() { close(t.calls) }

// loadError says why VssApi.dll cannot be used, as an HRESULT with advice.
func loadError() error {
	if err := modVssAPI.Load(); err != nil {
		return &Error{Phase: PhaseCreate, Code: ERROR_MOD_NOT_FOUND}
	}
	for _, p := range []*windows.LazyProc{procCreateVssBackupComponents, procVssFreeSnapshotProperties} {
		if err := p.Find(); err != nil {
			return &Error{Phase: PhaseCreate, Code: ERROR_PROC_NOT_FOUND, Err: err}
		}
	}
	return nil
}

// NewFactory returns the factory of the system's backup components
// (VssApi.dll's CreateVssBackupComponentsInternal).
func NewFactory() Factory {
	return func() (Components, error) {
		if err := loadError(); err != nil {
			return nil, err
		}
		t, err := startThread()
		if err != nil {
			return nil, err
		}
		var obj *iunknown
		var h HRESULT
		t.do(func() {
			r, _, _ := procCreateVssBackupComponents.Call(uintptr(unsafe.Pointer(&obj)))
			h = HRESULT(uint32(r))
		})
		if h.Failed() || obj == nil {
			t.stop()
			if h == 0 {
				h = E_UNEXPECTED
			}
			return nil, h
		}
		return &components{t: t, o: obj}, nil
	}
}

// Probe tells whether this process can make shadow copies: VssApi.dll is
// there, the process is a native one (a 32-bit process on 64-bit Windows
// cannot use VSS), elevated, and the system creates backup components.
func Probe() error {
	var wow64 bool
	if err := windows.IsWow64Process(windows.CurrentProcess(), &wow64); err == nil && wow64 {
		return errors.New("a 32-bit stillpoint on 64-bit Windows cannot use VSS (Windows does not support it); install the 64-bit stillpoint")
	}
	if !windows.GetCurrentProcessToken().IsElevated() {
		return errors.New("VSS needs an elevated process: run stillpoint as Administrator (an elevated prompt, or a service or scheduled task with highest privileges)")
	}
	c, err := NewFactory()()
	if err != nil {
		return asError(PhaseCreate, err)
	}
	c.Release()
	return nil
}

type components struct {
	t *comThread
	o *iunknown
}

// call calls a method without pointer arguments.
func (c *components) call(slot int, args ...uintptr) error {
	return c.do(func() HRESULT { return c.o.call(slot, args...) })
}

// do runs f on the COM thread. Pointer arguments are made inside f from
// variables f captures: the closure escapes to the thread, so they live on
// the heap, where they neither move nor die before the call returns.
func (c *components) do(f func() HRESULT) error {
	var h HRESULT
	c.t.do(func() { h = f() })
	return hr(h)
}

func (c *components) InitializeForBackup() error { return c.call(slotInitializeForBackup, 0) }

func (c *components) SetContext(ctx Context) error {
	return c.call(slotSetContext, uintptr(uint32(ctx)))
}

func (c *components) SetBackupState(sel, boot bool, t BackupType, partial bool) error {
	return c.call(slotSetBackupState, b2u(sel), b2u(boot), uintptr(t), b2u(partial))
}

func (c *components) async(slot int) (Async, error) {
	var a *iunknown
	if err := c.do(func() HRESULT { return c.o.call(slot, uintptr(unsafe.Pointer(&a))) }); err != nil {
		return nil, err
	}
	if a == nil {
		return nil, E_UNEXPECTED
	}
	return &async{t: c.t, o: a}, nil
}

func (c *components) GatherWriterMetadata() (Async, error) { return c.async(slotGatherWriterMetadata) }
func (c *components) PrepareForBackup() (Async, error)     { return c.async(slotPrepareForBackup) }
func (c *components) GatherWriterStatus() (Async, error)   { return c.async(slotGatherWriterStatus) }
func (c *components) DoSnapshotSet() (Async, error)        { return c.async(slotDoSnapshotSet) }
func (c *components) BackupComplete() (Async, error)       { return c.async(slotBackupComplete) }

func (c *components) count(slot int) (int, error) {
	var n uint32
	err := c.do(func() HRESULT { return c.o.call(slot, uintptr(unsafe.Pointer(&n))) })
	return int(n), err
}

func (c *components) GetWriterMetadataCount() (int, error) {
	return c.count(slotGetWriterMetadataCount)
}
func (c *components) GetWriterStatusCount() (int, error) { return c.count(slotGetWriterStatusCount) }

// bstr takes a BSTR the system allocated: its text, then frees it.
func bstr(p *uint16) string {
	if p == nil {
		return ""
	}
	s := windows.UTF16PtrToString(p)
	_, _, _ = procSysFreeString.Call(uintptr(unsafe.Pointer(p)))
	return s
}

func (c *components) GetWriterMetadata(i int) (WriterIdentity, error) {
	var id WriterIdentity
	var h HRESULT
	c.t.do(func() {
		var instance GUID
		var md *iunknown
		if h = c.o.call(slotGetWriterMetadata, uintptr(i), uintptr(unsafe.Pointer(&instance)), uintptr(unsafe.Pointer(&md))); h.Failed() || md == nil {
			return
		}
		defer md.release()
		var name *uint16
		var usage, source int32
		h = md.call(slotGetIdentity, uintptr(unsafe.Pointer(&id.Instance)), uintptr(unsafe.Pointer(&id.Class)),
			uintptr(unsafe.Pointer(&name)), uintptr(unsafe.Pointer(&usage)), uintptr(unsafe.Pointer(&source)))
		id.Name = bstr(name)
	})
	return id, hr(h)
}

func (c *components) FreeWriterMetadata() error { return c.call(slotFreeWriterMetadata) }
func (c *components) FreeWriterStatus() error   { return c.call(slotFreeWriterStatus) }
func (c *components) AbortBackup() error        { return c.call(slotAbortBackup) }

func (c *components) DisableWriterClasses(classes []GUID) error {
	if len(classes) == 0 {
		return nil
	}
	ids := append([]GUID(nil), classes...)
	return c.do(func() HRESULT {
		return c.o.call(slotDisableWriterClasses, uintptr(unsafe.Pointer(&ids[0])), uintptr(len(ids)))
	})
}

func (c *components) StartSnapshotSet() (GUID, error) {
	var id GUID
	err := c.do(func() HRESULT { return c.o.call(slotStartSnapshotSet, uintptr(unsafe.Pointer(&id))) })
	return id, err
}

func (c *components) AddToSnapshotSet(volume string, provider GUID) (GUID, error) {
	v, err := windows.UTF16PtrFromString(volume)
	if err != nil {
		return GUID{}, E_INVALIDARG
	}
	p := provider
	var id GUID
	err = c.do(func() HRESULT {
		args := append([]uintptr{uintptr(unsafe.Pointer(v))}, guidArgs(runtime.GOARCH, &p)...)
		return c.o.call(slotAddToSnapshotSet, append(args, uintptr(unsafe.Pointer(&id)))...)
	})
	runtime.KeepAlive(v)
	return id, err
}

func (c *components) GetWriterStatus(i int) (WriterStatus, error) {
	var st WriterStatus
	var name *uint16
	var state, failure uint32
	err := c.do(func() HRESULT {
		return c.o.call(slotGetWriterStatus, uintptr(i), uintptr(unsafe.Pointer(&st.Instance)), uintptr(unsafe.Pointer(&st.Class)),
			uintptr(unsafe.Pointer(&name)), uintptr(unsafe.Pointer(&state)), uintptr(unsafe.Pointer(&failure)))
	})
	st.Name, st.State, st.Failure = bstr(name), WriterState(state), HRESULT(failure)
	return st, err
}

func propertiesOf(prop *snapshotProp) SnapshotProperties {
	out := SnapshotProperties{ID: prop.SnapshotID, SetID: prop.SetID, Provider: prop.Provider, Attributes: prop.Attributes,
		DeviceObject: windows.UTF16PtrToString(prop.DeviceObject), OriginalVolume: windows.UTF16PtrToString(prop.OriginalVolume)}
	if prop.Created > 0 {
		out.Created = time.Unix(0, (prop.Created-filetimeEpoch)*100)
	}
	return out
}

// filetimeEpoch is 1601-01-01 in 100 ns units before the Unix epoch.
const filetimeEpoch = 116444736000000000

func (c *components) GetSnapshotProperties(id GUID) (SnapshotProperties, error) {
	g := id
	var prop snapshotProp
	var out SnapshotProperties
	var h HRESULT
	c.t.do(func() {
		args := append(guidArgs(runtime.GOARCH, &g), uintptr(unsafe.Pointer(&prop)))
		if h = c.o.call(slotGetSnapshotProperties, args...); h.Failed() {
			return
		}
		out = propertiesOf(&prop)
		freeSnapshotProperties(&prop)
	})
	return out, hr(h)
}

// QuerySnapshots implements Querier (Query, IVssEnumObject::Next).
func (c *components) QuerySnapshots() ([]SnapshotProperties, error) {
	var out []SnapshotProperties
	var h HRESULT
	c.t.do(func() {
		var null GUID
		var enum *iunknown
		args := append(guidArgs(runtime.GOARCH, &null), objectNone, objectSnapshot, uintptr(unsafe.Pointer(&enum)))
		if h = c.o.call(slotQuery, args...); h.Failed() || enum == nil {
			return
		}
		defer enum.release()
		for {
			var prop objectProp
			var fetched uint32
			h = enum.call(slotEnumNext, 1, uintptr(unsafe.Pointer(&prop)), uintptr(unsafe.Pointer(&fetched)))
			if h.Failed() || fetched == 0 {
				return
			}
			out = append(out, propertiesOf(&prop.Snap))
			freeSnapshotProperties(&prop.Snap)
		}
	})
	return out, hr(h)
}

func (c *components) Release() {
	c.t.do(c.o.release)
	c.t.stop()
}

type async struct {
	t *comThread
	o *iunknown
}

func (a *async) Wait(d time.Duration) error {
	var h HRESULT
	a.t.do(func() { h = a.o.call(slotAsyncWait, uintptr(uint32(d.Milliseconds()))) })
	// a Wait that times out is no failure of the operation: QueryStatus says
	if h == HRESULT(uint32(windows.WAIT_TIMEOUT)) || h == 0x80070102 {
		return nil
	}
	return hr(h)
}

func (a *async) QueryStatus() (HRESULT, error) {
	var status HRESULT
	var reserved int32
	var h HRESULT
	a.t.do(func() {
		h = a.o.call(slotAsyncQueryStatus, uintptr(unsafe.Pointer(&status)), uintptr(unsafe.Pointer(&reserved)))
	})
	return status, hr(h)
}

func (a *async) Cancel() error {
	var h HRESULT
	a.t.do(func() { h = a.o.call(slotAsyncCancel) })
	return hr(h)
}

func (a *async) Release() { a.t.do(a.o.release) }
