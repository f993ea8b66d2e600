package backend

import (
	"errors"
	"io"
	"unsafe"

	"github.com/stillpoint-backup/stillpoint/internal/bufs"
	"golang.org/x/sys/unix"
)

// directMin is the least a read must be to go past the page cache: below
// it the copy out of the cache costs less than the extra system calls.
const directMin = 1 << 20

// loadDirect reads buf from the file at path, offset on, when the buffer
// lies in memory as the offset lies in a page (bufs.Aligned), is large and
// the page cache holds next to none of the range: the page-aligned middle is read
// with O_DIRECT straight into buf, the unaligned ends through the cache. A restore
// reads each pack once: through the cache it would cost the kernel a copy
// and the cache's bookkeeping for every page, and evict what the machine
// uses. done is false when the range is not for this (the caller reads it
// as usual); err is then nil.
func (l *Local) loadDirect(path string, offset int64, buf []byte) (done bool, err error) {
	if len(buf) < directMin || l.noDirect.Load() ||
		uintptr(unsafe.Pointer(unsafe.SliceData(buf)))%bufs.IOAlign != uintptr(offset%bufs.IOAlign) {
		return false, nil
	}
	fd, err := openRetry(path, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return false, nil // the caller opens it again and says why it cannot
	}
	defer unix.Close(fd)
	if !uncached(fd, offset, int64(len(buf))) {
		return false, nil
	}
	pos, b := offset, buf
	head := min(int((bufs.IOAlign-pos%bufs.IOAlign)%bufs.IOAlign), len(b))
	middle := (len(b) - head) &^ (bufs.IOAlign - 1)
	if middle == 0 {
		return true, preadFull(fd, b, pos)
	}
	dfd, err := openRetry(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_DIRECT)
	if errors.Is(err, unix.EINVAL) {
		l.noDirect.Store(true) // a file system without O_DIRECT (tmpfs before 6.6)
		return true, preadFull(fd, b, pos)
	}
	if err != nil {
		return true, err
	}
	defer unix.Close(dfd)
	if err := preadFull(fd, b[:head], pos); err != nil {
		return true, err
	}
	err = preadFull(dfd, b[head:head+middle], pos+int64(head))
	if errors.Is(err, unix.EINVAL) {
		l.noDirect.Store(true)
		err = preadFull(fd, b[head:head+middle], pos+int64(head))
	}
	if err != nil {
		return true, err
	}
	l.directReads.Add(1)
	return true, preadFull(fd, b[head+middle:], pos+int64(head+middle))
}

func preadFull(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := retryIntr(func() (int, error) { return unix.Pread(fd, b, off) })
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrUnexpectedEOF
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

func openRetry(path string, flags int) (int, error) {
	return retryIntr(func() (int, error) { return unix.Open(path, flags, 0) })
}

func retryIntr(fn func() (int, error)) (int, error) {
	for {
		n, err := fn()
		if !errors.Is(err, unix.EINTR) {
			return n, err
		}
	}
}

// cachestatRange and cachestatResult are the kernel's struct
// cachestat_range and struct cachestat (Linux 6.5).
type cachestatRange struct{ off, len uint64 }

type cachestatResult struct {
	cache, dirty, writeback, evicted, recentlyEvicted uint64
}

// uncached says whether the page cache holds (almost) none of the range, asked
// without reading it (cachestat): a read that must not wait (RWF_NOWAIT)
// would start the readahead of what it does not find, and the direct read
// after it would read the same data a second time. On a kernel without
// cachestat it says false, and reads go through the cache as before.
func uncached(fd int, off, n int64) bool {
	r := cachestatRange{uint64(off), uint64(n)}
	var st cachestatResult
	_, _, e := unix.Syscall6(unix.SYS_CACHESTAT, uintptr(fd), uintptr(unsafe.Pointer(&r)), uintptr(unsafe.Pointer(&st)), 0, 0, 0)
	// a page or two may be there: the ends of an earlier read of the pack
	return e == 0 && st.cache*bufs.IOAlign < uint64(n)/8
}
