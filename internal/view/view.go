// Package view is the read-only window through which the archiver sees the
// files of a backup. Every path given to a View is an original path (the path
// the user named); where the bytes really come from (the live filesystem, a
// btrfs snapshot, a reflink clone, a staged copy) is the view's business.
package view

import (
	"io"
	"time"
)

// FileType is the kind of a filesystem entry.
type FileType uint8

// File types recorded in a backup.
const (
	TypeRegular FileType = iota + 1
	TypeDir
	TypeSymlink
	TypeDevice     // block device
	TypeCharDevice // character device
	TypeFIFO
	TypeSocket
)

// Stat is the metadata the archiver records and compares. Ino, Dev and Ctime
// let an incremental backup skip unchanged files.
type Stat struct {
	Type   FileType
	Mode   uint32 // permission bits plus setuid/setgid/sticky (07777)
	Size   int64
	Mtime  time.Time
	Ctime  time.Time
	Atime  time.Time
	Uid    uint32
	Gid    uint32
	Ino    uint64
	Dev    uint64
	Nlink  uint64
	Rdev   uint64
	Blocks int64 // 512-byte blocks allocated, to spot sparse files
	// Windows only: FILE_ATTRIBUTE_* and the creation time (zero elsewhere).
	// There Ctime is the change time and Ino the file index, where the
	// file system has them.
	Attrs   uint32
	Created time.Time
}

// Xattr is one extended attribute.
type Xattr struct {
	Name  string
	Value []byte
}

// File is an open regular file.
type File interface {
	io.Reader
	io.Closer
	// Stat returns the metadata of the open file (fstat), so a reader can
	// see whether the file changed while it was read.
	Stat() (*Stat, error)
}

// View is a read-only window onto files addressed by original path.
// Implementations must be safe for concurrent use.
type View interface {
	Lstat(path string) (*Stat, error)
	// ReadDir returns the names in a directory, sorted bytewise.
	ReadDir(path string) ([]string, error)
	Readlink(path string) (string, error)
	// Xattrs returns the extended attributes of path (not following links);
	// a filesystem without xattr support yields none and no error.
	Xattrs(path string) ([]Xattr, error)
	Open(path string) (File, error)
}
