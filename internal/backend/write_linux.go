package backend

import (
	"errors"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Files of at least directMin bytes (packs) are written past the page cache.
// Nobody reads a pack soon after writing it, and the fsync that follows
// waits for the disk either way. Through the cache the kernel would first
// copy every byte into newly allocated pages (a third of a backup's CPU on a
// virtual machine whose free memory is given back to the host) and then
// hold megabytes of packs there, pushing out pages the applications being
// backed up still use.
const (
	directMin   = 1 << 20
	directAlign = 4096 // the logical block size of every disk in use, or a multiple of it
)

// directState is set once the folder's file system refused a write, or a
// read, past the page cache.
type directState struct{ noDirect, noDirectRead atomic.Bool }

// writeSynced writes data to the new, empty file f and fsyncs it. The
// aligned bulk of a large file goes with O_DIRECT and only the tail of less
// than a block through the page cache. A file system that takes no direct
// I/O (or not at this alignment) gets the whole file through the cache, and
// is not asked again.
func (d *directState) writeSynced(f *os.File, data []byte) error {
	bulk := len(data) &^ (directAlign - 1)
	written := 0
	if bulk >= directMin && !d.noDirect.Load() && aligned(data) {
		n, err := directWriter(f, data[:bulk])
		switch {
		case err == nil:
			written = n
		case errors.Is(err, unix.EINVAL):
			d.noDirect.Store(true)
		default:
			return err
		}
	}
	if _, err := f.WriteAt(data[written:], int64(written)); err != nil {
		return err
	}
	return f.Sync()
}

func aligned(b []byte) bool { return addrOf(b)%directAlign == 0 }

func addrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

// directWriter is writeDirect; tests replace it to see a refusal.
var directWriter = writeDirect

// writeDirect writes the aligned data at the start of f with O_DIRECT set,
// and clears the flag again. EINVAL means the file system refused direct
// I/O, or this alignment; what was written is then to be written again.
func writeDirect(f *os.File, data []byte) (int, error) {
	fd := int(f.Fd())
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return 0, err
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags|unix.O_DIRECT); err != nil {
		return 0, err
	}
	n := 0
	for n < len(data) && err == nil {
		var w int
		w, err = unix.Pwrite(fd, data[n:], int64(n))
		if w > 0 {
			n += w
		}
		if err == unix.EINTR {
			err = nil
		}
	}
	if _, cerr := unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags); err == nil {
		err = cerr
	}
	if err != nil {
		return n, &os.PathError{Op: "write", Path: f.Name(), Err: err}
	}
	return n, nil
}

// dropRead tells the kernel it may drop the pages of a long range of a
// pack just read. A pack is read once (a restore, a check, a repack): its
// pages are better freed at once, where the next reads take them again,
// than kept in place of the applications' pages while new memory is found
// for the next packs. On a virtual machine that gives free memory back to
// its host, new memory costs a fault in the host per page; a 4 GiB restore
// spent most of its system time there.
func dropRead(f *os.File, offset int64, n int) {
	if n >= directMin {
		_ = unix.Fadvise(int(f.Fd()), offset, int64(n), unix.FADV_DONTNEED)
	}
}
