package livefile

// ScanOpenForWrite cannot look on macOS: the open files of other
// processes are told by proc_pidinfo (libproc), which golang.org/x/sys/unix
// does not offer, and stillpoint uses no cgo and runs no lsof. So a file
// another process has open for writing is not known before it is read:
// advisory locks are still probed on every file, and every read is checked
// by comparing the file's metadata before and after. Note says so.
func ScanOpenForWrite() (*OpenFiles, error) {
	return &OpenFiles{note: "open-file detection is not available on macOS (no proc_pidinfo without cgo): " +
		"files open for writing are not found before they are read; locks are probed and every read is checked for change " +
		"(an APFS snapshot or clonefile clones avoid the question)"}, nil
}
