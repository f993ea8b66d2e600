package vss

import (
	"fmt"
	"slices"
)

// HRESULT is a COM result code. Values with the top bit set are failures.
type HRESULT uint32

// Codes the requester treats specially (vsserror.h, winerror.h).
const (
	S_OK                                        HRESULT = 0x00000000
	S_FALSE                                     HRESULT = 0x00000001
	VSS_S_ASYNC_PENDING                         HRESULT = 0x00042309
	VSS_S_ASYNC_FINISHED                        HRESULT = 0x0004230A
	VSS_S_ASYNC_CANCELLED                       HRESULT = 0x0004230B
	E_NOTIMPL                                   HRESULT = 0x80004001
	E_FAIL                                      HRESULT = 0x80004005
	E_UNEXPECTED                                HRESULT = 0x8000FFFF
	E_ACCESSDENIED                              HRESULT = 0x80070005
	E_OUTOFMEMORY                               HRESULT = 0x8007000E
	E_INVALIDARG                                HRESULT = 0x80070057
	RPC_E_TOO_LATE                              HRESULT = 0x80010119
	RPC_E_CHANGED_MODE                          HRESULT = 0x80010106
	ERROR_MOD_NOT_FOUND                         HRESULT = 0x8007007E
	ERROR_PROC_NOT_FOUND                        HRESULT = 0x8007007F
	VSS_E_BAD_STATE                             HRESULT = 0x80042301
	VSS_E_UNEXPECTED                            HRESULT = 0x80042302
	VSS_E_PROVIDER_NOT_REGISTERED               HRESULT = 0x80042304
	VSS_E_PROVIDER_VETO                         HRESULT = 0x80042306
	VSS_E_PROVIDER_IN_USE                       HRESULT = 0x80042307
	VSS_E_OBJECT_NOT_FOUND                      HRESULT = 0x80042308
	VSS_E_VOLUME_NOT_SUPPORTED                  HRESULT = 0x8004230C
	VSS_E_OBJECT_ALREADY_EXISTS                 HRESULT = 0x8004230D
	VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER      HRESULT = 0x8004230E
	VSS_E_UNEXPECTED_PROVIDER_ERROR             HRESULT = 0x8004230F
	VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED     HRESULT = 0x80042312
	VSS_E_FLUSH_WRITES_TIMEOUT                  HRESULT = 0x80042313
	VSS_E_HOLD_WRITES_TIMEOUT                   HRESULT = 0x80042314
	VSS_E_UNEXPECTED_WRITER_ERROR               HRESULT = 0x80042315
	VSS_E_SNAPSHOT_SET_IN_PROGRESS              HRESULT = 0x80042316
	VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED   HRESULT = 0x80042317
	VSS_E_WRITER_INFRASTRUCTURE                 HRESULT = 0x80042318
	VSS_E_WRITER_NOT_RESPONDING                 HRESULT = 0x80042319
	VSS_E_WRITER_ALREADY_SUBSCRIBED             HRESULT = 0x8004231A
	VSS_E_UNSUPPORTED_CONTEXT                   HRESULT = 0x8004231B
	VSS_E_VOLUME_IN_USE                         HRESULT = 0x8004231D
	VSS_E_MAXIMUM_DIFFAREA_ASSOCIATIONS_REACHED HRESULT = 0x8004231E
	VSS_E_INSUFFICIENT_STORAGE                  HRESULT = 0x8004231F
	VSS_E_REBOOT_REQUIRED                       HRESULT = 0x80042327
	VSS_E_TRANSACTION_FREEZE_TIMEOUT            HRESULT = 0x80042328
	VSS_E_TRANSACTION_THAW_TIMEOUT              HRESULT = 0x80042329
	VSS_E_UNSELECTED_VOLUME                     HRESULT = 0x8004232A
	VSS_E_NESTED_VOLUME_LIMIT                   HRESULT = 0x8004232C
	VSS_E_VOLUME_NOT_LOCAL                      HRESULT = 0x8004232D
	VSS_E_CLUSTER_TIMEOUT                       HRESULT = 0x8004232E
	VSS_E_NOT_SUPPORTED                         HRESULT = 0x8004232F
	VSS_E_WRITERERROR_PARTIAL_FAILURE           HRESULT = 0x80042336
	VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT      HRESULT = 0x800423F0
	VSS_E_WRITERERROR_OUTOFRESOURCES            HRESULT = 0x800423F1
	VSS_E_WRITERERROR_TIMEOUT                   HRESULT = 0x800423F2
	VSS_E_WRITERERROR_RETRYABLE                 HRESULT = 0x800423F3
	VSS_E_WRITERERROR_NONRETRYABLE              HRESULT = 0x800423F4
	VSS_E_WRITERERROR_RECOVERY_FAILED           HRESULT = 0x800423F5
	VSS_E_LEGACY_PROVIDER                       HRESULT = 0x800423F7
	VSS_E_WRITER_STATUS_NOT_AVAILABLE           HRESULT = 0x80042409
	VSS_E_FSS_TIMEOUT                           HRESULT = 0x80042417
)

// Failed tells whether h is a failure code.
func (h HRESULT) Failed() bool { return h&0x80000000 != 0 }

// hresultInfo is what a user is told about a code: its name, and what to do.
type hresultInfo struct {
	name, advice string
}

const (
	adviceEventLog  = "see the Application event log (source VSS) for the cause"
	adviceRetryLoad = "stillpoint retries the whole set; if it keeps failing, run the backup when the disks are less busy"
)

var hresults = map[HRESULT]hresultInfo{
	E_NOTIMPL: {"E_NOTIMPL", "this system's Volume Shadow Copy service does not implement the call (Wine, or a Windows without VSS), so files can only be read live here"},
	E_FAIL:    {"E_FAIL", "VSS failed without saying why; " + adviceEventLog},
	E_UNEXPECTED: {"E_UNEXPECTED", "VSS failed unexpectedly; " + adviceEventLog +
		", and restart the Volume Shadow Copy service (net stop vss) if it persists"},
	E_ACCESSDENIED: {"E_ACCESSDENIED", "VSS needs an elevated process: run stillpoint as Administrator " +
		"(an elevated prompt, or a service or scheduled task with highest privileges)"},
	E_OUTOFMEMORY:        {"E_OUTOFMEMORY", "the system ran out of memory for VSS; close programs or add memory"},
	E_INVALIDARG:         {"E_INVALIDARG", "VSS rejected an argument (a volume name stillpoint built); report it with the volume's path"},
	RPC_E_TOO_LATE:       {"RPC_E_TOO_LATE", "COM security was set up already in this process; harmless"},
	RPC_E_CHANGED_MODE:   {"RPC_E_CHANGED_MODE", "COM was initialised in another threading model on the requester's thread; report it"},
	ERROR_MOD_NOT_FOUND:  {"ERROR_MOD_NOT_FOUND", "VssApi.dll is missing: this Windows has no Volume Shadow Copy service; read live with --snapshot on"},
	ERROR_PROC_NOT_FOUND: {"ERROR_PROC_NOT_FOUND", "VssApi.dll lacks CreateVssBackupComponentsInternal: this Windows's VSS is too old or emulated; read live with --snapshot on"},
	VSS_E_BAD_STATE: {"VSS_E_BAD_STATE", "VSS was called out of order (a stillpoint bug, or another program interfering " +
		"with this requester); report it with `vssadmin list writers` output"},
	VSS_E_UNEXPECTED: {"VSS_E_UNEXPECTED", "the Volume Shadow Copy service failed unexpectedly; " + adviceEventLog +
		", and restart the service (net stop vss; it starts again on demand)"},
	VSS_E_PROVIDER_NOT_REGISTERED: {"VSS_E_PROVIDER_NOT_REGISTERED", "the chosen shadow copy provider is not installed; " +
		"`vssadmin list providers` lists those that are; leave vss.provider unset to let Windows choose"},
	VSS_E_PROVIDER_VETO: {"VSS_E_PROVIDER_VETO", "the shadow copy provider refused to make the shadow copy (busy, or out of resources); " +
		adviceRetryLoad + "; the System event log says why"},
	VSS_E_PROVIDER_IN_USE:       {"VSS_E_PROVIDER_IN_USE", "the shadow copy provider is busy with another request; try again later"},
	VSS_E_OBJECT_NOT_FOUND:      {"VSS_E_OBJECT_NOT_FOUND", "VSS does not know the volume or shadow copy (removed meanwhile?); check the source still exists"},
	VSS_E_VOLUME_NOT_SUPPORTED:  {"VSS_E_VOLUME_NOT_SUPPORTED", "this volume cannot be shadow-copied (FAT, exFAT, a network or removable drive); read it live with --snapshot on"},
	VSS_E_OBJECT_ALREADY_EXISTS: {"VSS_E_OBJECT_ALREADY_EXISTS", "the volume is already in this snapshot set (a stillpoint bug); report it"},
	VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER: {"VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER", "the chosen provider cannot snap this volume; " +
		"leave vss.provider unset so that Windows chooses one that can"},
	VSS_E_UNEXPECTED_PROVIDER_ERROR: {"VSS_E_UNEXPECTED_PROVIDER_ERROR", "the shadow copy provider failed; a third-party (storage or backup vendor's) provider " +
		"may be at fault: choose the Microsoft provider with `vss: {provider: microsoft}` in the job file, and see the Application and System event logs"},
	VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED: {"VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED", "a snapshot set holds at most 64 volumes; split the sources over several jobs"},
	VSS_E_FLUSH_WRITES_TIMEOUT: {"VSS_E_FLUSH_WRITES_TIMEOUT", "the system could not flush the volumes' writes in time (heavy disk load); " +
		adviceRetryLoad},
	VSS_E_HOLD_WRITES_TIMEOUT: {"VSS_E_HOLD_WRITES_TIMEOUT", "the system could not hold the volumes' writes for the shadow copy (the 10-second limit passed); " +
		adviceRetryLoad},
	VSS_E_UNEXPECTED_WRITER_ERROR: {"VSS_E_UNEXPECTED_WRITER_ERROR", "a writer failed unexpectedly; `vssadmin list writers` shows which, and the Application event log why"},
	VSS_E_SNAPSHOT_SET_IN_PROGRESS: {"VSS_E_SNAPSHOT_SET_IN_PROGRESS", "another shadow copy is being made (another backup, System Restore, or a scheduled shadow copy); " +
		"stillpoint waits and tries again within its timeout; schedule the jobs apart if it keeps happening"},
	VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED: {"VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED", "the volume holds the most shadow copies it can (64); " +
		"delete old ones (`vssadmin list shadows`, then `vssadmin delete shadows /for=C: /oldest`), or lower System Restore's or another tool's count"},
	VSS_E_WRITER_INFRASTRUCTURE: {"VSS_E_WRITER_INFRASTRUCTURE", "the writers cannot be reached: restart the Volume Shadow Copy and COM+ Event System services; " +
		"`vssadmin list writers` must list them"},
	VSS_E_WRITER_NOT_RESPONDING:     {"VSS_E_WRITER_NOT_RESPONDING", "a writer does not answer; `vssadmin list writers` shows which; restart its application's service"},
	VSS_E_WRITER_ALREADY_SUBSCRIBED: {"VSS_E_WRITER_ALREADY_SUBSCRIBED", "a writer is registered twice; restart its application's service"},
	VSS_E_UNSUPPORTED_CONTEXT: {"VSS_E_UNSUPPORTED_CONTEXT", "this Windows edition or provider does not support the snapshot context; " +
		"stillpoint uses the plain backup context, so a third-party provider may be at fault: try vss.provider: microsoft"},
	VSS_E_VOLUME_IN_USE: {"VSS_E_VOLUME_IN_USE", "the volume is in use by another VSS operation (a revert or resync); try again later"},
	VSS_E_MAXIMUM_DIFFAREA_ASSOCIATIONS_REACHED: {"VSS_E_MAXIMUM_DIFFAREA_ASSOCIATIONS_REACHED", "too many volumes keep their shadow storage on one volume; " +
		"move shadow storage with `vssadmin add shadowstorage`"},
	VSS_E_INSUFFICIENT_STORAGE: {"VSS_E_INSUFFICIENT_STORAGE", "not enough free space for the shadow copy's storage area: free space on the volume, " +
		"or enlarge the area with `vssadmin resize shadowstorage /for=C: /on=C: /maxsize=10%`"},
	VSS_E_REBOOT_REQUIRED:             {"VSS_E_REBOOT_REQUIRED", "a change to the storage needs a restart before shadow copies work; restart Windows"},
	VSS_E_TRANSACTION_FREEZE_TIMEOUT:  {"VSS_E_TRANSACTION_FREEZE_TIMEOUT", "the transaction manager could not freeze in time; " + adviceRetryLoad},
	VSS_E_TRANSACTION_THAW_TIMEOUT:    {"VSS_E_TRANSACTION_THAW_TIMEOUT", "the transaction manager thawed late: the freeze outlasted its limit; " + adviceRetryLoad},
	VSS_E_UNSELECTED_VOLUME:           {"VSS_E_UNSELECTED_VOLUME", "a writer needs a volume that is not in the set; add that volume as a source, or exclude the writer with vss.writers.exclude"},
	VSS_E_NESTED_VOLUME_LIMIT:         {"VSS_E_NESTED_VOLUME_LIMIT", "the volume is a virtual disk nested too deep to be shadow-copied; back up the host volume instead"},
	VSS_E_VOLUME_NOT_LOCAL:            {"VSS_E_VOLUME_NOT_LOCAL", "VSS does not snap network shares; read live (--snapshot on)"},
	VSS_E_CLUSTER_TIMEOUT:             {"VSS_E_CLUSTER_TIMEOUT", "the cluster service did not answer in time; " + adviceRetryLoad},
	VSS_E_NOT_SUPPORTED:               {"VSS_E_NOT_SUPPORTED", "the shadow copy provider does not support this operation; try vss.provider: microsoft"},
	VSS_E_WRITERERROR_PARTIAL_FAILURE: {"VSS_E_WRITERERROR_PARTIAL_FAILURE", "some of a writer's components failed; its application log says which"},
	VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT: {"VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT", "the writer says the shadow copy holds only part of its data: " +
		"add the volumes its files are on as sources"},
	VSS_E_WRITERERROR_OUTOFRESOURCES: {"VSS_E_WRITERERROR_OUTOFRESOURCES", "the writer ran out of memory or handles; restart its application's service"},
	VSS_E_WRITERERROR_TIMEOUT: {"VSS_E_WRITERERROR_TIMEOUT", "the writer could not freeze within its limit (60 s) — usually heavy load; " +
		adviceRetryLoad},
	VSS_E_WRITERERROR_RETRYABLE: {"VSS_E_WRITERERROR_RETRYABLE", "the writer failed in a way that may pass; stillpoint retries the whole set"},
	VSS_E_WRITERERROR_NONRETRYABLE: {"VSS_E_WRITERERROR_NONRETRYABLE", "the writer failed and says trying again will not help; " +
		"its application's event log says why; exclude it with vss.writers.exclude to back up without it"},
	VSS_E_WRITERERROR_RECOVERY_FAILED: {"VSS_E_WRITERERROR_RECOVERY_FAILED", "the writer could not recover its data inside the shadow copy; its application's event log says why"},
	VSS_E_LEGACY_PROVIDER:             {"VSS_E_LEGACY_PROVIDER", "the chosen provider is a legacy one that cannot do this; try vss.provider: microsoft"},
	VSS_E_WRITER_STATUS_NOT_AVAILABLE: {"VSS_E_WRITER_STATUS_NOT_AVAILABLE", "the writers' status could not be read (the writer service restarted?); try again"},
	VSS_E_FSS_TIMEOUT:                 {"VSS_E_FSS_TIMEOUT", "the file share shadow copy agent did not answer in time; " + adviceRetryLoad},
}

// Name is the symbolic name of h, or its hex value for an unknown code.
func (h HRESULT) Name() string {
	if i, ok := hresults[h]; ok {
		return i.name
	}
	return fmt.Sprintf("HRESULT 0x%08X", uint32(h))
}

// Advice is a sentence that says what the code means for a user and what
// to do about it.
func (h HRESULT) Advice() string {
	if i, ok := hresults[h]; ok {
		return i.advice
	}
	if h>>16 == 0x8007 {
		return fmt.Sprintf("Windows error %d; "+adviceEventLog, uint32(h)&0xFFFF)
	}
	return "an unknown VSS error; " + adviceEventLog
}

// Error implements error: "VSS_E_INSUFFICIENT_STORAGE (0x8004231F)".
func (h HRESULT) Error() string {
	if _, ok := hresults[h]; ok {
		return fmt.Sprintf("%s (0x%08X)", h.Name(), uint32(h))
	}
	return h.Name()
}

// retryClass says how the requester answers a failure.
type retryClass int

const (
	fatal      retryClass = iota // the set fails
	inProgress                   // another set is being made: back off and try again inside the deadline
	wholeSet                     // a transient timeout or veto: try the whole set again, a bounded number of times
)

func classify(h HRESULT) retryClass {
	switch h {
	case VSS_E_SNAPSHOT_SET_IN_PROGRESS:
		return inProgress
	case VSS_E_FLUSH_WRITES_TIMEOUT, VSS_E_HOLD_WRITES_TIMEOUT,
		VSS_E_TRANSACTION_FREEZE_TIMEOUT, VSS_E_TRANSACTION_THAW_TIMEOUT,
		VSS_E_WRITERERROR_TIMEOUT, VSS_E_WRITERERROR_RETRYABLE,
		VSS_E_PROVIDER_VETO, VSS_E_CLUSTER_TIMEOUT, VSS_E_FSS_TIMEOUT:
		return wholeSet
	}
	return fatal
}

// MarshalText writes the code's name.
func (h HRESULT) MarshalText() ([]byte, error) { return []byte(h.Name()), nil }

// KnownCodes lists every code with a name and advice.
func KnownCodes() []HRESULT {
	out := make([]HRESULT, 0, len(hresults))
	for h := range hresults {
		out = append(out, h)
	}
	slices.Sort(out)
	return out
}
