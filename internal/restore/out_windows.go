package restore

import (
	"errors"
	"os"
)

// outFile is a regular file open for its content.
type outFile struct{ f *os.File }

// dirFDs is the Unix writers' cache of open directories; on Windows
// files are opened by their paths.
type dirFDs struct{ rs *restorer }

func (d *dirFDs) close() {}

// open opens the target of f for writing; create makes it, and fails
// (fs.ErrExist) when something is there.
func (d *dirFDs) open(f *fileState, create bool) (*outFile, error) {
	flags := os.O_WRONLY
	if create {
		flags |= os.O_CREATE | os.O_EXCL
	}
	file, err := os.OpenFile(d.rs.dest(f.path), flags, 0o600)
	if err != nil {
		return nil, err
	}
	return &outFile{f: file}, nil
}

// writeAt writes the slices of bs one after another from off on.
func (o *outFile) writeAt(bs [][]byte, off int64) error {
	for _, b := range bs {
		if _, err := o.f.WriteAt(b, off); err != nil {
			return err
		}
		off += int64(len(b))
	}
	return nil
}

func (o *outFile) close() { o.f.Close() }

// finishOut gives the file its size when it ends in a hole (or its content
// was not all written), closes it, then sets the metadata of a whole file
// by its path (attributes and the security descriptor come last).
func (rs *restorer) finishOut(o *outFile, f *fileState) error {
	var errs []error
	if err := f.direct.writeEdges(o); err != nil { // none kept but on Linux
		f.failed.Store(true)
		errs = append(errs, err)
	}
	if f.holes.Load() || f.failed.Load() {
		if err := o.f.Truncate(int64(f.node.Size)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := o.f.Close(); err != nil {
		errs = append(errs, err)
	}
	if !f.failed.Load() && len(errs) == 0 {
		if err := rs.setMeta(f.path, f.node); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
