// Package livefile reads files that may be open, locked or being written
// while the backup runs (no snapshot), and says per file what happened.
//
// A run does three things with it:
//
//  1. ScanOpenForWrite once at the start: which files do other processes have
//     open for writing, and who (pid, command).
//  2. A Reader per run: Read each regular file with the configured Strategy
//     (read, retry, skip, stage). Every read is checked for change: lstat
//     before, fstat after, and the bytes consumed against the size. A torn
//     read is never reported as ok.
//  3. At the end of the run, the files a skip left Deferred get one more try
//     through Reader.SecondPass, then Reader.Close removes the staging
//     directory.
//
// With the stage strategy, check the staging directory against the sources
// with CheckStagingDir when the job is validated, and call PurgeStaging on
// it before NewReader: it removes what a crashed run left there (each
// Reader works in a subdirectory marked with its pid).
//
// On macOS advisory locks (fcntl, flock) are probed as on Linux, but open
// files are not detected: that takes proc_pidinfo, which
// golang.org/x/sys/unix does not offer (and there is no cgo here), so
// ScanOpenForWrite returns a set whose Note says so, a file open for
// writing is found only by the change check of its read, and stage copies
// every file. Elsewhere (not Linux, macOS or Windows) LockedBy returns
// ErrLockDetectionUnavailable as well, and files are read with change
// detection only.
//
// On Windows the view opens files with backup semantics, sharing read,
// write and delete (package winmeta), after EnableBackupPrivileges at the
// start of the run. A file another program opened sharing nothing
// (ERROR_SHARING_VIOLATION) or holds a byte-range lock on
// (ERROR_LOCK_VIOLATION) is a lock: retried, deferred, failed: locked.
// Access denied is failed: permission. The before-and-after check compares
// size, last-write time, change time (FILE_BASIC_INFO) and file index.
//
// # Cost of the open-file scan
//
// The scan lstats every /proc/PID/fd/N link (one syscall each: the link's
// mode bits tell the access mode) and reads fdinfo and stats the target only
// for descriptors open for writing. To measure it on a busy system:
//
//	LIVEFILE_BENCH_PROCS=1000 go test -run '^$' -bench ScanOpenForWrite -benchtime 20x ./internal/livefile/
//
// starts 1,000 extra processes (each holding four descriptors: three
// inherited pipes or /dev/null, and one file open for writing) for the
// duration of the benchmark. Run it as root to see every process.
package livefile
