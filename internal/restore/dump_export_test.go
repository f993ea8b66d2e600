package restore

// SetDumpBatchBytes makes dump batches small, so tests cross their
// boundaries with little data; the returned func undoes it.
func SetDumpBatchBytes(n int64) func() {
	old := dumpBatchLimit
	dumpBatchLimit = n
	return func() { dumpBatchLimit = old }
}
