package snapshot

import "github.com/stillpoint-backup/stillpoint/internal/view"

// stamped wraps a view of a snapshot: it reports the device number of the
// live subvolume instead of the snapshot's (which is new on every run), so
// incremental backups can still match files by device and inode, and it
// tags open files with the snapshot's consistency (see OriginOf).
type stamped struct {
	view.View
	dev uint64 // 0 keeps the snapshot's device
	c   Consistency
}

func (s *stamped) Lstat(p string) (*view.Stat, error) {
	st, err := s.View.Lstat(p)
	if st != nil && s.dev != 0 {
		st.Dev = s.dev
	}
	return st, err
}

func (s *stamped) Open(p string) (view.File, error) {
	f, err := s.View.Open(p)
	if err != nil {
		return nil, err
	}
	return &stampedFile{File: f, dev: s.dev, c: s.c}, nil
}

type stampedFile struct {
	view.File
	dev uint64
	c   Consistency
}

func (f *stampedFile) Stat() (*view.Stat, error) {
	st, err := f.File.Stat()
	if st != nil && f.dev != 0 {
		st.Dev = f.dev
	}
	return st, err
}

// Consistency tells OriginOf where the bytes come from.
func (f *stampedFile) Consistency() Consistency { return f.c }
