package view

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
)

// Live reads the filesystem as it is now. Original paths are repository
// paths (package pathmap): on Unix the OS path itself, on Windows
// /C/data/x for C:\data\x. With a non-empty Root, original paths are
// mapped below Root: original "/srv/data/x" is read from
// Root+"/srv/data/x" after stripping Strip; this is how a snapshot mounted
// elsewhere is read under original paths.
type Live struct {
	// Strip is the original path prefix that Root replaces ("" keeps paths as they are).
	Strip string
	Root  string
}

// Path maps an original path to the path that is really read.
func (l *Live) Path(orig string) string {
	if pathmap.Native.IsWindows() {
		if op, ok := pathmap.Native.ToOS(orig); ok {
			orig = pathmap.Native.Long(op)
		}
	}
	if l == nil || l.Root == "" {
		return orig
	}
	rel := strings.TrimPrefix(orig, l.Strip)
	if rel == orig && l.Strip != "" {
		return orig
	}
	return filepath.Join(l.Root, rel)
}

// Lstat implements View. A virtual directory of the tree (on Windows "/"
// above the drives, "/UNC" and "/UNC/server" above the shares) is a
// directory with no metadata of its own.
func (l *Live) Lstat(p string) (*Stat, error) {
	if pathmap.Native.Virtual(p) {
		epoch := time.Unix(0, 0) // the zero time.Time has no UnixNano
		return &Stat{Type: TypeDir, Mode: 0o755, Nlink: 1, Mtime: epoch, Ctime: epoch, Atime: epoch}, nil
	}
	return lstat(l.Path(p))
}

// ReadDir implements View.
func (l *Live) ReadDir(p string) ([]string, error) {
	f, err := os.Open(l.Path(p))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
}

// Readlink implements View.
func (l *Live) Readlink(p string) (string, error) { return os.Readlink(l.Path(p)) }

// Xattrs implements View.
func (l *Live) Xattrs(p string) ([]Xattr, error) { return xattrs(l.Path(p)) }

// Open implements View.
func (l *Live) Open(p string) (File, error) { return openFile(l.Path(p)) }
