//go:build linux

package mount

import (
	"hash/fnv"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"golang.org/x/sys/unix"
)

// Snapshot content never changes: the kernel may keep its names and
// attributes long. The directories above it change as snapshots come and go.
const (
	contentTimeout = time.Hour
	virtualTimeout = time.Second
)

// inoFor derives a stable inode number from its parts. Numbers stay below
// 2^63, where go-fuse's automatic ones begin, and above the root's 1.
func inoFor(parts ...any) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		switch v := p.(type) {
		case string:
			h.Write([]byte(v))
		case uint64:
			var b [8]byte
			for i := range b {
				b[i] = byte(v >> (8 * i))
			}
			h.Write(b[:])
		case repo.ID:
			h.Write(v[:])
		}
		h.Write([]byte{0})
	}
	ino := h.Sum64() &^ (1 << 63)
	if ino < 2 {
		ino += 2
	}
	return ino
}

func typeBits(t repo.NodeType) uint32 {
	switch t {
	case repo.NodeDir:
		return syscall.S_IFDIR
	case repo.NodeSymlink:
		return syscall.S_IFLNK
	case repo.NodeDevice:
		return syscall.S_IFBLK
	case repo.NodeCharDevice:
		return syscall.S_IFCHR
	case repo.NodeFIFO:
		return syscall.S_IFIFO
	case repo.NodeSocket:
		return syscall.S_IFSOCK
	}
	return syscall.S_IFREG
}

// setTimes sets a, m and c time; ns since the epoch.
func setTimes(a *fuse.Attr, mtime, ctime int64) {
	a.Mtime, a.Mtimensec = uint64(mtime/1e9), uint32(mtime%1e9)
	a.Atime, a.Atimensec = a.Mtime, a.Mtimensec
	if ctime == 0 {
		ctime = mtime
	}
	a.Ctime, a.Ctimensec = uint64(ctime/1e9), uint32(ctime%1e9)
}

// nodeAttr fills a from a tree node; allocated is the bytes of a file that
// are not in holes (negative: all of them).
func nodeAttr(n *repo.Node, a *fuse.Attr, allocated int64) {
	a.Mode = typeBits(n.Type) | n.Mode&07777
	a.Size = n.Size
	if n.Type == repo.NodeSymlink {
		a.Size = uint64(len(n.LinkTarget))
	}
	if n.Type == repo.NodeDir {
		a.Size = 4096
	}
	setTimes(a, n.Mtime, n.Ctime)
	a.Uid, a.Gid = n.UID, n.GID
	a.Nlink = 1
	if n.Type == repo.NodeFile && n.Links > 1 {
		a.Nlink = uint32(n.Links)
	}
	if n.Type == repo.NodeDevice || n.Type == repo.NodeCharDevice {
		a.Rdev = kernelDev(n.Rdev)
	}
	if allocated < 0 {
		allocated = int64(a.Size)
	}
	a.Blocks = (uint64(allocated) + 511) / 512
	a.Blksize = 1 << 20
}

// kernelDev encodes a device number (as stat gave it) the way the FUSE
// protocol's 32 bits carry it (the kernel's new_encode_dev).
func kernelDev(rdev uint64) uint32 {
	major, minor := unix.Major(rdev), unix.Minor(rdev)
	return minor&0xff | major<<8 | (minor&^0xff)<<12
}

// dirAttr is the attributes of a directory made up by the mount.
func dirAttr(a *fuse.Attr, t time.Time) {
	a.Mode = syscall.S_IFDIR | 0o555
	a.Nlink = 1
	a.Size = 4096
	setTimes(a, t.UnixNano(), 0)
}
