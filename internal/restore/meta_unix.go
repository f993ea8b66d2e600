//go:build unix

package restore

import (
	"errors"
	"fmt"
	"os"

	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/winmeta"
	"golang.org/x/sys/unix"
)

func (rs *restorer) special(dst string, n *repo.Node) error {
	switch n.Type {
	case repo.NodeSymlink:
		return os.Symlink(n.LinkTarget, dst)
	case repo.NodeFIFO:
		return unix.Mkfifo(dst, n.Mode&07777)
	case repo.NodeDevice, repo.NodeCharDevice, repo.NodeSocket:
		if !rs.isRoot {
			return fmt.Errorf("%s not restored: creating it needs root", n.Type)
		}
		mode := uint32(unix.S_IFBLK)
		switch n.Type {
		case repo.NodeCharDevice:
			mode = unix.S_IFCHR
		case repo.NodeSocket:
			mode = unix.S_IFSOCK
		}
		return unix.Mknod(dst, mode|n.Mode&07777, int(n.Rdev))
	}
	return fmt.Errorf("unknown node type %d", n.Type)
}

// setMeta restores owner (as root), mode, extended attributes and times,
// in that order: chown clears setuid bits and xattrs touch ctime, not mtime.
// A node recorded on Windows (it has attributes: every Windows file has
// one) keeps the restoring user as owner and gets winmeta.UnixMode; what
// else it had is said in one note at the end. Directories and special
// files get theirs by path; regular files through their descriptor
// (setMetaFD).
func (rs *restorer) setMeta(p string, n *repo.Node) error {
	dst := rs.dest(p)
	var errs []error
	mode, chown := rs.unixMeta(p, n)
	if chown {
		if err := os.Lchown(dst, int(n.UID), int(n.GID)); err != nil {
			errs = append(errs, fmt.Errorf("chown: %w", err))
		}
	}
	if n.Type != repo.NodeSymlink {
		if err := unix.Chmod(dst, mode); err != nil {
			errs = append(errs, fmt.Errorf("chmod: %w", err))
		}
	}
	for _, x := range n.Xattrs {
		if err := unix.Lsetxattr(dst, x.Name, x.Value, 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
			errs = append(errs, fmt.Errorf("xattr %s: %w", x.Name, err))
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(n.Mtime), unix.NsecToTimespec(n.Mtime)}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		errs = append(errs, fmt.Errorf("set times: %w", err))
	}
	return errors.Join(errs...)
}

// setMetaFD is setMeta for a regular file open as fd, in the same order:
// no path is looked up again, and what its creation set already (the
// owner, the mode) is not set again.
func (rs *restorer) setMetaFD(fd int, f *fileState) error {
	p, n := f.path, f.node
	var errs []error
	mode, chown := rs.unixMeta(p, n)
	if chown && f.made&setOwner == 0 {
		if err := unix.Fchown(fd, int(n.UID), int(n.GID)); err != nil {
			errs = append(errs, fmt.Errorf("chown: %w", err))
		}
	}
	if f.made&setMode == 0 {
		if err := unix.Fchmod(fd, mode); err != nil {
			errs = append(errs, fmt.Errorf("chmod: %w", err))
		}
	}
	for _, x := range n.Xattrs {
		if err := unix.Fsetxattr(fd, x.Name, x.Value, 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
			errs = append(errs, fmt.Errorf("xattr %s: %w", x.Name, err))
		}
	}
	ts := [2]unix.Timespec{unix.NsecToTimespec(n.Mtime), unix.NsecToTimespec(n.Mtime)}
	if err := futimens(fd, rs.dest(p), &ts); err != nil {
		errs = append(errs, fmt.Errorf("set times: %w", err))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s: %w", rs.dest(p), errors.Join(errs...))
	}
	return nil
}

// unixMeta is the mode to set on n and whether to set its owner.
func (rs *restorer) unixMeta(p string, n *repo.Node) (mode uint32, chown bool) {
	fromWindows := n.Attrs != 0
	if fromWindows {
		rs.foreign.noteWindowsNode(p, n)
	}
	return nodeMode(n), rs.privileged && !fromWindows
}

// nodeMode is the permission bits n is restored with.
func nodeMode(n *repo.Node) uint32 {
	if n.Attrs != 0 { // recorded on Windows
		return winmeta.UnixMode(n.Attrs, n.Type == repo.NodeDir)
	}
	return n.Mode & 07777
}

// creation is the mode to create regular file f with, and what that sets
// right already. In a plain directory (dirState) a file gets the mode it
// is created with, less the umask, and the restoring user's ids: when
// that is what it should have, neither is set again. Only a mode with
// the owner's write bit is given at creation, so the file can be opened
// again to write, and none with set-id or sticky bits, which a chown
// after it would clear.
func (rs *restorer) creation(f *fileState) (mode uint32, set uint8) {
	if !f.plain || !rs.umaskKnown {
		return 0o600, 0
	}
	n := f.node
	mode = nodeMode(n)
	if mode&07000 == 0 && mode&0o200 != 0 && mode&^rs.umask == mode {
		set |= setMode
	} else {
		mode = 0o600
	}
	if n.Attrs == 0 && n.UID == rs.uid && n.GID == rs.gid {
		set |= setOwner
	}
	return mode, set
}

// platformState is what a Unix restore knows of its process.
type platformState struct {
	// privileged: owners can be set (root)
	privileged bool
	umask      uint32 // the process's, when known (Linux)
	umaskKnown bool
	uid, gid   uint32 // the restoring user's
}

// What a file's creation set right already (fileState.made).
const (
	setOwner uint8 = madeFile << (1 + iota)
	setMode
)

func (rs *restorer) platformStart() {
	rs.privileged = rs.isRoot
	rs.uid, rs.gid = uint32(os.Geteuid()), uint32(os.Getegid())
	rs.umask, rs.umaskKnown = processUmask()
	rs.targetPlain = rs.umaskKnown && plainDir(rs.opts.Target)
}

// noteWindowsNode records what of a Windows node's metadata this platform
// (not Windows) cannot set back.
func (f *foreignNotes) noteWindowsNode(p string, n *repo.Node) {
	if a := n.Attrs & (winmeta.Settable &^ (winmeta.AttrReadOnly | winmeta.AttrArchive)); a != 0 {
		f.add("attributes "+winmeta.AttrString(a), p)
	}
	if len(n.SD) > 0 {
		f.add("security descriptor", p)
	}
	if n.Created != 0 {
		f.add("creation time", p)
	}
	if len(n.Streams) > 0 {
		f.add("alternate data streams", p)
		f.mu.Lock()
		for _, s := range n.Streams {
			f.streams[s.Name] = struct{}{}
		}
		f.mu.Unlock()
	}
}
