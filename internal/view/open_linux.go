package view

import (
	"io"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// openFile opens for reading without updating atime where the kernel
// allows it (O_NOATIME needs file ownership or CAP_FOWNER).
//
// The descriptor is used raw (fdFile), not through an *os.File: os.OpenFile
// tries to register every descriptor with the runtime's poller, which costs
// four fcntl and an epoll_ctl that fails for a regular file, per file.
//
// O_NONBLOCK makes the open itself safe when the path has become a FIFO
// since it was listed (a blocking open would wait for a writer); for a
// regular file the flag changes nothing (open(2): "this flag has no effect
// for regular files"), except that a file under a lease answers
// EWOULDBLOCK instead of waiting for the lease to be broken: then it is
// opened again without the flag, which waits as before.
func openFile(p string) (File, error) {
	const flags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK
	fd, err := openLeased(p, flags|unix.O_NOATIME)
	if err != nil {
		// EPERM without ownership; any other error is reported by the
		// plain open, as before
		fd, err = openLeased(p, flags)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	return newFdFile(fd, p), nil
}

// openLeased opens with flags, and without O_NONBLOCK when a lease makes
// the non-blocking open fail.
func openLeased(p string, flags int) (int, error) {
	fd, err := openRetry(p, flags)
	if err == unix.EWOULDBLOCK {
		fd, err = openRetry(p, flags&^unix.O_NONBLOCK)
	}
	return fd, err
}

func openRetry(p string, flags int) (int, error) {
	for {
		fd, err := unix.Open(p, flags, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// fdFile is an open file on a raw descriptor. It offers Fd for the lock
// probes of package livefile and Name like an *os.File.
type fdFile struct {
	fd   int
	name string
	off  int64
	// size is the size the last Stat saw, -1 before one: a short read that
	// reaches it is the end of the file (see Read).
	size int64
}

func newFdFile(fd int, name string) *fdFile {
	f := &fdFile{fd: fd, name: name, size: -1}
	// as os.File does: a file a caller forgot to close does not keep its
	// descriptor
	runtime.SetFinalizer(f, (*fdFile).Close)
	return f
}

// Read reads like read(2), retrying on EINTR. A read that returns fewer
// bytes than asked, at or past the size the last Stat saw, returns io.EOF
// with its bytes: on a regular file a short read is the end of the file at
// that moment, so the read that would only return 0 is saved. A file that
// grows after that short read, or did before it, is the caller's to see
// by a Stat after the read (its size, mtime and ctime move). A short read
// before that size (a file that shrank, a filesystem that returns short
// reads) is not taken for the end: the next Read tells.
func (f *fdFile) Read(p []byte) (int, error) {
	if f.fd < 0 {
		return 0, &os.PathError{Op: "read", Path: f.name, Err: os.ErrClosed}
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, err := unix.Read(f.fd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, &os.PathError{Op: "read", Path: f.name, Err: err}
		}
		if n == 0 {
			return 0, io.EOF
		}
		f.off += int64(n)
		if n < len(p) && f.size > 0 && f.off >= f.size {
			return n, io.EOF
		}
		return n, nil
	}
}

// Close implements io.Closer.
func (f *fdFile) Close() error {
	if f.fd < 0 {
		return &os.PathError{Op: "close", Path: f.name, Err: os.ErrClosed}
	}
	fd := f.fd
	f.fd = -1
	runtime.SetFinalizer(f, nil)
	if err := unix.Close(fd); err != nil {
		return &os.PathError{Op: "close", Path: f.name, Err: err}
	}
	return nil
}

// Stat implements File (fstat).
func (f *fdFile) Stat() (*Stat, error) {
	if f.fd < 0 {
		return nil, &os.PathError{Op: "fstat", Path: f.name, Err: os.ErrClosed}
	}
	var st unix.Stat_t
	if err := unix.Fstat(f.fd, &st); err != nil {
		return nil, &os.PathError{Op: "fstat", Path: f.name, Err: err}
	}
	s := fromUnix(&st)
	if s.Type == TypeRegular {
		f.size = s.Size
	}
	return s, nil
}

// Fd returns the descriptor, valid until Close.
func (f *fdFile) Fd() uintptr { return uintptr(f.fd) }

// Name returns the path the file was opened by.
func (f *fdFile) Name() string { return f.name }
