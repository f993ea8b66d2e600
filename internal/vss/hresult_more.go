package vss

// The rest of vsserror.h: codes a file backup should not meet (imports,
// reverts, Automated System Recovery), named so that a report says what
// happened if one comes.
func init() {
	const asr = "an Automated System Recovery error, which a file backup does not ask for; report it with the output of `vssadmin list writers`"
	const report = "stillpoint does not use this part of VSS; report it with the output of `vssadmin list writers`"
	more := map[HRESULT]hresultInfo{
		0x00042309: {"VSS_S_ASYNC_PENDING", "the operation is still running"},
		0x0004230A: {"VSS_S_ASYNC_FINISHED", "the operation finished"},
		0x0004230B: {"VSS_S_ASYNC_CANCELLED", "the operation was cancelled"},
		0x00042321: {"VSS_S_SOME_SNAPSHOTS_NOT_IMPORTED", "some shadow copies were not imported; " + report},
		0x80042303: {"VSS_E_PROVIDER_ALREADY_REGISTERED", "a shadow copy provider is registered twice; reinstall the provider's software"},
		0x80042310: {"VSS_E_CORRUPT_XML_DOCUMENT", "a writer's metadata is damaged; restart the writer's application service (`vssadmin list writers` shows the writers)"},
		0x80042311: {"VSS_E_INVALID_XML_DOCUMENT", "a writer's metadata is not valid; restart the writer's application service (`vssadmin list writers` shows the writers)"},
		0x80042320: {"VSS_E_NO_SNAPSHOTS_IMPORTED", "no shadow copies were imported; " + report},
		0x80042321: {"VSS_E_SOME_SNAPSHOTS_NOT_IMPORTED", "some shadow copies were not imported; " + report},
		0x80042322: {"VSS_E_MAXIMUM_NUMBER_OF_REMOTE_MACHINES_REACHED", "too many file servers in one set; " + shareAdvice},
		0x80042323: {"VSS_E_REMOTE_SERVER_UNAVAILABLE", "the file server of a share does not answer; " + shareAdvice},
		0x80042324: {"VSS_E_REMOTE_SERVER_UNSUPPORTED", "the file server of a share cannot make shadow copies; " + shareAdvice},
		0x80042325: {"VSS_E_REVERT_IN_PROGRESS", "the volume is being reverted to a shadow copy; run the backup when that is done"},
		0x80042326: {"VSS_E_REVERT_VOLUME_LOST", "a revert to a shadow copy lost the volume; check it in Disk Management"},
		0x8004232B: {"VSS_E_SNAPSHOT_NOT_IN_SET", "the shadow copy is not in this set (a stillpoint bug); report it"},
		0x800423F6: {"VSS_E_BREAK_REVERT_ID_FAILED", "a hardware provider could not give a disk a new identity; see the provider's documentation"},
		0x800423F8: {"VSS_E_MISSING_DISK", "a disk of the set is missing (disconnected?); check Disk Management and the sources"},
		0x800423F9: {"VSS_E_MISSING_HIDDEN_VOLUME", "a hidden volume of the set is missing; check Disk Management"},
		0x800423FA: {"VSS_E_MISSING_VOLUME", "a volume of the set is missing (disconnected?); check Disk Management and the sources"},
		0x800423FB: {"VSS_E_AUTORECOVERY_FAILED", "the shadow copy could not be made consistent after it was taken; the System event log says why; try again"},
		0x800423FC: {"VSS_E_DYNAMIC_DISK_ERROR", "a dynamic disk failed; check it in Disk Management"},
		0x800423FD: {"VSS_E_NONTRANSPORTABLE_BCD", "the boot configuration cannot travel with the shadow copy; " + report},
		0x800423FE: {"VSS_E_CANNOT_REVERT_DISKID", "a disk's identity cannot be reverted; see the provider's documentation"},
		0x800423FF: {"VSS_E_RESYNC_IN_PROGRESS", "the volume is being resynchronised with a shadow copy; run the backup when that is done"},
		0x80042400: {"VSS_E_CLUSTER_ERROR", "the cluster failed the shadow copy of a cluster shared volume; the cluster's event log says why"},
		0x80042401: {"VSS_E_ASRERROR_DISK_ASSIGNMENT_FAILED", asr},
		0x80042402: {"VSS_E_ASRERROR_DISK_RECREATION_FAILED", asr},
		0x80042403: {"VSS_E_ASRERROR_NO_ARCPATH", asr},
		0x80042404: {"VSS_E_ASRERROR_MISSING_DYNDISK", asr},
		0x80042405: {"VSS_E_ASRERROR_SHARED_CRIDISK", asr},
		0x80042406: {"VSS_E_ASRERROR_DATADISK_RDISK0", asr},
		0x80042407: {"VSS_E_ASRERROR_RDISK0_TOOSMALL", asr},
		0x80042408: {"VSS_E_ASRERROR_CRITICAL_DISKS_TOO_SMALL", asr},
		0x8004240A: {"VSS_E_ASRERROR_DYNAMIC_VHD_NOT_SUPPORTED", asr},
		0x80042411: {"VSS_E_CRITICAL_VOLUME_ON_INVALID_DISK", asr},
		0x80042412: {"VSS_E_ASRERROR_RDISK_FOR_SYSTEM_DISK_NOT_FOUND", asr},
		0x80042413: {"VSS_E_ASRERROR_NO_PHYSICAL_DISK_AVAILABLE", asr},
		0x80042414: {"VSS_E_ASRERROR_FIXED_PHYSICAL_DISK_AVAILABLE_AFTER_DISK_EXCLUSION", asr},
		0x80042415: {"VSS_E_ASRERROR_CRITICAL_DISK_CANNOT_BE_EXCLUDED", asr},
		0x80042416: {"VSS_E_ASRERROR_SYSTEM_PARTITION_HIDDEN", asr},
	}
	for h, i := range more {
		if _, dup := hresults[h]; !dup {
			hresults[h] = i
		}
	}
}

const shareAdvice = "read the share live (--snapshot on)"
