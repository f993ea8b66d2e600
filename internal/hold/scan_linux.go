package hold

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// target is the filesystems a hold covers, in the forms /proc shows them.
type target struct {
	mountpoints []string
	// devs are the filesystems' superblock devices, as mountinfo and
	// /proc/PID/maps give them (a btrfs subvolume's st_dev differs).
	devs map[uint64]bool
	// mounts are the ids of every mount of those filesystems, by mount
	// namespace (the key of ours is "").
	mounts map[string]map[int]bool
	// roots are the root directories of those mounts (st_dev, st_ino):
	// working there is what daemons do, see worksIn.
	roots  map[[2]uint64]bool
	selfNS string
	buf    []byte
}

func newTarget(mountpoints []string) (*target, error) {
	all, err := mountinfo.GetMounts(nil)
	if err != nil {
		return nil, fmt.Errorf("reading the mount table: %w", err)
	}
	t := &target{mountpoints: mountpoints, devs: map[uint64]bool{}, mounts: map[string]map[int]bool{"": {}},
		roots: map[[2]uint64]bool{}, selfNS: mountNS(os.Getpid()), buf: make([]byte, 8192)}
	for _, mp := range mountpoints {
		var m *mountinfo.Info
		for _, mi := range all {
			if mi.Mountpoint == mp {
				m = mi // the last one is on top
			}
		}
		if m == nil {
			return nil, fmt.Errorf("%s is not a mount point", mp)
		}
		t.devs[unix.Mkdev(uint32(m.Major), uint32(m.Minor))] = true
	}
	for _, mi := range all {
		if !t.devs[unix.Mkdev(uint32(mi.Major), uint32(mi.Minor))] {
			continue
		}
		t.mounts[""][mi.ID] = true
		var st unix.Stat_t
		if unix.Stat(mi.Mountpoint, &st) == nil {
			t.roots[[2]uint64{uint64(st.Dev), st.Ino}] = true
		}
	}
	return t, nil
}

func mountNS(pid int) string {
	ns, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/mnt")
	return ns
}

// mountOnTarget tells whether mount id, as process pid sees it, is a mount
// of the target filesystems.
func (t *target) mountOnTarget(pid, id int) bool {
	if t.mounts[""][id] {
		return true
	}
	ns := mountNS(pid)
	if ns == "" || ns == t.selfNS {
		return false
	}
	ids, ok := t.mounts[ns]
	if !ok {
		ids = map[int]bool{}
		if infos, err := pidMounts(pid); err == nil {
			for _, mi := range infos {
				if t.devs[unix.Mkdev(uint32(mi.Major), uint32(mi.Minor))] {
					ids[mi.ID] = true
				}
			}
		}
		t.mounts[ns] = ids
	}
	return ids[id]
}

// use is how a process uses the target filesystems.
type use int

const (
	noUse   use = iota
	worksIn     // its working directory is on them (below a mount's root)
	writes      // a file open for writing, or mapped shared and writable
)

// useOf says how pid uses the target filesystems, and where. Mappings
// are costly to read (a large program has thousands); a rescan inside the
// hold passes them over, since a mapping made since the first scan needs a
// descriptor, which the rescan sees unless it was closed within those
// milliseconds.
func (t *target) useOf(pid int, mappings bool) (use, string) {
	base := "/proc/" + strconv.Itoa(pid)
	if path, ok := t.openForWrite(pid, base); ok {
		return writes, path + " open for writing"
	}
	if mappings {
		if path, ok := t.mappedWritable(base); ok {
			return writes, path + " mapped writable"
		}
	}
	if path, ok := t.workingDir(pid, base); ok {
		return worksIn, "working in " + path
	}
	return noUse, ""
}

func (t *target) openForWrite(pid int, base string) (string, bool) {
	dirfd, err := unix.Open(base+"/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", false
	}
	defer unix.Close(dirfd)
	var names []string
	for {
		n, err := unix.ReadDirent(dirfd, t.buf)
		if err != nil || n <= 0 {
			break
		}
		_, _, names = unix.ParseDirent(t.buf[:n], -1, names)
	}
	for _, fd := range names {
		// the link's mode bits mirror the descriptor's access mode: one
		// lstat rules out the read-only majority before fdinfo is read
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, fd, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			continue
		}
		if st.Mode&0o777 != 0 && st.Mode&unix.S_IWUSR == 0 {
			continue
		}
		flags, mnt, ok := t.fdinfo(base + "/fdinfo/" + fd)
		if !ok {
			continue
		}
		if acc := flags & unix.O_ACCMODE; acc != unix.O_WRONLY && acc != unix.O_RDWR {
			continue
		}
		if t.mountOnTarget(pid, mnt) {
			path, _ := os.Readlink(base + "/fd/" + fd)
			return path, true
		}
	}
	return "", false
}

// fdinfo reads the "flags:" (octal) and "mnt_id:" lines of an fdinfo file.
func (t *target) fdinfo(path string) (flags, mnt int, ok bool) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, 0, false
	}
	n, _ := unix.Read(fd, t.buf[:1024])
	unix.Close(fd)
	if n <= 0 {
		return 0, 0, false
	}
	var haveFlags, haveMnt bool
	for line := range bytes.SplitSeq(t.buf[:n], []byte("\n")) {
		if v, found := bytes.CutPrefix(line, []byte("flags:")); found {
			f, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 8, 32)
			flags, haveFlags = int(f), err == nil
		} else if v, found := bytes.CutPrefix(line, []byte("mnt_id:")); found {
			m, err := strconv.Atoi(string(bytes.TrimSpace(v)))
			mnt, haveMnt = m, err == nil
		}
	}
	return flags, mnt, haveFlags && haveMnt
}

// mappedWritable finds a shared writable file mapping on the target
// filesystems: writes through it need no system call at all.
func (t *target) mappedWritable(base string) (string, bool) {
	f, err := os.Open(base + "/maps")
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(t.buf, 1<<20)
	for sc.Scan() {
		// address perms offset dev inode path
		fields := bytes.Fields(sc.Bytes())
		if len(fields) < 6 || len(fields[1]) != 4 || fields[1][1] != 'w' || fields[1][3] != 's' {
			continue
		}
		maj, min, ok := bytes.Cut(fields[3], []byte(":"))
		if !ok {
			continue
		}
		ma, err1 := strconv.ParseUint(string(maj), 16, 32)
		mi, err2 := strconv.ParseUint(string(min), 16, 32)
		if err1 == nil && err2 == nil && t.devs[unix.Mkdev(uint32(ma), uint32(mi))] {
			return string(bytes.Join(fields[5:], []byte(" "))), true
		}
	}
	return "", false
}

// workingDir tells whether pid works in a directory of the target
// filesystems below a mount's root. Such a process (a shell loop running
// commits, a build) starts writers at any moment; holding it keeps them
// from starting. A daemon's working directory is "/" by convention, so the
// root of a mount does not count.
func (t *target) workingDir(pid int, base string) (string, bool) {
	fd, err := unix.Open(base+"/cwd", unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", false
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || t.roots[[2]uint64{uint64(st.Dev), st.Ino}] {
		return "", false
	}
	_, mnt, ok := t.fdinfo("/proc/self/fdinfo/" + strconv.Itoa(fd))
	if !ok || !t.mountOnTarget(pid, mnt) {
		return "", false
	}
	path, _ := os.Readlink(base + "/cwd")
	return path, true
}

// pidMounts reads the mount table as process pid sees it.
func pidMounts(pid int) ([]*mountinfo.Info, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return mountinfo.GetMountsFromReader(f, nil)
}
