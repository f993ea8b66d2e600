package view

import "github.com/stillpoint-backup/stillpoint/internal/winmeta"

// openFile opens as a backup program must on Windows: backup semantics
// (SeBackupPrivilege, when enabled, overrides the DACL), sharing read,
// write and delete, not following a final link.
func openFile(p string) (File, error) {
	f, err := winmeta.Open(p)
	if err != nil {
		return nil, err
	}
	return &osFile{f}, nil
}
