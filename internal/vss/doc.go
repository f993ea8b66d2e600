// Package vss is stillpoint's Volume Shadow Copy requester, in pure Go.
//
// Components is the part of the COM interface IVssBackupComponents the
// requester calls, one Go method per COM method; on Windows it is backed
// by VssApi.dll through vtable calls on one OS thread (com_windows.go),
// elsewhere and in tests by the scripted fake of package vsstest.
//
// Requester.Create runs the documented sequence for every volume of a
// run at once: InitializeForBackup, SetContext(VSS_CTX_BACKUP: the shadow
// copies are released with the components object, also when the process
// is killed), SetBackupState(VSS_BT_COPY by default: applications keep
// their logs), GatherWriterMetadata, StartSnapshotSet, AddToSnapshotSet
// for each volume, PrepareForBackup, writer status, DoSnapshotSet, writer
// status, GetSnapshotProperties. Set.Complete ends it with BackupComplete,
// writer status and Release. Every failure after StartSnapshotSet calls
// AbortBackup, and the components object is always released.
//
// Asynchronous calls are waited for in slices, against the run's context,
// a per-phase and a total timeout. Failures are retried by HRESULT:
// VSS_E_SNAPSHOT_SET_IN_PROGRESS with back-off inside the deadline; the
// timeouts, VSS_E_WRITERERROR_RETRYABLE and VSS_E_PROVIDER_VETO as a new
// whole set, a bounded number of times; anything else fails. Every HRESULT
// has a name and a sentence a user can act on (HRESULT.Advice).
//
// Writers are checked after PrepareForBackup, DoSnapshotSet and
// BackupComplete: a failed writer is recorded (Set.Writers,
// Set.FailedWriters), a required one fails the set, an excluded one is
// disabled before GatherWriterMetadata (VSS ignores it afterwards; a writer
// excluded by name is looked up with components of its own first).
//
// The writers' metadata also tells which files each writer's components
// cover (include files, component files, database and log files, with
// %VARIABLES% expanded): Writer.Covers tells whether a source holds a
// writer's data, so a failed writer lowers only those sources; a writer
// whose files cannot be known covers every source.
//
// For diagnostics, ListWriters, ListShadows and ListProviders show what
// `vssadmin list writers|shadows|providers` would; ListProviders also asks
// IsVolumeSupported for the volumes it is given.
package vss
