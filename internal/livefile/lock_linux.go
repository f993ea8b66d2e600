package livefile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/stillpoint-backup/stillpoint/internal/view"
	"golang.org/x/sys/unix"
)

// LockedBy tells whether another process holds an advisory lock on the file
// at path (a real filesystem path), and who. It returns nil when the file is
// not locked. An exclusive lock (fcntl write lock, exclusive flock) is
// reported before a shared one. st, when given, is the metadata the caller
// listed; a file replaced since then is an error.
//
// Locks are probed on a descriptor of our own instead of matching
// /proc/locks: /proc/locks names the device of the superblock, and on btrfs
// st_dev is the subvolume's anonymous device, so a (device, inode) match
// misses every file below a subvolume. A probe on the file itself cannot be
// misled that way. /proc is only used afterwards, to put a name on the
// holder.
func LockedBy(path string, st *view.Stat) (*Holder, error) {
	// O_NONBLOCK: a conflicting lease makes open fail at once instead of
	// waiting for the lease holder to give it up.
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open for lock probe", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var fst unix.Stat_t
	if err := unix.Fstat(fd, &fst); err != nil {
		return nil, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	key := fileKey{uint64(fst.Dev), uint64(fst.Ino)}
	if st != nil && (st.Dev != key.dev || st.Ino != key.ino) {
		return nil, fmt.Errorf("probing locks on %s: the file was replaced since it was listed (inode %d, now %d)", path, st.Ino, key.ino)
	}
	h, err := probeLocks(fd, key, nil, true)
	if err != nil {
		return nil, &os.PathError{Op: "probe locks", Path: path, Err: err}
	}
	return h, nil
}

// fdFile is what view.File implementations backed by an *os.File offer.
type fdFile interface{ Fd() uintptr }

// probeViewFile looks for an exclusive lock on a file the Reader has open.
// Files without a descriptor (in-memory views) cannot be probed and count
// as unlocked: change detection still guards their read.
func probeViewFile(f view.File, st *view.Stat, open *OpenFiles) (*Holder, error) {
	ff, ok := f.(fdFile)
	if !ok {
		return nil, nil
	}
	return probeLocks(int(ff.Fd()), fileKey{st.Dev, st.Ino}, open, false)
}

// probeLocks looks for locks of other owners on the file behind fd, which
// may be open read-only. With shared false it only looks for exclusive
// locks, the ones that mean a writer is at work.
func probeLocks(fd int, key fileKey, open *OpenFiles, shared bool) (*Holder, error) {
	// A read-lock probe conflicts only with write locks. F_OFD_GETLK tests
	// against every lock not owned by our own (fresh) open file
	// description, so it sees POSIX locks of all processes and OFD locks
	// alike; F_GETLK would miss POSIX locks of our own process.
	if h, err := getlk(fd, unix.F_RDLCK, key, open); h != nil || err != nil {
		return h, err
	}
	// flock locks are a separate world that fcntl does not see (except on
	// NFS, where flock is emulated by fcntl locks and the probe above
	// already saw it). A non-blocking shared flock fails only under an
	// exclusive one; if it succeeds it is dropped at once.
	switch err := unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB); {
	case err == nil:
		_ = unix.Flock(fd, unix.LOCK_UN)
	case errors.Is(err, unix.EWOULDBLOCK):
		h := &Holder{Lock: LockFlock, Exclusive: true}
		nameHolder(h, key, "FLOCK", flockCandidates(key.ino, open.Holders(key.dev, key.ino)))
		return h, nil
	case errors.Is(err, unix.ENOLCK), errors.Is(err, unix.EINVAL), errors.Is(err, unix.EOPNOTSUPP):
		// filesystem without flock: nothing to find
	default:
		return nil, fmt.Errorf("flock probe: %w", err)
	}
	if !shared {
		return nil, nil
	}
	// A write-lock probe shows any lock; the read-lock probe found no write
	// lock, so what it finds is a shared one.
	return getlk(fd, unix.F_WRLCK, key, open)
}

// getlk asks whether a lock of type typ over the whole file would conflict.
func getlk(fd int, typ int16, key fileKey, open *OpenFiles) (*Holder, error) {
	lk := unix.Flock_t{Type: typ, Whence: 0, Start: 0, Len: 0}
	err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_GETLK, &lk)
	if errors.Is(err, unix.EINVAL) {
		// kernel before 3.15: no OFD locks to see, plain F_GETLK sees the rest
		lk = unix.Flock_t{Type: typ}
		err = unix.FcntlFlock(uintptr(fd), unix.F_GETLK, &lk)
	}
	if err != nil {
		return nil, fmt.Errorf("fcntl lock probe: %w", err)
	}
	if lk.Type == unix.F_UNLCK {
		return nil, nil
	}
	h := &Holder{Exclusive: lk.Type == unix.F_WRLCK}
	if lk.Pid > 0 {
		if int(lk.Pid) == os.Getpid() {
			// F_OFD_GETLK shows our own POSIX locks too (a repository lock
			// file inside a source); they do not keep us from reading.
			return nil, nil
		}
		h.Lock, h.Pid = LockPOSIX, int(lk.Pid)
		h.Comm = readComm("/proc/" + strconv.Itoa(h.Pid))
		return h, nil
	}
	// OFD locks belong to an open file description, not a process: the
	// kernel reports pid -1. Look for a process with a descriptor on the
	// file whose fdinfo lists the lock; the processes that had it open for
	// writing are the likely ones.
	h.Lock = LockOFD
	var candidates []int
	for _, oh := range open.Holders(key.dev, key.ino) {
		candidates = append(candidates, oh.Pid)
	}
	nameHolder(h, key, "OFDLCK", candidates)
	return h, nil
}

// flockCandidates returns the pids /proc/locks gives for FLOCK locks on
// inode ino, plus the known open-for-writing holders. The device is not
// compared (see LockedBy about btrfs): every candidate is checked against
// the real (device, inode) before it is believed.
func flockCandidates(ino uint64, holders []Holder) []int {
	var pids []int
	if f, err := os.Open("/proc/locks"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// "1: FLOCK  ADVISORY  WRITE 2001 08:01:7864554 0 EOF"
			fields := bytes.Fields(sc.Bytes())
			if len(fields) < 6 || string(fields[1]) != "FLOCK" {
				continue
			}
			dmi := bytes.Split(fields[5], []byte(":"))
			if len(dmi) != 3 || string(dmi[2]) != strconv.FormatUint(ino, 10) {
				continue
			}
			if pid, err := strconv.Atoi(string(fields[4])); err == nil && pid > 0 {
				pids = append(pids, pid)
			}
		}
		f.Close()
	}
	for _, h := range holders {
		pids = append(pids, h.Pid)
	}
	return pids
}

// nameHolder fills in the pid and comm of the process holding a lock of
// the given /proc kind ("FLOCK", "OFDLCK") on the file: first among the
// candidates, then among all processes. It leaves them empty when no
// process shows the lock (another pid namespace, or no permission).
func nameHolder(h *Holder, key fileKey, kind string, candidates []int) {
	self := os.Getpid()
	seen := make(map[int]bool, len(candidates))
	for _, pid := range candidates {
		if pid == self || seen[pid] {
			continue
		}
		seen[pid] = true
		if holdsLock(pid, key, kind) {
			h.Pid, h.Comm = pid, readComm("/proc/"+strconv.Itoa(pid))
			return
		}
	}
	d, err := os.Open("/proc")
	if err != nil {
		return
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil || pid == self || seen[pid] {
			continue
		}
		if holdsLock(pid, key, kind) {
			h.Pid, h.Comm = pid, readComm("/proc/"+name)
			return
		}
	}
}

// holdsLock tells whether process pid has a descriptor on the file key
// whose fdinfo shows a lock of the given kind: fdinfo lists the locks taken
// through that descriptor's open file description.
func holdsLock(pid int, key fileKey, kind string) bool {
	base := "/proc/" + strconv.Itoa(pid)
	dir, err := os.Open(base + "/fd")
	if err != nil {
		return false
	}
	defer dir.Close()
	fds, err := dir.Readdirnames(-1)
	if err != nil {
		return false
	}
	dirfd := int(dir.Fd())
	for _, fd := range fds {
		var st unix.Stat_t
		if unix.Fstatat(dirfd, fd, &st, 0) != nil || uint64(st.Dev) != key.dev || uint64(st.Ino) != key.ino {
			continue
		}
		info, err := os.ReadFile(base + "/fdinfo/" + fd)
		if err != nil {
			continue
		}
		for line := range bytes.Lines(info) {
			if rest, ok := bytes.CutPrefix(line, []byte("lock:")); ok && bytes.Contains(rest, []byte(" "+kind+" ")) {
				return true
			}
		}
	}
	return false
}
