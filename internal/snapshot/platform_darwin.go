package snapshot

import (
	"context"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// DefaultProviders on macOS: a Time Machine local snapshot of each APFS
// volume, else clones of each file as it is opened, else live reading.
func DefaultProviders() []Provider {
	return []Provider{&APFS{}, &Clonefile{CloneOnOpen: true}, None{}}
}

func filesystemOf(path string) (FSInfo, error) { return darwinSystem{}.VolumeOf(path) }

func subvolumeOf(path string, _ FSInfo) (string, *Subvolume) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return path, nil
	}
	return real, nil
}

// darwinSystem answers the apfs provider's questions with statfs,
// getfsstat and sysctl.
type darwinSystem struct{}

func systemAPFS() APFSSystem { return darwinSystem{} }

func infoOfStatfs(st *unix.Statfs_t) FSInfo {
	return FSInfo{
		Mountpoint: unix.ByteSliceToString(st.Mntonname[:]),
		FSType:     unix.ByteSliceToString(st.Fstypename[:]),
		Device:     unix.ByteSliceToString(st.Mntfromname[:]),
		DevNum:     "",
		ReadOnly:   st.Flags&unix.MNT_RDONLY != 0,
	}
}

func (darwinSystem) VolumeOf(path string) (FSInfo, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return FSInfo{}, &os.PathError{Op: "statfs", Path: path, Err: err}
	}
	return infoOfStatfs(&st), nil
}

func getfsstat() ([]unix.Statfs_t, error) {
	n, err := unix.Getfsstat(nil, unix.MNT_NOWAIT)
	if err != nil {
		return nil, err
	}
	buf := make([]unix.Statfs_t, n+8) // room for mounts made meanwhile
	n, err = unix.Getfsstat(buf, unix.MNT_NOWAIT)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// Volumes lists the local volumes, not snapshot mounts.
func (darwinSystem) Volumes() ([]FSInfo, error) {
	sts, err := getfsstat()
	if err != nil {
		return nil, err
	}
	var out []FSInfo
	for i := range sts {
		if sts[i].Flags&unix.MNT_LOCAL != 0 && sts[i].Flags&unix.MNT_SNAPSHOT == 0 {
			out = append(out, infoOfStatfs(&sts[i]))
		}
	}
	return out, nil
}

func (darwinSystem) Mounts() ([]MountEntry, error) {
	sts, err := getfsstat()
	if err != nil {
		return nil, err
	}
	var out []MountEntry
	for i := range sts {
		fi := infoOfStatfs(&sts[i])
		out = append(out, MountEntry{From: fi.Device, On: fi.Mountpoint})
	}
	return out, nil
}

func (darwinSystem) Root() bool { return os.Geteuid() == 0 }

func (darwinSystem) Alive(pid int, start uint64) bool { return alive(pid, start) }

// processStart is when pid started, in microseconds since the epoch, or 0
// when unknown.
func processStart(pid int) uint64 {
	kp, err := unix.SysctlKinfoProc("kern.proc.pid", pid)
	if err != nil || int(kp.Proc.P_pid) != pid {
		return 0
	}
	t := kp.Proc.P_starttime
	return uint64(t.Sec)*1e6 + uint64(t.Usec)
}

// sZomb is p_stat of a zombie (sys/proc.h).
const sZomb = 5

// alive reports whether the process that wrote a label still runs. A
// zombie counts as gone: it holds nothing any more.
func alive(pid int, start uint64) bool {
	kp, err := unix.SysctlKinfoProc("kern.proc.pid", pid)
	if err != nil || int(kp.Proc.P_pid) != pid || kp.Proc.P_stat == sZomb {
		return false
	}
	return start == 0 || processStart(pid) == start
}

// FindLeftovers lists the apfs snapshot directories and clonefile staging
// directories of runs on the volumes holding paths, or on every local
// volume when paths is empty.
func FindLeftovers(paths []string) ([]Leftover, error) {
	return findAPFSLeftovers(darwinSystem{}, paths, cloneContainers)
}

// Cleanup removes stale leftovers: it unmounts and deletes a killed run's
// snapshot, and removes its clonefile staging directory.
func Cleanup(los []Leftover) error {
	return (&APFS{}).cleanupLeftovers(context.Background(), los)
}

// APFSDoctor reports the Time Machine local snapshots of the APFS volumes
// of paths (of every local APFS volume when paths is empty).
func APFSDoctor(paths []string) *APFSReport {
	return (&APFS{}).doctor(context.Background(), paths)
}
