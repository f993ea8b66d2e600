// Package hold stops, for the moment of a volume snapshot, the processes
// that write to the snapshotted filesystems, so that the snapshot is one
// point in time: every write that completed before the hold is in it, none
// after. Without a hold a btrfs snapshot is only crash-consistent: the
// kernel's flush before the snapshot does not wait for pages under
// writeback, so writes in flight land in or out page by page.
//
// The hold uses SIGSTOP and SIGCONT, not the cgroup v2 freezer: a signal
// stops exactly the processes that write (a cgroup freezes every process
// of a service, and stillpoint itself when it runs in the same cgroup), a
// stopped process has finished the system call it was in (so no write is
// half done), it works on hosts where cgroup v2 is not mounted, and a
// watchdog can undo it with one kill(2) per process.
//
// Held processes are resumed however the run ends: on return, on a panic,
// on SIGINT or SIGTERM, and by a watchdog process (this program, run again)
// that resumes them when stillpoint itself dies, even by kill -9.
package hold
