package snapshot

import (
	"errors"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/stillpoint-backup/stillpoint/internal/view"
)

var live = &view.Live{}

// reflinkView serves clones for cloned files and live entries otherwise.
type reflinkView struct{ s *reflinkSnapshot }

func (v *reflinkView) lookup(p string) (clone, bool) {
	v.s.mu.Lock()
	defer v.s.mu.Unlock()
	c, ok := v.s.clones[filepath.Clean(p)]
	return c, ok
}

func (v *reflinkView) Lstat(p string) (*view.Stat, error) {
	if c, ok := v.lookup(p); ok {
		st := c.stat
		return &st, nil
	}
	return live.Lstat(p)
}

func (v *reflinkView) ReadDir(p string) ([]string, error)    { return live.ReadDir(p) }
func (v *reflinkView) Readlink(p string) (string, error)     { return live.Readlink(p) }
func (v *reflinkView) Xattrs(p string) ([]view.Xattr, error) { return live.Xattrs(p) }

func (v *reflinkView) Open(p string) (view.File, error) {
	if c, ok := v.lookup(p); ok {
		f, err := os.Open(c.staged)
		if err != nil {
			return nil, err
		}
		st := c.stat
		return &clonedFile{File: f, stat: &st}, nil
	}
	if v.s.cloneOnOpen {
		f, st, err := cloneFile(p, v.s.dir)
		if err == nil {
			return &clonedFile{File: f, stat: st}, nil
		}
		if !cannotClone(err) {
			return nil, err
		}
	}
	return live.Open(p)
}

// cannotClone: the file is fine but not clonable here, so read it live.
func cannotClone(err error) bool {
	return errors.Is(err, errNotRegular) || errors.Is(err, unix.EXDEV) ||
		errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) ||
		errors.Is(err, unix.ETXTBSY) || errors.Is(err, unix.EPERM)
}

var errNotRegular = errors.New("not a regular file")

// cloneFile clones path into an unnamed file in dir and returns it open at
// offset 0, with the metadata the live file had when cloned. The clone is
// one state of the file (FICLONE excludes writers while it runs), so it is
// never taken again: each clone stalls the file's writers. When the file
// was written during the clone, the metadata is the one from before it,
// which is not later than the bytes: the next backup then sees the file
// changed and reads it again, instead of taking metadata that a write
// after the clone produced for bytes without that write.
func cloneFile(path, dir string) (*os.File, *view.Stat, error) {
	before, err := live.Lstat(path)
	if err != nil {
		return nil, nil, err
	}
	if before.Type != view.TypeRegular {
		return nil, nil, &os.PathError{Op: "clone", Path: path, Err: errNotRegular}
	}
	dst, err := cloneOnce(path, dir)
	if err != nil {
		return nil, nil, err
	}
	if testHookCloned != nil {
		testHookCloned(path)
	}
	st := before
	if after, err := live.Lstat(path); err == nil && sameState(before, after) {
		st = after
	}
	var cs unix.Stat_t
	if err := unix.Fstat(int(dst.Fd()), &cs); err == nil {
		st.Size, st.Blocks = cs.Size, cs.Blocks
	}
	return dst, st, nil
}

// testHookCloned, when set by a test, runs right after each clone.
var testHookCloned func(path string)

func cloneOnce(path, dir string) (*os.File, error) {
	src, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NOATIME, 0)
	if errors.Is(err, unix.EPERM) { // O_NOATIME needs ownership or CAP_FOWNER
		src, err = os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	}
	if err != nil {
		return nil, err
	}
	defer src.Close()
	// FICLONE writes back the file's dirty pages under its inode lock,
	// where a writer waits for it (384 ms for a 1 GiB file being written,
	// in the torture benchmark). Writing them back first, without the
	// lock, leaves the clone only what was dirtied in the last moment. An
	// error here only makes the clone slower.
	_ = unix.SyncFileRange(int(src.Fd()), 0, 0,
		unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, &os.PathError{Op: "open O_TMPFILE", Path: dir, Err: err}
	}
	if err := unix.IoctlFileClone(fd, int(src.Fd())); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "FICLONE", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

func sameState(a, b *view.Stat) bool {
	return a.Ino == b.Ino && a.Size == b.Size && a.Mtime.Equal(b.Mtime) && a.Ctime.Equal(b.Ctime)
}

// clonedFile is a clone, read with the live file's metadata.
type clonedFile struct {
	*os.File
	stat *view.Stat
}

func (f *clonedFile) Stat() (*view.Stat, error) {
	st := *f.stat
	return &st, nil
}

// Consistency tells OriginOf that the bytes are a per-file clone.
func (f *clonedFile) Consistency() Consistency { return File }
