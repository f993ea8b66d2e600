package view

import (
	"os"

	"github.com/stillpoint-backup/stillpoint/internal/winmeta"
)

// openNoAtime opens as a backup program must on Windows: backup semantics
// (SeBackupPrivilege, when enabled, overrides the DACL), sharing read,
// write and delete, not following a final link.
func openNoAtime(p string) (*os.File, error) { return winmeta.Open(p) }
