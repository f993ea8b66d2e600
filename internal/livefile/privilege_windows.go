package livefile

import (
	"fmt"

	"github.com/stillpoint-backup/stillpoint/internal/winmeta"
)

// EnableBackupPrivileges enables, for the whole process, SeBackupPrivilege
// (opens with backup semantics read any file whatever its DACL says) and
// SeSecurityPrivilege (SACLs are recorded). Call it once before reading.
// warning says what a missing SeBackupPrivilege means for the run; note
// says that SACLs are not recorded; both "" when all is held.
func EnableBackupPrivileges() (warning, note string) {
	held, err := winmeta.Enable(winmeta.BackupPrivilege)
	switch {
	case err != nil:
		warning = fmt.Sprintf("%v: files your account may not read will be failed: permission", err)
	case !held:
		warning = "not elevated: SeBackupPrivilege is not held, so files your account may not read will be failed: permission " +
			"(run from an elevated prompt, as an administrator or a member of Backup Operators)"
	}
	if held, err := winmeta.Enable(winmeta.SecurityPrivilege); err != nil || !held {
		note = "SeSecurityPrivilege is not held: security descriptors are recorded without their SACL (auditing entries)"
	}
	return warning, note
}
