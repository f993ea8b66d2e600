// Package archiver is the backup pipeline: it walks the sources through a
// view.View, reads what changed since the parent snapshot, splits it into
// chunks, and stores blobs and trees through a small Repo interface. It
// never knows where the bytes come from (live files, a snapshot, a clone).
//
// Concurrency: one walker per source directory level (bounded), FileWorkers
// goroutines that open and chunk files, and BlobWorkers goroutines that
// hash, compress and encrypt chunks of large files. Directory trees are
// futures: a directory's tree is saved once all its entries are done, so
// the walker never waits for file content.
package archiver
