package view

import (
	"os"

	"github.com/stillpoint-backup/stillpoint/internal/winmeta"
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

// withInfo adds what Windows says of the file by handle: attributes,
// creation and change time, volume serial and file index. With them the
// archiver's change detection compares size, mtime, change time and file
// index, as on Unix.
func withInfo(s *Stat, in *winmeta.Info) *Stat {
	s.Attrs = in.Attrs
	s.Created = in.Created
	s.Mtime, s.Ctime, s.Atime = in.Modified, in.Change, in.Accessed
	s.Dev, s.Ino = uint64(in.Volume), in.Index
	s.Nlink = uint64(max(in.Links, 1))
	if s.Type == TypeRegular {
		s.Size = in.Size
	}
	return s
}

func lstat(p string) (*Stat, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	s := fromFileInfo(fi)
	// The type comes from Go's Lstat (which knows reparse tags), the rest
	// from the handle; where the file cannot be opened even for its
	// attributes, Go's data is what there is.
	if in, err := winmeta.Lstat(p); err == nil {
		withInfo(s, in)
	}
	return s, nil
}

func fstat(f *os.File) (*Stat, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	s := fromFileInfo(fi)
	if in, err := winmeta.Stat(f); err == nil {
		withInfo(s, in)
	}
	return s, nil
}

func xattrs(string) ([]Xattr, error) { return nil, nil }
