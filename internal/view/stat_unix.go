//go:build unix

package view

import (
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

func fromUnix(st *unix.Stat_t) *Stat {
	s := &Stat{
		Mode:   uint32(st.Mode) & 07777,
		Size:   st.Size,
		Mtime:  time.Unix(int64(st.Mtim.Sec), int64(st.Mtim.Nsec)),
		Ctime:  time.Unix(int64(st.Ctim.Sec), int64(st.Ctim.Nsec)),
		Atime:  time.Unix(int64(st.Atim.Sec), int64(st.Atim.Nsec)),
		Uid:    st.Uid,
		Gid:    st.Gid,
		Ino:    uint64(st.Ino),
		Dev:    uint64(st.Dev),
		Nlink:  uint64(st.Nlink),
		Rdev:   uint64(st.Rdev),
		Blocks: int64(st.Blocks),
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		s.Type = TypeRegular
	case unix.S_IFDIR:
		s.Type = TypeDir
	case unix.S_IFLNK:
		s.Type = TypeSymlink
	case unix.S_IFBLK:
		s.Type = TypeDevice
	case unix.S_IFCHR:
		s.Type = TypeCharDevice
	case unix.S_IFIFO:
		s.Type = TypeFIFO
	case unix.S_IFSOCK:
		s.Type = TypeSocket
	}
	return s
}

func lstat(p string) (*Stat, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return nil, &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	return fromUnix(&st), nil
}

func xattrs(p string) ([]Xattr, error) {
	buf := make([]byte, 4096)
	var n int
	var err error
	for {
		n, err = unix.Llistxattr(p, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, len(buf)*4)
			continue
		}
		break
	}
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
			return nil, nil
		}
		return nil, &os.PathError{Op: "listxattr", Path: p, Err: err}
	}
	var out []Xattr
	for _, name := range splitNul(buf[:n]) {
		val, err := getxattr(p, name)
		if err != nil {
			if errors.Is(err, unix.ENODATA) {
				continue
			}
			return nil, &os.PathError{Op: "getxattr " + name, Path: p, Err: err}
		}
		out = append(out, Xattr{Name: name, Value: val})
	}
	return out, nil
}

func getxattr(p, name string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(p, name, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, len(buf)*8)
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

func splitNul(b []byte) []string {
	var names []string
	start := 0
	for i, c := range b {
		if c == 0 {
			if i > start {
				names = append(names, string(b[start:i]))
			}
			start = i + 1
		}
	}
	return names
}
