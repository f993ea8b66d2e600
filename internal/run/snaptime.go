package run

import "time"

// snapshotTime is the time a snapshot records: the one given (backup
// --time), else the start of the run, in the local zone either way, so the
// manifest keeps the UTC offset the user's days and weeks are counted in
// (restic records time.Now() the same way). The monotonic reading is
// dropped: it means nothing in another process.
func snapshotTime(start, given time.Time) time.Time {
	if !given.IsZero() {
		return given.Round(0)
	}
	return start.Local().Round(0)
}
