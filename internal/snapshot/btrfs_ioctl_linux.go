package snapshot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Raw btrfs ioctls (linux/btrfs.h); numbers checked against the kernel
// headers: _IOW/_IOWR(0x94, nr, 4096-byte argument structs).
const (
	iocSnapDestroy   = 0x5000940f // _IOW(0x94, 15, btrfs_ioctl_vol_args)
	iocTreeSearch    = 0xd0009411 // _IOWR(0x94, 17, btrfs_ioctl_search_args)
	iocInoLookup     = 0xd0009412 // _IOWR(0x94, 18, btrfs_ioctl_ino_lookup_args)
	iocSnapCreateV2  = 0x50009417 // _IOW(0x94, 23, btrfs_ioctl_vol_args_v2)
	iocSnapDestroyV2 = 0x5000943f // _IOW(0x94, 63, btrfs_ioctl_vol_args_v2)

	subvolRdonly      = 1 << 1
	firstFreeObjectID = 256 // inode number of every subvolume root
	rootTreeObjectID  = 1
	rootRefKey        = 156
)

type volArgs struct {
	fd   int64
	name [4088]byte
}

type volArgsV2 struct {
	fd      int64
	transid uint64
	flags   uint64
	unused  [4]uint64
	name    [4040]byte
}

type inoLookupArgs struct {
	treeid   uint64
	objectid uint64
	name     [4080]byte
}

type searchKey struct {
	treeID, minObjectID, maxObjectID uint64
	minOffset, maxOffset             uint64
	minTransid, maxTransid           uint64
	minType, maxType, nrItems, _     uint32
	_                                [4]uint64
}

type searchArgs struct {
	key searchKey
	buf [4096 - 104]byte
}

func ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
	if e != 0 {
		return e
	}
	return nil
}

func setName(dst []byte, name string) error {
	if len(name) >= len(dst) || name == "" || bytes.IndexByte([]byte(name), '/') >= 0 {
		return unix.EINVAL
	}
	copy(dst, name)
	return nil
}

// snapCreate makes a read-only snapshot of the subvolume open at srcFd as
// name inside the directory open at dstDirFd.
func snapCreate(dstDirFd, srcFd int, name string) error {
	var a volArgsV2
	a.fd = int64(srcFd)
	a.flags = subvolRdonly
	if err := setName(a.name[:], name); err != nil {
		return err
	}
	return ioctl(dstDirFd, iocSnapCreateV2, unsafe.Pointer(&a))
}

// snapDestroy deletes the subvolume name inside the directory at dirFd,
// with the v1 ioctl on kernels older than 5.7.
func snapDestroy(dirFd int, name string) error {
	var a volArgsV2
	if err := setName(a.name[:], name); err != nil {
		return err
	}
	err := ioctl(dirFd, iocSnapDestroyV2, unsafe.Pointer(&a))
	if !errors.Is(err, unix.ENOTTY) && !errors.Is(err, unix.EOPNOTSUPP) {
		return err
	}
	var v1 volArgs
	if err := setName(v1.name[:], name); err != nil {
		return err
	}
	return ioctl(dirFd, iocSnapDestroy, unsafe.Pointer(&v1))
}

// subvolID is the id of the subvolume holding the file open at fd.
func subvolID(fd int) (uint64, error) {
	a := inoLookupArgs{objectid: firstFreeObjectID}
	if err := ioctl(fd, iocInoLookup, unsafe.Pointer(&a)); err != nil {
		return 0, err
	}
	return a.treeid, nil
}

// inoPath is the path of directory ino relative to the root of subvolume
// tree ("" for the root itself, else with a trailing slash). Needs root.
func inoPath(fd int, tree, ino uint64) (string, error) {
	a := inoLookupArgs{treeid: tree, objectid: ino}
	if err := ioctl(fd, iocInoLookup, unsafe.Pointer(&a)); err != nil {
		return "", err
	}
	n := bytes.IndexByte(a.name[:], 0)
	if n < 0 {
		n = len(a.name)
	}
	return string(a.name[:n]), nil
}

// childRef is a subvolume directly inside another: its id, the inode of
// the directory holding it (in the parent) and its name there.
type childRef struct {
	id, dirID uint64
	name      string
}

// childSubvols lists the subvolumes directly inside subvolume parent by
// searching the root tree for ROOT_REF items (parent, ROOT_REF, child).
// Needs root.
func childSubvols(fd int, parent uint64) ([]childRef, error) {
	var out []childRef
	minOffset := uint64(0)
	for {
		var a searchArgs
		a.key = searchKey{treeID: rootTreeObjectID, minObjectID: parent, maxObjectID: parent,
			minOffset: minOffset, maxOffset: ^uint64(0), maxTransid: ^uint64(0),
			minType: rootRefKey, maxType: rootRefKey, nrItems: 4096}
		if err := ioctl(fd, iocTreeSearch, unsafe.Pointer(&a)); err != nil {
			return nil, err
		}
		if a.key.nrItems == 0 {
			return out, nil
		}
		buf := a.buf[:]
		for i := uint32(0); i < a.key.nrItems && len(buf) >= 32; i++ {
			// search header: transid, objectid, offset u64; type, len u32
			off := binary.NativeEndian.Uint64(buf[16:])
			typ := binary.NativeEndian.Uint32(buf[24:])
			n := int(binary.NativeEndian.Uint32(buf[28:]))
			item := buf[32:min(32+n, len(buf))]
			buf = buf[min(32+n, len(buf)):]
			minOffset = off + 1
			// btrfs_root_ref (little endian on disk): dirid, sequence u64, name_len u16, name
			if typ != rootRefKey || len(item) < 18 {
				continue
			}
			nl := int(binary.LittleEndian.Uint16(item[16:]))
			if 18+nl > len(item) {
				continue
			}
			out = append(out, childRef{id: off, dirID: binary.LittleEndian.Uint64(item[0:]),
				name: string(item[18 : 18+nl])})
		}
		if minOffset == 0 { // wrapped: the last possible offset was seen
			return out, nil
		}
	}
}
