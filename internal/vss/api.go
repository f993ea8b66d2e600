package vss

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// GUID is a COM GUID (VSS_ID), laid out as Windows lays it out.
type GUID struct {
	Data1 uint32
	Data2 uint16
	Data3 uint16
	Data4 [8]byte
}

// IsZero tells whether g is GUID_NULL (in AddToSnapshotSet: "let Windows
// choose the provider").
func (g GUID) IsZero() bool { return g == GUID{} }

// String is the registry form, {b5946137-7b9f-4925-af80-51abd60b20d5}.
func (g GUID) String() string {
	return fmt.Sprintf("{%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x}", g.Data1, g.Data2, g.Data3,
		g.Data4[0], g.Data4[1], g.Data4[2], g.Data4[3], g.Data4[4], g.Data4[5], g.Data4[6], g.Data4[7])
}

// ParseGUID reads the registry form, with or without braces.
func ParseGUID(s string) (GUID, error) {
	t := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(s), "{"), "}")
	parts := strings.Split(t, "-")
	if len(parts) != 5 || len(parts[0]) != 8 || len(parts[1]) != 4 || len(parts[2]) != 4 || len(parts[3]) != 4 || len(parts[4]) != 12 {
		return GUID{}, fmt.Errorf("%q is not a GUID (write {xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx})", s)
	}
	var g GUID
	d1, err1 := strconv.ParseUint(parts[0], 16, 32)
	d2, err2 := strconv.ParseUint(parts[1], 16, 16)
	d3, err3 := strconv.ParseUint(parts[2], 16, 16)
	rest := parts[3] + parts[4]
	for _, err := range []error{err1, err2, err3} {
		if err != nil {
			return GUID{}, fmt.Errorf("%q is not a GUID: %w", s, err)
		}
	}
	g.Data1, g.Data2, g.Data3 = uint32(d1), uint16(d2), uint16(d3)
	for i := range g.Data4 {
		b, err := strconv.ParseUint(rest[2*i:2*i+2], 16, 8)
		if err != nil {
			return GUID{}, fmt.Errorf("%q is not a GUID: %w", s, err)
		}
		g.Data4[i] = byte(b)
	}
	return g, nil
}

// MicrosoftProvider is the Microsoft Software Shadow Copy provider 1.0.
var MicrosoftProvider = GUID{0xb5946137, 0x7b9f, 0x4925, [8]byte{0xaf, 0x80, 0x51, 0xab, 0xd6, 0x0b, 0x20, 0xd5}}

// Context is a VSS_SNAPSHOT_CONTEXT.
type Context int32

// ContextBackup (VSS_CTX_BACKUP) makes non-persistent, auto-release shadow
// copies with writers: they vanish when the components object is released,
// also when the process is killed.
const ContextBackup Context = 0

// BackupType is a VSS_BACKUP_TYPE.
type BackupType int32

// Backup types used here.
const (
	// BackupFull (VSS_BT_FULL) lets writers treat the backup as one of
	// record: SQL Server and Exchange truncate their logs after it.
	BackupFull BackupType = 1
	// BackupCopy (VSS_BT_COPY) leaves the applications' own backup history
	// alone (no log truncation): the default.
	BackupCopy BackupType = 5
)

// WriterState is a VSS_WRITER_STATE.
type WriterState int32

// Writer states.
const (
	WriterUnknown WriterState = iota
	WriterStable
	WriterWaitingForFreeze
	WriterWaitingForThaw
	WriterWaitingForPostSnapshot
	WriterWaitingForBackupComplete
	WriterFailedAtIdentify
	WriterFailedAtPrepareBackup
	WriterFailedAtPrepareSnapshot
	WriterFailedAtFreeze
	WriterFailedAtThaw
	WriterFailedAtPostSnapshot
	WriterFailedAtBackupComplete
	WriterFailedAtPreRestore
	WriterFailedAtPostRestore
	WriterFailedAtBackupShutdown
)

var writerStateNames = []string{
	"VSS_WS_UNKNOWN", "VSS_WS_STABLE", "VSS_WS_WAITING_FOR_FREEZE", "VSS_WS_WAITING_FOR_THAW",
	"VSS_WS_WAITING_FOR_POST_SNAPSHOT", "VSS_WS_WAITING_FOR_BACKUP_COMPLETE", "VSS_WS_FAILED_AT_IDENTIFY",
	"VSS_WS_FAILED_AT_PREPARE_BACKUP", "VSS_WS_FAILED_AT_PREPARE_SNAPSHOT", "VSS_WS_FAILED_AT_FREEZE",
	"VSS_WS_FAILED_AT_THAW", "VSS_WS_FAILED_AT_POST_SNAPSHOT", "VSS_WS_FAILED_AT_BACKUP_COMPLETE",
	"VSS_WS_FAILED_AT_PRE_RESTORE", "VSS_WS_FAILED_AT_POST_RESTORE", "VSS_WS_FAILED_AT_BACKUPSHUTDOWN",
}

func (s WriterState) String() string {
	if s >= 0 && int(s) < len(writerStateNames) {
		return writerStateNames[s]
	}
	return "VSS_WS_" + strconv.Itoa(int(s))
}

// Failed tells whether the state is one of the VSS_WS_FAILED_AT_* states.
func (s WriterState) Failed() bool { return s >= WriterFailedAtIdentify }

// WriterIdentity is what GatherWriterMetadata tells of one writer.
type WriterIdentity struct {
	Instance, Class GUID
	Name            string
	// Files are the file descriptors of the writer's include files and of
	// its components' files, database files and log files, as the writer
	// wrote them (environment variables like %SystemRoot% unexpanded).
	Files []FileDesc
	// FilesError says why the files could not be read (the writer's
	// identity could); nil when Files is all of them.
	FilesError error
}

// FileDesc is one IVssWMFiledesc: the files matching Filespec in Path,
// and in every folder below it when Recursive.
type FileDesc struct {
	Path     string `json:"path"`
	Filespec string `json:"filespec"`
	// Recursive: the folders below Path are covered too.
	Recursive bool `json:"recursive,omitempty"`
}

// ProviderType is a VSS_PROVIDER_TYPE.
type ProviderType int32

// Provider types.
const (
	ProviderUnknown ProviderType = iota
	ProviderSystem
	ProviderSoftware
	ProviderHardware
	ProviderFileShare
)

// String is the type as `vssadmin list providers` shows it.
func (t ProviderType) String() string {
	switch t {
	case ProviderSystem:
		return "System"
	case ProviderSoftware:
		return "Software"
	case ProviderHardware:
		return "Hardware"
	case ProviderFileShare:
		return "File share"
	}
	return "Unknown (" + strconv.Itoa(int(t)) + ")"
}

// MarshalText writes the type as vssadmin does.
func (t ProviderType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// ProviderProperties is a VSS_PROVIDER_PROP: one shadow copy provider.
type ProviderProperties struct {
	ID        GUID         `json:"id"`
	Name      string       `json:"name"`
	Type      ProviderType `json:"type"`
	Version   string       `json:"version"`
	VersionID GUID         `json:"version_id"`
	Class     GUID         `json:"class_id"`
}

// WriterStatus is one entry of GetWriterStatus.
type WriterStatus struct {
	Instance, Class GUID
	Name            string
	State           WriterState
	Failure         HRESULT
}

// SnapshotProperties is the part of VSS_SNAPSHOT_PROP the requester uses.
type SnapshotProperties struct {
	ID, SetID GUID
	// DeviceObject is \\?\GLOBALROOT\Device\HarddiskVolumeShadowCopyN.
	DeviceObject   string
	OriginalVolume string // \\?\Volume{...}\
	Provider       GUID
	Attributes     int32
	Created        time.Time
}

// Async is an IVssAsync: the handle of an operation VSS runs on its own.
type Async interface {
	// Wait blocks for at most d; an operation still running after it is
	// not an error (QueryStatus tells).
	Wait(d time.Duration) error
	// QueryStatus returns VSS_S_ASYNC_PENDING, VSS_S_ASYNC_FINISHED,
	// VSS_S_ASYNC_CANCELLED or the operation's failure code.
	QueryStatus() (HRESULT, error)
	Cancel() error
	Release()
}

// Components is the part of IVssBackupComponents the requester uses, one
// method per COM method. A Components serves one backup and is not
// reusable; Release frees it (and, in ContextBackup, its shadow copies).
type Components interface {
	InitializeForBackup() error
	SetContext(c Context) error
	SetBackupState(selectComponents, bootableSystemState bool, t BackupType, partialFileSupport bool) error
	GatherWriterMetadata() (Async, error)
	GetWriterMetadataCount() (int, error)
	// GetWriterMetadata returns the identity of writer i
	// (IVssExamineWriterMetadata::GetIdentity) and the files it names
	// (GetFileCounts, GetIncludeFile, GetComponent, then each
	// IVssWMComponent's GetComponentInfo, GetFile, GetDatabaseFile and
	// GetDatabaseLogFile), releasing the metadata. Files that cannot be
	// read are WriterIdentity.FilesError, not an error of the call.
	GetWriterMetadata(i int) (WriterIdentity, error)
	FreeWriterMetadata() error
	DisableWriterClasses(classes []GUID) error
	StartSnapshotSet() (GUID, error)
	// AddToSnapshotSet adds a volume ("C:\", with the trailing backslash)
	// and returns its snapshot's id; a zero provider lets Windows choose.
	AddToSnapshotSet(volume string, provider GUID) (GUID, error)
	PrepareForBackup() (Async, error)
	GatherWriterStatus() (Async, error)
	GetWriterStatusCount() (int, error)
	GetWriterStatus(i int) (WriterStatus, error)
	FreeWriterStatus() error
	DoSnapshotSet() (Async, error)
	GetSnapshotProperties(id GUID) (SnapshotProperties, error)
	BackupComplete() (Async, error)
	AbortBackup() error
	Release()
}

// Factory makes a new Components (CreateVssBackupComponents); each attempt
// of a snapshot set gets its own.
type Factory func() (Components, error)

// MarshalText writes the registry form.
func (g GUID) MarshalText() ([]byte, error) { return []byte(g.String()), nil }

// MarshalText writes the state's name.
func (s WriterState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
