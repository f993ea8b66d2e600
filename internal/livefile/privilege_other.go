//go:build !windows

package livefile

// EnableBackupPrivileges does nothing here: the privileges are Windows'.
// On Unix, reading every file takes root (CAP_DAC_READ_SEARCH).
func EnableBackupPrivileges() (warning, note string) { return "", "" }
