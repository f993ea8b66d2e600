package livefile

import (
	"fmt"
	"runtime"
)

// ErrLockDetectionUnavailable is returned by LockedBy on platforms where
// locks cannot be probed (all but Linux, for now).
var ErrLockDetectionUnavailable = fmt.Errorf("lock detection is not available on %s; files are read with change detection only", runtime.GOOS)

// Holder is a process that has a file open for writing or holds a lock on it.
type Holder struct {
	Pid  int    // 0 when not known (an OFD lock whose holder could not be found)
	Comm string // command name from /proc/PID/comm; "" when not known
	// Lock is the kind of lock held ("posix", "ofd", "flock"); "" for a
	// holder that only has the file open.
	Lock LockKind
	// Exclusive is true for a write lock or an exclusive flock: one that
	// keeps readers out, which is what a writer in the middle of an update
	// holds. A shared lock means readers are welcome.
	Exclusive bool
}

// LockKind names the lock API a holder used.
type LockKind string

// Lock kinds.
const (
	LockPOSIX LockKind = "posix" // fcntl F_SETLK, owned by a process
	LockOFD   LockKind = "ofd"   // fcntl F_OFD_SETLK, owned by an open file description
	LockFlock LockKind = "flock" // BSD flock
)

func (h *Holder) String() string {
	if h == nil {
		return "<none>"
	}
	who := "unknown process"
	if h.Pid > 0 {
		who = fmt.Sprintf("pid %d", h.Pid)
		if h.Comm != "" {
			who = fmt.Sprintf("pid %d (%s)", h.Pid, h.Comm)
		}
	}
	if h.Lock == "" {
		return who
	}
	mode := "shared"
	if h.Exclusive {
		mode = "exclusive"
	}
	return fmt.Sprintf("%s holding a %s %s lock", who, mode, h.Lock)
}

// fileKey identifies a file independently of its path.
type fileKey struct{ dev, ino uint64 }

// OpenFiles is the set of files other processes had open for writing when
// ScanOpenForWrite ran.
type OpenFiles struct {
	files map[fileKey][]Holder
	note  string
	// scanned is true where a scan really looked (Linux); false where the
	// platform has no way to tell.
	scanned bool
}

// Available tells whether the set comes from a real scan: false for nil
// and on platforms without open-file detection, where an empty set means
// "unknown", not "nothing open".
func (o *OpenFiles) Available() bool { return o != nil && o.scanned }

// Holders returns the processes that had the file (device, inode) open for
// writing, or nil. A nil *OpenFiles knows of no open file.
func (o *OpenFiles) Holders(dev, ino uint64) []Holder {
	if o == nil {
		return nil
	}
	return o.files[fileKey{dev, ino}]
}

// Len is the number of distinct files open for writing.
func (o *OpenFiles) Len() int {
	if o == nil {
		return 0
	}
	return len(o.files)
}

// Note says what the scan could not see (another user's processes, a
// platform without /proc), to show the user once per run; "" when the scan
// saw everything.
func (o *OpenFiles) Note() string {
	if o == nil {
		return ""
	}
	return o.note
}

func (o *OpenFiles) add(k fileKey, h Holder) {
	if o.files == nil {
		o.files = make(map[fileKey][]Holder)
	}
	for _, old := range o.files[k] {
		if old.Pid == h.Pid {
			return // the same process with the file open twice
		}
	}
	o.files[k] = append(o.files[k], h)
}
