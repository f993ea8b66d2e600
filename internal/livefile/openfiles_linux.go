package livefile

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// ScanOpenForWrite lists the regular files that other processes have open
// for writing, from /proc/*/fd and /proc/*/fdinfo. Our own process is left
// out; processes that exit during the scan are simply not counted. Run it
// once at the start of a run: a file opened later is still caught by the
// change detection of the read itself.
func ScanOpenForWrite() (*OpenFiles, error) {
	return scanProc("/proc", os.Getpid())
}

func scanProc(procRoot string, self int) (*OpenFiles, error) {
	d, err := os.Open(procRoot)
	if err != nil {
		return nil, fmt.Errorf("scanning open files: %w", err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, fmt.Errorf("scanning open files: reading %s: %w", procRoot, err)
	}
	s := scanner{procRoot: procRoot, out: &OpenFiles{scanned: true}, dirent: make([]byte, 8192)}
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil || pid == self {
			continue
		}
		s.process(pid)
	}
	if s.denied > 0 {
		s.out.note = fmt.Sprintf("open-file detection could not look into %d processes of other users (running as uid %d); "+
			"files they have open are read with change detection only — run as root to see them", s.denied, os.Getuid())
	}
	return s.out, nil
}

// scanner holds the buffers reused across processes so the scan allocates
// little per descriptor.
type scanner struct {
	procRoot string
	out      *OpenFiles
	denied   int
	dirent   []byte
	names    []string
	fdinfo   [512]byte
}

func (s *scanner) process(pid int) {
	base := s.procRoot + "/" + strconv.Itoa(pid)
	dirfd, err := unix.Open(base+"/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			s.denied++
		}
		return // gone, a kernel thread, or not ours to see
	}
	defer unix.Close(dirfd)
	s.names = s.names[:0]
	for {
		n, err := unix.ReadDirent(dirfd, s.dirent)
		if err != nil || n <= 0 {
			break
		}
		_, _, s.names = unix.ParseDirent(s.dirent[:n], -1, s.names)
	}
	comm := ""
	for _, fd := range s.names {
		// The mode bits of the /proc/PID/fd/N link mirror the descriptor's
		// access mode (w for FMODE_WRITE): one lstat rules out the read-only
		// majority, so fdinfo is only read for the few that may write.
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, fd, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			continue
		}
		if st.Mode&0o777 != 0 && st.Mode&unix.S_IWUSR == 0 {
			continue
		}
		if !s.writable(base + "/fdinfo/" + fd) {
			continue
		}
		if err := unix.Fstatat(dirfd, fd, &st, 0); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			continue
		}
		if comm == "" {
			comm = readComm(base)
		}
		s.out.add(fileKey{uint64(st.Dev), uint64(st.Ino)}, Holder{Pid: pid, Comm: comm})
	}
}

// writable reads the "flags:" line of an fdinfo file (octal open flags) and
// tells whether the descriptor was opened O_WRONLY or O_RDWR.
func (s *scanner) writable(fdinfo string) bool {
	fd, err := unix.Open(fdinfo, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	n, _ := unix.Read(fd, s.fdinfo[:])
	unix.Close(fd)
	if n <= 0 {
		return false
	}
	flags, ok := fdinfoFlags(s.fdinfo[:n])
	if !ok {
		return false
	}
	acc := flags & unix.O_ACCMODE
	return acc == unix.O_WRONLY || acc == unix.O_RDWR
}

// fdinfoFlags extracts the octal "flags:" field of /proc/PID/fdinfo/N.
func fdinfoFlags(b []byte) (int, bool) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if v, ok := bytes.CutPrefix(line, []byte("flags:")); ok {
			n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 8, 32)
			return int(n), err == nil
		}
	}
	return 0, false
}

// readComm returns the command name of a process (base is /proc/PID), or ""
// when it has exited.
func readComm(base string) string {
	b, err := os.ReadFile(base + "/comm")
	if err != nil {
		return ""
	}
	return string(bytes.TrimRight(b, "\n"))
}
