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
	objectProvider = 4
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

// call calls a method. uintptrescapes: an argument made with
// uintptr(unsafe.Pointer(&x)) puts x on the heap and keeps it there until
// the call returns, so a Go callback on this goroutine (the COM objects
// of the tests) cannot move it with the stack.
//
//go:uintptrescapes
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
		if !h.Failed() {
			id.Files, id.FilesError = writerFiles(md)
		}
	})
	return id, hr(h)
}

// failure is h as an error, E_UNEXPECTED for a success without the
// object asked for.
func failure(method string, h HRESULT) error {
	if !h.Failed() {
		h = E_UNEXPECTED
	}
	return &Error{Phase: method, Code: h}
}

// writerFiles reads the file descriptors of a writer's metadata: its
// include files and its components' files, database files and log files.
func writerFiles(md *iunknown) ([]FileDesc, error) {
	var includes, excludes, comps uint32
	if h := md.call(slotGetFileCounts, uintptr(unsafe.Pointer(&includes)), uintptr(unsafe.Pointer(&excludes)),
		uintptr(unsafe.Pointer(&comps))); h.Failed() {
		return nil, failure("IVssExamineWriterMetadata::GetFileCounts", h)
	}
	var out []FileDesc
	for i := range includes {
		fd, err := fileDesc(md, slotGetIncludeFile, "IVssExamineWriterMetadata::GetIncludeFile", i)
		if err != nil {
			return nil, err
		}
		out = append(out, fd)
	}
	for i := range comps {
		var comp *iunknown
		if h := md.call(slotGetComponent, uintptr(i), uintptr(unsafe.Pointer(&comp))); h.Failed() || comp == nil {
			return nil, failure("IVssExamineWriterMetadata::GetComponent", h)
		}
		files, err := componentFiles(comp)
		comp.release()
		if err != nil {
			return nil, err
		}
		out = append(out, files...)
	}
	return out, nil
}

// componentFiles reads the files, database files and log files of one
// component (IVssWMComponent).
func componentFiles(comp *iunknown) ([]FileDesc, error) {
	var info *componentInfo
	if h := comp.call(slotGetComponentInfo, uintptr(unsafe.Pointer(&info))); h.Failed() || info == nil {
		return nil, failure("IVssWMComponent::GetComponentInfo", h)
	}
	lists := []struct {
		slot   int
		method string
		n      uint32
	}{
		{slotGetFile, "IVssWMComponent::GetFile", info.FileCount},
		{slotGetDatabaseFile, "IVssWMComponent::GetDatabaseFile", info.Databases},
		{slotGetDatabaseLogFile, "IVssWMComponent::GetDatabaseLogFile", info.LogFiles},
	}
	comp.call(slotFreeComponentInfo, uintptr(unsafe.Pointer(info)))
	var out []FileDesc
	for _, l := range lists {
		for i := range l.n {
			fd, err := fileDesc(comp, l.slot, l.method, i)
			if err != nil {
				return nil, err
			}
			out = append(out, fd)
		}
	}
	return out, nil
}

// fileDesc gets file descriptor i of o with the method at slot and reads
// it (IVssWMFiledesc::GetPath, GetFilespec, GetRecursive).
func fileDesc(o *iunknown, slot int, method string, i uint32) (FileDesc, error) {
	var fd *iunknown
	if h := o.call(slot, uintptr(i), uintptr(unsafe.Pointer(&fd))); h.Failed() || fd == nil {
		return FileDesc{}, failure(method, h)
	}
	defer fd.release()
	var path, spec *uint16
	var recursive byte
	if h := fd.call(slotGetPath, uintptr(unsafe.Pointer(&path))); h.Failed() {
		return FileDesc{}, failure("IVssWMFiledesc::GetPath", h)
	}
	out := FileDesc{Path: bstr(path)}
	if h := fd.call(slotGetFilespec, uintptr(unsafe.Pointer(&spec))); h.Failed() {
		return FileDesc{}, failure("IVssWMFiledesc::GetFilespec", h)
	}
	out.Filespec = bstr(spec)
	if h := fd.call(slotGetRecursive, uintptr(unsafe.Pointer(&recursive))); h.Failed() {
		return FileDesc{}, failure("IVssWMFiledesc::GetRecursive", h)
	}
	out.Recursive = recursive != 0
	return out, nil
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
	// captured, so on the heap: they go to the call in a slice, which
	// uintptrescapes does not see
	var null GUID
	var enum *iunknown
	c.t.do(func() {
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

// QueryProviders implements ProviderQuerier (Query of VSS_OBJECT_PROVIDER,
// IVssEnumObject::Next); the provider's strings are freed as the SDK's
// samples free them, with CoTaskMemFree.
func (c *components) QueryProviders() ([]ProviderProperties, error) {
	var out []ProviderProperties
	var h HRESULT
	// captured, so on the heap: they go to the call in a slice, which
	// uintptrescapes does not see
	var null GUID
	var enum *iunknown
	c.t.do(func() {
		args := append(guidArgs(runtime.GOARCH, &null), objectNone, objectProvider, uintptr(unsafe.Pointer(&enum)))
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
			if prop.Type != objectProvider {
				continue
			}
			p := (*providerProp)(unsafe.Pointer(&prop.Snap))
			out = append(out, ProviderProperties{ID: p.ProviderID, Name: windows.UTF16PtrToString(p.Name), Type: ProviderType(p.Type),
				Version: windows.UTF16PtrToString(p.Version), VersionID: p.VersionID, Class: p.ClassID})
			for _, s := range []*uint16{p.Name, p.Version} {
				if s != nil {
					windows.CoTaskMemFree(unsafe.Pointer(s))
				}
			}
		}
	})
	return out, hr(h)
}

// IsVolumeSupported implements ProviderQuerier.
func (c *components) IsVolumeSupported(provider GUID, volume string) (bool, error) {
	v, err := windows.UTF16PtrFromString(volume)
	if err != nil {
		return false, E_INVALIDARG
	}
	p := provider
	var supported int32
	err = c.do(func() HRESULT {
		args := append(guidArgs(runtime.GOARCH, &p), uintptr(unsafe.Pointer(v)), uintptr(unsafe.Pointer(&supported)))
		return c.o.call(slotIsVolumeSupported, args...)
	})
	runtime.KeepAlive(v)
	return supported != 0, err
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
