// Package mount serves a repository's snapshots as a read-only file
// system (FUSE, Linux only):
//
//	snapshots/<time>/<original path>   one directory per snapshot
//	latest                             a symlink to the newest snapshot
//	ids/<short id>                     symlinks to snapshots/<time>
//	hosts/<host>/<time>/               the snapshots of one host (and latest)
//	tags/<tag>/<time>/                 the snapshots with one tag (and latest)
//
// Directories are read from the repository when they are first looked at,
// and a read fetches only the blobs that cover the bytes asked for,
// through a bounded cache ([Cache]). Once a file of a directory is read,
// the small files after it are loaded and handed to the kernel's page
// cache ahead of the reader (push_linux.go), so a copy of many small files
// does not wait for a read request per file. Every file and directory of a
// snapshot carries the extended attribute user.stillpoint.outcome (and
// user.stillpoint.reason when there is one) beside its own stored ones.
//
// The process's soft memory limit follows its live heap
// ([StartMemoryPolicy], memory.go): freed memory goes back to the system
// soon after a peak, and a snapshot of many inodes only raises the limit.
//
// The snapshot list is read again when a listing of snapshots/, hosts/,
// tags/ or ids/ finds it older than a few seconds, so new backups appear
// without remounting; the index files they add are read with it.
package mount
