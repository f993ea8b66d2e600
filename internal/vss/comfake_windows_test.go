package vss

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

// A COM object made in Go, with a vtable of callbacks: the real
// components (com_windows.go) call it through syscall.SyscallN as they
// call VssApi.dll's, so this tests the calls themselves: slots, argument
// order, GUIDs by value, out-parameters, BSTRs and the COM thread.

var (
	procSysAllocString = modOleAut32.NewProc("SysAllocString")
	procCoTaskMemAlloc = modOle32.NewProc("CoTaskMemAlloc")
)

// ptr turns a uintptr that the system handed over into a pointer.
func ptr(u uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&u)) }

func sysAllocString(s string) uintptr {
	p, _ := windows.UTF16PtrFromString(s)
	r, _, _ := procSysAllocString.Call(uintptr(unsafe.Pointer(p)))
	return r
}

// coTaskString is a string as VSS allocates it (VssFreeSnapshotProperties frees it).
func coTaskString(s string) *uint16 {
	u, _ := windows.UTF16FromString(s)
	r, _, _ := procCoTaskMemAlloc.Call(uintptr(len(u) * 2))
	dst := unsafe.Slice((*uint16)(ptr(r)), len(u))
	copy(dst, u)
	return &dst[0]
}

// callback makes a stdcall callback of n arguments (this included) that
// hands them to f.
func callback(n int, f func(args []uintptr) uintptr) uintptr {
	switch n {
	case 1:
		return syscall.NewCallback(func(a uintptr) uintptr { return f([]uintptr{a}) })
	case 2:
		return syscall.NewCallback(func(a, b uintptr) uintptr { return f([]uintptr{a, b}) })
	case 3:
		return syscall.NewCallback(func(a, b, c uintptr) uintptr { return f([]uintptr{a, b, c}) })
	case 4:
		return syscall.NewCallback(func(a, b, c, d uintptr) uintptr { return f([]uintptr{a, b, c, d}) })
	case 5:
		return syscall.NewCallback(func(a, b, c, d, e uintptr) uintptr { return f([]uintptr{a, b, c, d, e}) })
	case 6:
		return syscall.NewCallback(func(a, b, c, d, e, g uintptr) uintptr { return f([]uintptr{a, b, c, d, e, g}) })
	case 7:
		return syscall.NewCallback(func(a, b, c, d, e, g, h uintptr) uintptr { return f([]uintptr{a, b, c, d, e, g, h}) })
	}
	panic("callback arity")
}

type comFake struct {
	mu       sync.Mutex
	calls    []string
	released map[string]int

	backup, async, examine, component, enum *iunknown
	filedescs                               []*iunknown
	vtbls                                   [6][64]uintptr
	next                                    int // the enumerator's position
}

// reset forgets the calls and releases of earlier tests.
func (f *comFake) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls, f.released, f.next = nil, map[string]int{}, 0
}

func (f *comFake) log(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func guidAt(u uintptr) GUID { return *(*GUID)(ptr(u)) }

var (
	fakeWriterClass    = GUID{0xe8132975, 0x6f93, 0x4464, [8]byte{0xa5, 0x3e, 0x10, 0x50, 0x25, 0x3a, 0xe2, 0x20}}
	fakeWriterInstance = GUID{Data1: 0x1234}
	fakeSetID          = GUID{Data1: 0x5e7}
	// the writer's files: an include file, then its component's file,
	// database file and log file
	fakeFiles = []FileDesc{
		{Path: `%SystemRoot%\System32\config`, Filespec: "SAM"},
		{Path: `C:\data\app`, Filespec: "*", Recursive: true},
		{Path: `D:\sql\data`, Filespec: "*.mdf"},
		{Path: `D:\sql\log`, Filespec: "*.ldf"},
	}
	fakeHardware  = GUID{Data1: 0x4a, Data4: [8]byte{7: 1}}
	fakeProviders = []ProviderProperties{
		{ID: MicrosoftProvider, Name: "Microsoft Software Shadow Copy provider 1.0", Type: ProviderSystem, Version: "1.0.0.7",
			VersionID: GUID{Data1: 0x10}, Class: GUID{Data1: 0x65ee1dba}},
		{ID: fakeHardware, Name: "Array Hardware Provider", Type: ProviderHardware, Version: "3.2", VersionID: GUID{Data1: 0x32}},
	}
)

// newCOMFake builds the three objects; comFakes are kept for the whole
// test binary, as callbacks cannot be freed.
func newCOMFake() *comFake {
	f := &comFake{released: map[string]int{}}
	objs := make([]iunknown, 5+len(fakeFiles)) // on the heap, never moved
	for i := range objs {
		objs[i].vtbl = &f.vtbls[min(i, 5)] // the file descriptors share one vtable
	}
	f.backup, f.async, f.examine, f.component, f.enum = &objs[0], &objs[1], &objs[2], &objs[3], &objs[4]
	for i := range fakeFiles {
		f.filedescs = append(f.filedescs, &objs[5+i])
	}
	ok := func(format string, args ...any) uintptr { f.log(format, args...); return 0 }
	setPtr := func(out uintptr, p *iunknown) { *(**iunknown)(ptr(out)) = p }
	b, a, e, c, n, fd := &f.vtbls[0], &f.vtbls[1], &f.vtbls[2], &f.vtbls[3], &f.vtbls[4], &f.vtbls[5]
	release := func(name string) uintptr {
		return callback(1, func([]uintptr) uintptr {
			f.mu.Lock()
			f.released[name]++
			f.mu.Unlock()
			return 0
		})
	}
	b[slotRelease], a[slotRelease], e[slotRelease] = release("components"), release("async"), release("examine")
	c[slotRelease], n[slotRelease], fd[slotRelease] = release("component"), release("enum"), release("filedesc")
	// IVssExamineWriterMetadata: one include file, no exclude file, one component
	e[slotGetFileCounts] = callback(4, func(x []uintptr) uintptr {
		*(*uint32)(ptr(x[1])), *(*uint32)(ptr(x[2])), *(*uint32)(ptr(x[3])) = 1, 0, 1
		return ok("GetFileCounts")
	})
	e[slotGetIncludeFile] = callback(3, func(x []uintptr) uintptr { setPtr(x[2], f.filedescs[0]); return ok("GetIncludeFile(%d)", x[1]) })
	e[slotGetComponent] = callback(3, func(x []uintptr) uintptr { setPtr(x[2], f.component); return ok("GetComponent(%d)", x[1]) })
	// IVssWMComponent: a file, a database and a log file; the info is
	// the system's memory, freed by FreeComponentInfo
	c[slotGetComponentInfo] = callback(2, func(x []uintptr) uintptr {
		r, _, _ := procCoTaskMemAlloc.Call(unsafe.Sizeof(componentInfo{}))
		info := (*componentInfo)(ptr(r))
		*info = componentInfo{Type: 1, FileCount: 1, Databases: 1, LogFiles: 1, Dependencies: 3, Selectable: 1}
		*(*uintptr)(ptr(x[1])) = r
		return ok("GetComponentInfo")
	})
	c[slotFreeComponentInfo] = callback(2, func(x []uintptr) uintptr {
		windows.CoTaskMemFree(ptr(x[1]))
		return ok("FreeComponentInfo")
	})
	for i, s := range []struct {
		slot int
		name string
	}{{slotGetFile, "GetFile"}, {slotGetDatabaseFile, "GetDatabaseFile"}, {slotGetDatabaseLogFile, "GetDatabaseLogFile"}} {
		c[s.slot] = callback(3, func(x []uintptr) uintptr { setPtr(x[2], f.filedescs[1+i]); return ok("%s(%d)", s.name, x[1]) })
	}
	// IVssWMFiledesc: which one is called is told by this
	desc := func(this uintptr) FileDesc {
		for i, o := range f.filedescs {
			if uintptr(unsafe.Pointer(o)) == this {
				return fakeFiles[i]
			}
		}
		panic("not a file descriptor")
	}
	fd[slotGetPath] = callback(2, func(x []uintptr) uintptr { *(*uintptr)(ptr(x[1])) = sysAllocString(desc(x[0]).Path); return 0 })
	fd[slotGetFilespec] = callback(2, func(x []uintptr) uintptr { *(*uintptr)(ptr(x[1])) = sysAllocString(desc(x[0]).Filespec); return 0 })
	fd[slotGetRecursive] = callback(2, func(x []uintptr) uintptr {
		*(*byte)(ptr(x[1])) = byte(b2u(desc(x[0]).Recursive))
		return 0
	})
	// Query of providers through an IVssEnumObject (x64: GUID_NULL by a
	// pointer to a copy)
	b[slotQuery] = callback(5, func(x []uintptr) uintptr {
		f.mu.Lock()
		f.next = 0
		f.mu.Unlock()
		setPtr(x[4], f.enum)
		return ok("Query(%s,%d,%d)", guidAt(x[1]), x[2], x[3])
	})
	n[slotEnumNext] = callback(4, func(x []uintptr) uintptr {
		f.mu.Lock()
		i := f.next
		f.next++
		f.mu.Unlock()
		if i >= len(fakeProviders) {
			*(*uint32)(ptr(x[3])) = 0
			return uintptr(S_FALSE)
		}
		p := fakeProviders[i]
		op := (*objectProp)(ptr(x[2]))
		op.Type = objectProvider
		*(*providerProp)(unsafe.Pointer(&op.Snap)) = providerProp{ProviderID: p.ID, Name: coTaskString(p.Name), Type: int32(p.Type),
			Version: coTaskString(p.Version), VersionID: p.VersionID, ClassID: p.Class}
		*(*uint32)(ptr(x[3])) = 1
		return ok("Next(%d)", x[1])
	})
	b[slotIsVolumeSupported] = callback(4, func(x []uintptr) uintptr {
		prov, vol := guidAt(x[1]), windows.UTF16PtrToString((*uint16)(ptr(x[2])))
		yes := vol == `C:\` || prov == fakeHardware && vol == `D:\`
		*(*int32)(ptr(x[3])) = int32(b2u(yes))
		return ok("IsVolumeSupported(%s,%s)", prov, vol)
	})
	b[slotInitializeForBackup] = callback(2, func(x []uintptr) uintptr { return ok("InitializeForBackup(%d)", x[1]) })
	b[slotSetContext] = callback(2, func(x []uintptr) uintptr { return ok("SetContext(%d)", int32(x[1])) })
	b[slotSetBackupState] = callback(5, func(x []uintptr) uintptr {
		return ok("SetBackupState(%d,%d,%d,%d)", x[1], x[2], x[3], x[4])
	})
	for _, s := range []struct {
		slot int
		name string
	}{{slotGatherWriterMetadata, "GatherWriterMetadata"}, {slotPrepareForBackup, "PrepareForBackup"},
		{slotGatherWriterStatus, "GatherWriterStatus"}, {slotDoSnapshotSet, "DoSnapshotSet"}, {slotBackupComplete, "BackupComplete"}} {
		b[s.slot] = callback(2, func(x []uintptr) uintptr { setPtr(x[1], f.async); return ok("%s", s.name) })
	}
	count := func(name string) uintptr {
		return callback(2, func(x []uintptr) uintptr { *(*uint32)(ptr(x[1])) = 1; return ok("%s", name) })
	}
	b[slotGetWriterMetadataCount], b[slotGetWriterStatusCount] = count("GetWriterMetadataCount"), count("GetWriterStatusCount")
	b[slotGetWriterMetadata] = callback(4, func(x []uintptr) uintptr {
		*(*GUID)(ptr(x[2])) = fakeWriterInstance
		setPtr(x[3], f.examine)
		return ok("GetWriterMetadata(%d)", x[1])
	})
	e[slotGetIdentity] = callback(6, func(x []uintptr) uintptr {
		*(*GUID)(ptr(x[1])), *(*GUID)(ptr(x[2])) = fakeWriterInstance, fakeWriterClass
		*(*uintptr)(ptr(x[3])) = sysAllocString("System Writer")
		*(*int32)(ptr(x[4])), *(*int32)(ptr(x[5])) = 1, 1
		return ok("GetIdentity")
	})
	for _, s := range []struct {
		slot int
		name string
	}{{slotFreeWriterMetadata, "FreeWriterMetadata"}, {slotFreeWriterStatus, "FreeWriterStatus"}, {slotAbortBackup, "AbortBackup"}} {
		b[s.slot] = callback(1, func([]uintptr) uintptr { return ok("%s", s.name) })
	}
	b[slotGetWriterStatus] = callback(7, func(x []uintptr) uintptr {
		*(*GUID)(ptr(x[2])), *(*GUID)(ptr(x[3])) = fakeWriterInstance, fakeWriterClass
		*(*uintptr)(ptr(x[4])) = sysAllocString("System Writer")
		*(*int32)(ptr(x[5])) = int32(WriterFailedAtFreeze)
		*(*uint32)(ptr(x[6])) = uint32(VSS_E_WRITERERROR_NONRETRYABLE)
		return ok("GetWriterStatus(%d)", x[1])
	})
	b[slotStartSnapshotSet] = callback(2, func(x []uintptr) uintptr { *(*GUID)(ptr(x[1])) = fakeSetID; return ok("StartSnapshotSet") })
	// x64: a GUID by value comes as a pointer to a copy
	b[slotAddToSnapshotSet] = callback(4, func(x []uintptr) uintptr {
		vol := windows.UTF16PtrToString((*uint16)(ptr(x[1])))
		*(*GUID)(ptr(x[3])) = GUID{Data1: uint32(vol[0])}
		return ok("AddToSnapshotSet(%s,%s)", vol, guidAt(x[2]))
	})
	b[slotGetSnapshotProperties] = callback(3, func(x []uintptr) uintptr {
		id := guidAt(x[1])
		p := (*snapshotProp)(ptr(x[2]))
		*p = snapshotProp{SnapshotID: id, SetID: fakeSetID, Count: 2,
			DeviceObject:   coTaskString(fmt.Sprintf(`\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy%d`, id.Data1)),
			OriginalVolume: coTaskString(`\\?\Volume{abc}\`), Created: filetimeEpoch + 10_000_000*1_700_000_000}
		return ok("GetSnapshotProperties(%s)", id)
	})
	b[slotDisableWriterClasses] = callback(3, func(x []uintptr) uintptr {
		ids := unsafe.Slice((*GUID)(ptr(x[1])), x[2])
		return ok("DisableWriterClasses(%v)", ids)
	})
	a[slotAsyncWait] = callback(2, func(x []uintptr) uintptr { return ok("Wait(%d)", x[1]) })
	a[slotAsyncQueryStatus] = callback(3, func(x []uintptr) uintptr {
		*(*uint32)(ptr(x[1])) = uint32(VSS_S_ASYNC_FINISHED)
		return 0
	})
	a[slotAsyncCancel] = callback(1, func([]uintptr) uintptr { return ok("Cancel") })
	return f
}

var comFakeOnce = sync.OnceValue(newCOMFake)

func TestComponentsThroughVtables(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the fake decodes x64 calls")
	}
	f := comFakeOnce()
	f.reset()
	// what VssFreeSnapshotProperties does, for Wine, which lacks it
	free := freeSnapshotProperties
	defer func() { freeSnapshotProperties = free }()
	freed := 0
	freeSnapshotProperties = func(p *snapshotProp) {
		for _, s := range []*uint16{p.DeviceObject, p.OriginalVolume, p.OriginatingMachine, p.ServiceMachine, p.ExposedName, p.ExposedPath} {
			if s != nil {
				windows.CoTaskMemFree(unsafe.Pointer(s))
				freed++
			}
		}
	}
	factory := func() (Components, error) {
		th, err := startThread()
		if err != nil {
			return nil, err
		}
		return &components{t: th, o: f.backup}, nil
	}
	o := DefaultOptions()
	o.Slice, o.Provider, o.Exclude = 20*time.Millisecond, MicrosoftProvider, []string{fakeWriterClass.String()}
	set, err := NewRequester(factory, o).Create(context.Background(), []string{`C:\`, `E:\`})
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := set.Device(`E:\`); d != `\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy69` {
		t.Fatalf("device of E: %q (the snapshot id's Data1 is the volume letter)", d)
	}
	if set.ID != fakeSetID || set.Snapshots[0].Created.Year() != 2023 {
		t.Fatalf("set %s, created %s", set.ID, set.Snapshots[0].Created)
	}
	ws := set.Writers()
	if len(ws) != 1 || ws[0].Name != "System Writer" || ws[0].Class != fakeWriterClass || ws[0].Instance != fakeWriterInstance {
		t.Fatalf("writers %+v", ws)
	}
	if c, failed := ws[0].Failed(); !failed || c.State != WriterFailedAtFreeze || c.Failure != VSS_E_WRITERERROR_NONRETRYABLE {
		t.Fatalf("writer check %+v", ws[0].Checks)
	}
	if len(set.FailedWriters()) != 0 || !ws[0].Excluded {
		t.Fatal("an excluded writer's failure counts")
	}
	if err := set.Complete(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	calls := slices.DeleteFunc(slices.Clone(f.calls), func(s string) bool { return strings.HasPrefix(s, "Wait(") })
	released := f.released
	f.mu.Unlock()
	want := []string{"InitializeForBackup(0)", "SetContext(0)", "SetBackupState(0,0,5,0)",
		"DisableWriterClasses([{e8132975-6f93-4464-a53e-1050253ae220}])", "GatherWriterMetadata",
		"GetWriterMetadataCount", "GetWriterMetadata(0)", "GetIdentity", "GetFileCounts", "GetIncludeFile(0)", "GetComponent(0)",
		"GetComponentInfo", "FreeComponentInfo", "GetFile(0)", "GetDatabaseFile(0)", "GetDatabaseLogFile(0)", "FreeWriterMetadata", "StartSnapshotSet",
		`AddToSnapshotSet(C:\,{b5946137-7b9f-4925-af80-51abd60b20d5})`, `AddToSnapshotSet(E:\,{b5946137-7b9f-4925-af80-51abd60b20d5})`,
		"PrepareForBackup", "GatherWriterStatus", "GetWriterStatusCount", "GetWriterStatus(0)", "FreeWriterStatus",
		"DoSnapshotSet", "GatherWriterStatus", "GetWriterStatusCount", "GetWriterStatus(0)", "FreeWriterStatus",
		"GetSnapshotProperties({00000043-0000-0000-0000-000000000000})", "GetSnapshotProperties({00000045-0000-0000-0000-000000000000})",
		"BackupComplete", "GatherWriterStatus", "GetWriterStatusCount", "GetWriterStatus(0)", "FreeWriterStatus"}
	if !slices.Equal(calls, want) {
		t.Fatalf("calls through the vtable:\n got  %q\n want %q", calls, want)
	}
	if freed != 4 {
		t.Fatalf("freed %d strings of the snapshot properties, want 4", freed)
	}
	if released["components"] != 1 || released["async"] != 7 || released["examine"] != 1 || released["component"] != 1 || released["filedesc"] != 4 {
		t.Fatalf("releases %v: want the components once, each of the 7 async calls, the metadata, its component and the 4 file descriptors", released)
	}
	root := os.Getenv("SystemRoot")
	wantFiles := []FileDesc{{Path: root + `\System32\config`, Filespec: "SAM"}, fakeFiles[1], fakeFiles[2], fakeFiles[3]}
	if root == "" || !ws[0].FilesKnown || !slices.Equal(ws[0].Files, wantFiles) {
		t.Fatalf("the writer's files %+v (known %v), want %+v", ws[0].Files, ws[0].FilesKnown, wantFiles)
	}
	if !ws[0].Covers(`D:\sql`) || !ws[0].Covers(`C:\data\app\logs`) || ws[0].Covers(`C:\users`) {
		t.Fatal("the writer's files do not tell which sources it covers")
	}
}

// TestProvidersThroughVtables: Query of VSS_OBJECT_PROVIDER, the
// VSS_PROVIDER_PROP in the union as Next fills it, its strings freed, and
// IsVolumeSupported with the provider's GUID by value.
func TestProvidersThroughVtables(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the fake decodes x64 calls")
	}
	f := comFakeOnce()
	f.reset()
	factory := func() (Components, error) {
		th, err := startThread()
		if err != nil {
			return nil, err
		}
		return &components{t: th, o: f.backup}, nil
	}
	ps, err := NewRequester(factory, DefaultOptions()).ListProviders([]string{`C:\`, `D:\`})
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 {
		t.Fatalf("providers %+v", ps)
	}
	for i, p := range ps {
		if p.ProviderProperties != fakeProviders[i] {
			t.Errorf("provider %d: %+v, want %+v", i, p.ProviderProperties, fakeProviders[i])
		}
	}
	support := func(p Provider) (s []bool) {
		for _, v := range p.Volumes {
			s = append(s, v.Supported)
		}
		return s
	}
	if !slices.Equal(support(ps[0]), []bool{true, false}) || !slices.Equal(support(ps[1]), []bool{true, true}) {
		t.Fatalf("support %v %v", support(ps[0]), support(ps[1]))
	}
	f.mu.Lock()
	calls, released := slices.Clone(f.calls), f.released
	f.mu.Unlock()
	want := []string{"InitializeForBackup(0)", "SetContext(0)", "Query({00000000-0000-0000-0000-000000000000},1,4)", "Next(1)", "Next(1)",
		`IsVolumeSupported({b5946137-7b9f-4925-af80-51abd60b20d5},C:\)`, `IsVolumeSupported({b5946137-7b9f-4925-af80-51abd60b20d5},D:\)`,
		`IsVolumeSupported(` + fakeHardware.String() + `,C:\)`, `IsVolumeSupported(` + fakeHardware.String() + `,D:\)`}
	if !slices.Equal(calls, want) {
		t.Fatalf("calls through the vtable:\n got  %q\n want %q", calls, want)
	}
	if released["enum"] != 1 || released["components"] != 1 {
		t.Fatalf("releases %v: want the enumerator and the components once", released)
	}
}
