package vss

import "unsafe"

// Vtable slots of the COM methods called, in the order of the Windows
// SDK's vsbackup.h and vss.h (IUnknown's QueryInterface, AddRef and
// Release are 0, 1 and 2). slots_test.go pins every one.
const (
	slotRelease = 2

	// IVssBackupComponents
	slotInitializeForBackup    = 5
	slotSetBackupState         = 6
	slotGatherWriterMetadata   = 9
	slotGetWriterMetadataCount = 10
	slotGetWriterMetadata      = 11
	slotFreeWriterMetadata     = 12
	slotPrepareForBackup       = 14
	slotAbortBackup            = 15
	slotGatherWriterStatus     = 16
	slotGetWriterStatusCount   = 17
	slotFreeWriterStatus       = 18
	slotGetWriterStatus        = 19
	slotBackupComplete         = 27
	slotSetContext             = 35
	slotStartSnapshotSet       = 36
	slotAddToSnapshotSet       = 37
	slotDoSnapshotSet          = 38
	slotGetSnapshotProperties  = 42
	slotQuery                  = 43
	slotIsVolumeSupported      = 44
	slotDisableWriterClasses   = 45

	// IVssAsync
	slotAsyncCancel      = 3
	slotAsyncWait        = 4
	slotAsyncQueryStatus = 5

	// IVssExamineWriterMetadata
	slotGetIdentity    = 3
	slotGetFileCounts  = 4
	slotGetIncludeFile = 5
	slotGetComponent   = 7

	// IVssWMComponent
	slotGetComponentInfo   = 3
	slotFreeComponentInfo  = 4
	slotGetFile            = 5
	slotGetDatabaseFile    = 6
	slotGetDatabaseLogFile = 7

	// IVssWMFiledesc
	slotGetPath      = 3
	slotGetFilespec  = 4
	slotGetRecursive = 5

	// IVssEnumObject
	slotEnumNext = 3
)

// objectProp is VSS_OBJECT_PROP: a type, then a union of VSS_SNAPSHOT_PROP
// and the smaller VSS_PROVIDER_PROP, aligned to 8.
type objectProp struct {
	Type int32
	_    int32
	Snap snapshotProp
}

// snapshotProp is VSS_SNAPSHOT_PROP (vss.h) as the system lays it out.
type snapshotProp struct {
	SnapshotID         GUID
	SetID              GUID
	Count              int32
	DeviceObject       *uint16
	OriginalVolume     *uint16
	OriginatingMachine *uint16
	ServiceMachine     *uint16
	ExposedName        *uint16
	ExposedPath        *uint16
	Provider           GUID
	Attributes         int32
	Created            int64 // VSS_TIMESTAMP: 100 ns since 1601
	Status             int32
	_                  int32 // the C struct's tail padding, so VSS never writes past it
}

// providerProp is VSS_PROVIDER_PROP (vss.h), the other member of
// VSS_OBJECT_PROP's union.
type providerProp struct {
	ProviderID GUID
	Name       *uint16
	Type       int32
	Version    *uint16
	VersionID  GUID
	ClassID    GUID
}

// componentInfo is VSS_COMPONENTINFO (vsbackup.h); the four booleans are
// C's one-byte boolean.
type componentInfo struct {
	Type                   int32
	LogicalPath            *uint16
	ComponentName          *uint16
	Caption                *uint16
	Icon                   *byte
	IconSize               uint32
	RestoreMetadata        byte
	NotifyOnBackupComplete byte
	Selectable             byte
	SelectableForRestore   byte
	ComponentFlags         uint32
	FileCount              uint32
	Databases              uint32
	LogFiles               uint32
	Dependencies           uint32
}

// guidArgs passes a GUID by value as the calling convention of arch
// wants it: x64 passes a 16-byte struct by a pointer to a copy, arm64 in
// two registers, x86 on the stack as four words. g must be on the heap.
func guidArgs(arch string, g *GUID) []uintptr {
	switch arch {
	case "arm64":
		w := (*[2]uint64)(unsafe.Pointer(g))
		return []uintptr{uintptr(w[0]), uintptr(w[1])}
	case "386", "arm":
		w := (*[4]uint32)(unsafe.Pointer(g))
		return []uintptr{uintptr(w[0]), uintptr(w[1]), uintptr(w[2]), uintptr(w[3])}
	}
	return []uintptr{uintptr(unsafe.Pointer(g))}
}
