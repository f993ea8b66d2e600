package restore

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

// tarSink writes a POSIX.1-2001 (pax) tar: modes with setuid, setgid and
// sticky bits, uids and gids, modification and change times to the
// nanosecond, symlinks, hard links (as links to the first path), devices,
// fifos, and extended attributes as SCHILY.xattr records (GNU tar and
// bsdtar restore them with --xattrs). Sockets cannot be archived.
type tarSink struct {
	bw *bufio.Writer
	tw *tar.Writer
}

func newTarSink(w io.Writer) *tarSink {
	// headers are 512-byte blocks: buffer them rather than write each alone
	bw := bufio.NewWriterSize(w, 256<<10)
	return &tarSink{bw: bw, tw: tar.NewWriter(bw)}
}

func (s *tarSink) name() string               { return "tar" }
func (s *tarSink) hardLinks() bool            { return true }
func (s *tarSink) holds(t repo.NodeType) bool { return t != repo.NodeSocket }

func (s *tarSink) begin(e *dumpEntry) error {
	n := e.node
	h := &tar.Header{
		Name:       archiveName(e.path, n.Type == repo.NodeDir),
		Mode:       int64(n.Mode & 0o7777),
		Uid:        int(n.UID),
		Gid:        int(n.GID),
		ModTime:    time.Unix(0, n.Mtime),
		ChangeTime: time.Unix(0, n.Ctime),
		Format:     tar.FormatPAX,
	}
	switch {
	case e.linkTo != "":
		h.Typeflag, h.Linkname = tar.TypeLink, archiveName(e.linkTo, false)
	case n.Type == repo.NodeFile:
		h.Typeflag, h.Size = tar.TypeReg, int64(n.Size)
	case n.Type == repo.NodeDir:
		h.Typeflag = tar.TypeDir
	case n.Type == repo.NodeSymlink:
		h.Typeflag, h.Linkname = tar.TypeSymlink, n.LinkTarget
	case n.Type == repo.NodeDevice:
		h.Typeflag = tar.TypeBlock
		h.Devmajor, h.Devminor = devMajor(n.Rdev), devMinor(n.Rdev)
	case n.Type == repo.NodeCharDevice:
		h.Typeflag = tar.TypeChar
		h.Devmajor, h.Devminor = devMajor(n.Rdev), devMinor(n.Rdev)
	case n.Type == repo.NodeFIFO:
		h.Typeflag = tar.TypeFifo
	default:
		return fmt.Errorf("%s: a %s cannot be archived", e.path, n.Type)
	}
	if len(n.Xattrs) > 0 {
		h.PAXRecords = make(map[string]string, len(n.Xattrs))
		for _, x := range n.Xattrs {
			h.PAXRecords["SCHILY.xattr."+x.Name] = string(x.Value)
		}
	}
	return s.tw.WriteHeader(h)
}

func (s *tarSink) write(p []byte) error {
	_, err := s.tw.Write(p)
	return err
}

func (s *tarSink) end(*dumpEntry) error { return nil }

func (s *tarSink) close() error {
	if err := s.tw.Close(); err != nil {
		return err
	}
	return s.bw.Flush()
}

// devMajor and devMinor split a device number as Linux encodes it (the
// encoding the backup stored).
func devMajor(dev uint64) int64 { return int64((dev>>8)&0xfff | (dev>>32)&^0xfff) }
func devMinor(dev uint64) int64 { return int64(dev&0xff | (dev>>12)&^0xff) }

// zipSink writes a zip: files (deflated), directories and symlinks with
// their modes and modification times. Zip has no owners, hard links,
// devices or fifos: hard links are written as copies, the others left out.
type zipSink struct {
	bw  *bufio.Writer
	zw  *zip.Writer
	cur io.Writer
}

func newZipSink(w io.Writer) *zipSink {
	bw := bufio.NewWriterSize(w, 256<<10)
	return &zipSink{bw: bw, zw: zip.NewWriter(bw)}
}

func (s *zipSink) name() string    { return "zip" }
func (s *zipSink) hardLinks() bool { return false }
func (s *zipSink) holds(t repo.NodeType) bool {
	return t == repo.NodeFile || t == repo.NodeDir || t == repo.NodeSymlink
}

func (s *zipSink) begin(e *dumpEntry) error {
	n := e.node
	h := &zip.FileHeader{Name: archiveName(e.path, n.Type == repo.NodeDir), Modified: time.Unix(0, n.Mtime), Method: zip.Store}
	mode := fs.FileMode(n.Mode & 0o777)
	switch n.Type {
	case repo.NodeDir:
		mode |= fs.ModeDir
	case repo.NodeSymlink:
		mode |= fs.ModeSymlink
	case repo.NodeFile:
		h.Method = zip.Deflate
	}
	if n.Mode&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if n.Mode&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if n.Mode&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	h.SetMode(mode)
	w, err := s.zw.CreateHeader(h)
	if err != nil {
		return err
	}
	s.cur = w
	if n.Type == repo.NodeSymlink {
		_, err = io.WriteString(w, n.LinkTarget)
	}
	return err
}

func (s *zipSink) write(p []byte) error {
	_, err := s.cur.Write(p)
	return err
}

func (s *zipSink) end(*dumpEntry) error { return nil }

func (s *zipSink) close() error {
	if err := s.zw.Close(); err != nil {
		return err
	}
	return s.bw.Flush()
}
