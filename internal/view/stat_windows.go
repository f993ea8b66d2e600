package view

import (
	"os"
)

func fromFileInfo(fi os.FileInfo) *Stat {
	s := &Stat{
		Mode:  uint32(fi.Mode().Perm()),
		Size:  fi.Size(),
		Mtime: fi.ModTime(),
		Ctime: fi.ModTime(),
		Atime: fi.ModTime(),
		Nlink: 1,
	}
	switch {
	case fi.Mode().IsRegular():
		s.Type = TypeRegular
	case fi.IsDir():
		s.Type = TypeDir
	case fi.Mode()&os.ModeSymlink != 0:
		s.Type = TypeSymlink
	case fi.Mode()&os.ModeNamedPipe != 0:
		s.Type = TypeFIFO
	case fi.Mode()&os.ModeDevice != 0:
		s.Type = TypeDevice
	default:
		s.Type = TypeRegular
	}
	return s
}

func lstat(p string) (*Stat, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	return fromFileInfo(fi), nil
}

func fstat(f *os.File) (*Stat, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return fromFileInfo(fi), nil
}

func xattrs(string) ([]Xattr, error) { return nil, nil }
