package vss

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// The slots as the Windows SDK's headers order the methods; a wrong slot
// calls another method with our arguments.
var wantSlots = map[string]map[string]int{
	"IVssBackupComponents": {
		"Release": slotRelease, "InitializeForBackup": slotInitializeForBackup, "SetBackupState": slotSetBackupState,
		"GatherWriterMetadata": slotGatherWriterMetadata, "GetWriterMetadataCount": slotGetWriterMetadataCount,
		"GetWriterMetadata": slotGetWriterMetadata, "FreeWriterMetadata": slotFreeWriterMetadata,
		"PrepareForBackup": slotPrepareForBackup, "AbortBackup": slotAbortBackup, "GatherWriterStatus": slotGatherWriterStatus,
		"GetWriterStatusCount": slotGetWriterStatusCount, "FreeWriterStatus": slotFreeWriterStatus,
		"GetWriterStatus": slotGetWriterStatus, "BackupComplete": slotBackupComplete, "SetContext": slotSetContext,
		"StartSnapshotSet": slotStartSnapshotSet, "AddToSnapshotSet": slotAddToSnapshotSet, "DoSnapshotSet": slotDoSnapshotSet,
		"GetSnapshotProperties": slotGetSnapshotProperties, "DisableWriterClasses": slotDisableWriterClasses,
		"Query": slotQuery, "IsVolumeSupported": slotIsVolumeSupported,
	},
	"IVssEnumObject": {"Next": slotEnumNext},
	"IVssAsync":      {"Cancel": slotAsyncCancel, "Wait": slotAsyncWait, "QueryStatus": slotAsyncQueryStatus},
	"IVssExamineWriterMetadata": {"GetIdentity": slotGetIdentity, "GetFileCounts": slotGetFileCounts,
		"GetIncludeFile": slotGetIncludeFile, "GetComponent": slotGetComponent},
	"IVssWMComponent": {"GetComponentInfo": slotGetComponentInfo, "FreeComponentInfo": slotFreeComponentInfo,
		"GetFile": slotGetFile, "GetDatabaseFile": slotGetDatabaseFile, "GetDatabaseLogFile": slotGetDatabaseLogFile},
	"IVssWMFiledesc": {"GetPath": slotGetPath, "GetFilespec": slotGetFilespec, "GetRecursive": slotGetRecursive},
}

// sdkOrder is the method order of the SDK's vsbackup.h and vss.h,
// IUnknown first: what the slots above are checked against.
var sdkOrder = map[string][]string{
	"IVssBackupComponents": {"QueryInterface", "AddRef", "Release",
		"GetWriterComponentsCount", "GetWriterComponents", "InitializeForBackup", "SetBackupState",
		"InitializeForRestore", "SetRestoreState", "GatherWriterMetadata", "GetWriterMetadataCount",
		"GetWriterMetadata", "FreeWriterMetadata", "AddComponent", "PrepareForBackup", "AbortBackup",
		"GatherWriterStatus", "GetWriterStatusCount", "FreeWriterStatus", "GetWriterStatus",
		"SetBackupSucceeded", "SetBackupOptions", "SetSelectedForRestore", "SetRestoreOptions",
		"SetAdditionalRestores", "SetPreviousBackupStamp", "SaveAsXML", "BackupComplete",
		"AddAlternativeLocationMapping", "AddRestoreSubcomponent", "SetFileRestoreStatus", "AddNewTarget",
		"SetRangesFilePath", "PreRestore", "PostRestore", "SetContext", "StartSnapshotSet",
		"AddToSnapshotSet", "DoSnapshotSet", "DeleteSnapshots", "ImportSnapshots", "BreakSnapshotSet",
		"GetSnapshotProperties", "Query", "IsVolumeSupported", "DisableWriterClasses",
		"EnableWriterClasses", "DisableWriterInstances", "ExposeSnapshot", "RevertToSnapshot", "QueryRevertStatus"},
	"IVssAsync":      {"QueryInterface", "AddRef", "Release", "Cancel", "Wait", "QueryStatus"},
	"IVssEnumObject": {"QueryInterface", "AddRef", "Release", "Next", "Skip", "Reset", "Clone"},
	"IVssExamineWriterMetadata": {"QueryInterface", "AddRef", "Release", "GetIdentity", "GetFileCounts",
		"GetIncludeFile", "GetExcludeFile", "GetComponent", "GetRestoreMethod", "GetAlternateLocationMapping",
		"GetBackupSchema", "GetDocument", "SaveAsXML", "LoadFromXML"},
	"IVssWMComponent": {"QueryInterface", "AddRef", "Release", "GetComponentInfo", "FreeComponentInfo",
		"GetFile", "GetDatabaseFile", "GetDatabaseLogFile", "GetDependency"},
	"IVssWMFiledesc": {"QueryInterface", "AddRef", "Release", "GetPath", "GetFilespec", "GetRecursive",
		"GetAlternateLocation", "GetBackupTypeMask"},
}

func TestVtableSlots(t *testing.T) {
	for iface, methods := range wantSlots {
		order := sdkOrder[iface]
		for m, slot := range methods {
			if slot >= len(order) || order[slot] != m {
				t.Errorf("%s::%s: slot %d, but the SDK has it at %d", iface, m, slot, index(order, m))
			}
		}
	}
}

func index(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// TestSlotsAgainstMingwHeaders checks sdkOrder against the mingw-w64
// headers where they are installed (Debian's mingw-w64-common).
func TestSlotsAgainstMingwHeaders(t *testing.T) {
	dir := "/usr/share/mingw-w64/include"
	files := map[string]string{"IVssBackupComponents": "vsbackup.h", "IVssExamineWriterMetadata": "vsbackup.h", "IVssAsync": "vss.h",
		"IVssEnumObject": "vss.h", "IVssWMComponent": "vsbackup.h", "IVssWMFiledesc": "vswriter.h"}
	for iface, file := range files {
		b, err := os.ReadFile(dir + "/" + file)
		if err != nil {
			t.Skipf("no mingw-w64 headers: %v", err)
		}
		got := methodsOf(string(b), iface)
		if len(got) == 0 {
			t.Fatalf("%s: no %s vtable found", file, iface)
		}
		if strings.Join(got, " ") != strings.Join(sdkOrder[iface], " ") {
			t.Errorf("%s in %s:\n got  %v\n want %v", iface, file, got, sdkOrder[iface])
		}
	}
}

// methodsOf lists the methods of iface's C vtable struct (IfaceVtbl).
func methodsOf(header, iface string) []string {
	start := strings.Index(header, "typedef struct "+iface+"Vtbl {")
	if start < 0 {
		return nil
	}
	end := strings.Index(header[start:], "} "+iface+"Vtbl;")
	if end < 0 {
		return nil
	}
	var out []string
	for _, m := range regexp.MustCompile(`STDMETHODCALLTYPE \*(\w+)\)`).FindAllStringSubmatch(header[start:start+end], -1) {
		out = append(out, m[1])
	}
	return out
}

func TestSnapshotPropLayout(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("the offsets below are those of 64-bit Windows")
	}
	var p snapshotProp
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"m_lSnapshotsCount", unsafe.Offsetof(p.Count), 32},
		{"m_pwszSnapshotDeviceObject", unsafe.Offsetof(p.DeviceObject), 40},
		{"m_pwszExposedPath", unsafe.Offsetof(p.ExposedPath), 80},
		{"m_ProviderId", unsafe.Offsetof(p.Provider), 88},
		{"m_lSnapshotAttributes", unsafe.Offsetof(p.Attributes), 104},
		{"m_tsCreationTimestamp", unsafe.Offsetof(p.Created), 112},
		{"m_eStatus", unsafe.Offsetof(p.Status), 120},
		{"sizeof", unsafe.Sizeof(p), 128},
		{"VSS_OBJECT_PROP.Obj", unsafe.Offsetof(objectProp{}.Snap), 8},
		{"sizeof(VSS_OBJECT_PROP)", unsafe.Sizeof(objectProp{}), 136},
	} {
		if c.got != c.want {
			t.Errorf("%s at %d, the SDK's at %d", c.name, c.got, c.want)
		}
	}
}

// field is one member's offset in a C struct: Go's, and the SDK's on
// 64-bit and 32-bit Windows.
type field struct {
	name           string
	got            uintptr
	want64, want32 uintptr
}

func checkLayout(t *testing.T, fields []field) {
	t.Helper()
	for _, f := range fields {
		want := f.want64
		if unsafe.Sizeof(uintptr(0)) == 4 {
			want = f.want32
		}
		if f.got != want {
			t.Errorf("%s at %d, the SDK's at %d", f.name, f.got, want)
		}
	}
}

// providerFields and componentFields are the members whose place the
// code depends on.
func providerFields() []field {
	var p providerProp
	return []field{
		{"VSS_PROVIDER_PROP.m_pwszProviderName", unsafe.Offsetof(p.Name), 16, 16},
		{"VSS_PROVIDER_PROP.m_eProviderType", unsafe.Offsetof(p.Type), 24, 20},
		{"VSS_PROVIDER_PROP.m_pwszProviderVersion", unsafe.Offsetof(p.Version), 32, 24},
		{"VSS_PROVIDER_PROP.m_ProviderVersionId", unsafe.Offsetof(p.VersionID), 40, 28},
		{"VSS_PROVIDER_PROP.m_ClassId", unsafe.Offsetof(p.ClassID), 56, 44},
		{"sizeof(VSS_PROVIDER_PROP)", unsafe.Sizeof(p), 72, 60},
	}
}

func componentFields() []field {
	var c componentInfo
	return []field{
		{"VSS_COMPONENTINFO.bstrLogicalPath", unsafe.Offsetof(c.LogicalPath), 8, 4},
		{"VSS_COMPONENTINFO.cbIcon", unsafe.Offsetof(c.IconSize), 40, 20},
		{"VSS_COMPONENTINFO.bSelectableForRestore", unsafe.Offsetof(c.SelectableForRestore), 47, 27},
		{"VSS_COMPONENTINFO.dwComponentFlags", unsafe.Offsetof(c.ComponentFlags), 48, 28},
		{"VSS_COMPONENTINFO.cFileCount", unsafe.Offsetof(c.FileCount), 52, 32},
		{"VSS_COMPONENTINFO.cDatabases", unsafe.Offsetof(c.Databases), 56, 36},
		{"VSS_COMPONENTINFO.cLogFiles", unsafe.Offsetof(c.LogFiles), 60, 40},
		{"VSS_COMPONENTINFO.cDependencies", unsafe.Offsetof(c.Dependencies), 64, 44},
		{"sizeof(VSS_COMPONENTINFO)", unsafe.Sizeof(c), 72, 48},
	}
}

func TestProviderPropLayout(t *testing.T) {
	checkLayout(t, providerFields())
	if unsafe.Sizeof(providerProp{}) > unsafe.Sizeof(snapshotProp{}) {
		t.Error("VSS_PROVIDER_PROP must fit the union sized by VSS_SNAPSHOT_PROP")
	}
}

func TestComponentInfoLayout(t *testing.T) { checkLayout(t, componentFields()) }

// TestLayoutsAgainstMingwCompiler has the mingw-w64 C compiler check the
// offsets above against the SDK headers themselves (compile only: a
// failed _Static_assert names the member).
func TestLayoutsAgainstMingwCompiler(t *testing.T) {
	cc := map[string]string{"amd64": "x86_64-w64-mingw32-gcc", "386": "i686-w64-mingw32-gcc"}[runtime.GOARCH]
	path, err := exec.LookPath(cc)
	if cc == "" || err != nil {
		t.Skipf("no mingw-w64 compiler for %s", runtime.GOARCH)
	}
	var b strings.Builder
	b.WriteString("#include <stddef.h>\n#include <windows.h>\n#include <vss.h>\n#include <vswriter.h>\n#include <vsbackup.h>\n")
	members := map[string]string{"sizeof(VSS_PROVIDER_PROP)": "sizeof(VSS_PROVIDER_PROP)", "sizeof(VSS_COMPONENTINFO)": "sizeof(VSS_COMPONENTINFO)"}
	for _, f := range append(providerFields(), componentFields()...) {
		expr, ok := members[f.name]
		if !ok {
			st, m, _ := strings.Cut(f.name, ".")
			expr = "offsetof(" + st + ", " + m + ")"
		}
		fmt.Fprintf(&b, "_Static_assert(%s == %d, \"%s: Go has %d\");\n", expr, f.got, f.name, f.got)
	}
	var s snapshotProp
	fmt.Fprintf(&b, "_Static_assert(offsetof(VSS_SNAPSHOT_PROP, m_tsCreationTimestamp) == %d, \"m_tsCreationTimestamp\");\n", unsafe.Offsetof(s.Created))
	fmt.Fprintf(&b, "_Static_assert(sizeof(VSS_OBJECT_PROP) == %d, \"sizeof(VSS_OBJECT_PROP)\");\n", unsafe.Sizeof(objectProp{}))
	fmt.Fprintf(&b, "_Static_assert(offsetof(VSS_OBJECT_PROP, Obj) == %d, \"VSS_OBJECT_PROP.Obj\");\n", unsafe.Offsetof(objectProp{}.Snap))
	src := filepath.Join(t.TempDir(), "layout.c")
	if err := os.WriteFile(src, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(path, "-fsyntax-only", src).CombinedOutput(); err != nil {
		t.Fatalf("the SDK's layout differs from Go's:\n%s", out)
	}
}

func TestGUIDArgs(t *testing.T) {
	g := new(GUID)
	*g = MicrosoftProvider
	if a := guidArgs("amd64", g); len(a) != 1 || a[0] != uintptr(unsafe.Pointer(g)) {
		t.Fatalf("amd64: %v", a)
	}
	raw := (*[16]byte)(unsafe.Pointer(g))
	if binary.LittleEndian.Uint32(raw[:4]) != 0xb5946137 {
		t.Fatal("GUID is not laid out as Windows lays it out")
	}
	if runtime.GOARCH == "amd64" || runtime.GOARCH == "arm64" {
		a := guidArgs("arm64", g)
		if len(a) != 2 || uint64(a[0]) != binary.LittleEndian.Uint64(raw[:8]) || uint64(a[1]) != binary.LittleEndian.Uint64(raw[8:]) {
			t.Fatalf("arm64: %x", a)
		}
	}
	if a := guidArgs("386", g); len(a) != 4 || uint32(a[0]) != 0xb5946137 || uint32(a[3]) != binary.LittleEndian.Uint32(raw[12:]) {
		t.Fatalf("386: %x", a)
	}
}

// TestCodesAgainstMingwHeaders: every code of vsserror.h is known, under
// its name and value.
func TestCodesAgainstMingwHeaders(t *testing.T) {
	b, err := os.ReadFile("/usr/share/mingw-w64/include/vsserror.h")
	if err != nil {
		t.Skipf("no mingw-w64 headers: %v", err)
	}
	defs := regexp.MustCompile(`#define (VSS_[ES]_\w+) \(\(HRESULT\)0x([0-9A-Fa-f]{8})\)`).FindAllStringSubmatch(string(b), -1)
	if len(defs) < 70 {
		t.Fatalf("only %d codes in vsserror.h", len(defs))
	}
	for _, d := range defs {
		v, _ := strconv.ParseUint(d[2], 16, 32)
		if got := HRESULT(v).Name(); got != d[1] {
			t.Errorf("0x%s: named %q, vsserror.h says %s", d[2], got, d[1])
		}
	}
}
