package vss

import (
	"encoding/binary"
	"os"
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
		"Query": slotQuery,
	},
	"IVssEnumObject":            {"Next": slotEnumNext},
	"IVssAsync":                 {"Cancel": slotAsyncCancel, "Wait": slotAsyncWait, "QueryStatus": slotAsyncQueryStatus},
	"IVssExamineWriterMetadata": {"GetIdentity": slotGetIdentity},
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
	files := map[string]string{"IVssBackupComponents": "vsbackup.h", "IVssExamineWriterMetadata": "vsbackup.h", "IVssAsync": "vss.h", "IVssEnumObject": "vss.h"}
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
