//go:build unix

package restore

import (
	"errors"
	"fmt"
	"io/fs"
	"path"

	"golang.org/x/sys/unix"
)

// outFile is a regular file open for its content: a plain descriptor, so
// that opening it costs one system call (os.File would add the poller's
// fcntl and epoll_ctl calls, twice per file).
type outFile struct{ fd int }

// dirFDCache is how many target directories one writer keeps open: the
// blobs of a pack belong to a few neighbouring directories.
const dirFDCache = 8

// dirFDs keeps a few target directories open, so files are created
// relative to them rather than by their whole path. It belongs to one
// goroutine.
type dirFDs struct {
	rs   *restorer
	dirs [dirFDCache]string
	fds  [dirFDCache]int
	n    int
	next int // the slot to reuse when all are taken
}

// at is an open descriptor of original directory dir, or -1.
func (d *dirFDs) at(dir string) int {
	for i := range d.n {
		if d.dirs[i] == dir {
			return d.fds[i]
		}
	}
	fd, err := retryEINTR(func() (int, error) {
		return unix.Open(d.rs.dest(dir), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return -1 // the file is opened by its whole path
	}
	i := d.n
	if i < dirFDCache {
		d.n++
	} else {
		i = d.next
		d.next = (d.next + 1) % dirFDCache
		unix.Close(d.fds[i])
	}
	d.dirs[i], d.fds[i] = dir, fd
	return fd
}

func (d *dirFDs) close() {
	for i := range d.n {
		unix.Close(d.fds[i])
	}
	d.n, d.next = 0, 0
}

// open opens the target of fs for writing; create makes it, and fails
// (fs.ErrExist) when something is there.
func (d *dirFDs) open(f *fileState, create bool) (*outFile, error) {
	flags := unix.O_WRONLY | unix.O_CLOEXEC
	mode := uint32(0o600)
	if create {
		flags |= unix.O_CREAT | unix.O_EXCL
		mode, f.made = d.rs.creation(f)
	}
	dir, name := path.Split(f.path)
	dfd := d.at(dir)
	fd, err := retryEINTR(func() (int, error) {
		if dfd < 0 {
			return unix.Open(d.rs.dest(f.path), flags, mode)
		}
		return unix.Openat(dfd, name, flags, mode)
	})
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: d.rs.dest(f.path), Err: err}
	}
	return &outFile{fd: fd}, nil
}

// writeAt writes the slices of bs one after another from off on.
func (o *outFile) writeAt(bs [][]byte, off int64) error {
	for len(bs) > 0 {
		n, err := retryEINTR(func() (int, error) { return pwritev(o.fd, bs, off) })
		if err != nil {
			return err
		}
		if n == 0 {
			return errors.New("short write")
		}
		off += int64(n)
		for len(bs) > 0 && n >= len(bs[0]) {
			n -= len(bs[0])
			bs = bs[1:]
		}
		if n > 0 {
			bs = append([][]byte{bs[0][n:]}, bs[1:]...)
		}
	}
	return nil
}

func (o *outFile) close() { unix.Close(o.fd) }

// finishOut gives the file its size when it ends in a hole (or its content
// was not all written), sets the metadata of a whole file through the
// descriptor and closes it: a close can report a write that failed.
func (rs *restorer) finishOut(o *outFile, f *fileState) error {
	var errs []error
	if err := f.direct.writeEdges(o); err != nil {
		f.failed.Store(true)
		errs = append(errs, fmt.Errorf("cannot write the file: %w", &fs.PathError{Op: "write", Path: rs.dest(f.path), Err: err}))
	}
	if f.holes.Load() || f.failed.Load() {
		if err := unix.Ftruncate(o.fd, int64(f.node.Size)); err != nil {
			errs = append(errs, &fs.PathError{Op: "truncate", Path: rs.dest(f.path), Err: err})
		}
	}
	if !f.failed.Load() {
		if err := rs.setMetaFD(o.fd, f); err != nil {
			errs = append(errs, err)
		}
	} else if f.made&setMode != 0 {
		// not the file it should be: not its mode either
		if err := unix.Fchmod(o.fd, 0o600); err != nil {
			errs = append(errs, &fs.PathError{Op: "chmod", Path: rs.dest(f.path), Err: err})
		}
	}
	if err := unix.Close(o.fd); err != nil {
		errs = append(errs, &fs.PathError{Op: "close", Path: rs.dest(f.path), Err: err})
	}
	return errors.Join(errs...)
}

// retryEINTR calls fn again while a signal interrupts it, as package os
// does.
func retryEINTR(fn func() (int, error)) (int, error) {
	for {
		n, err := fn()
		if err != unix.EINTR {
			return n, err
		}
	}
}
