package livefile

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDarwinLockHelper is not a test: run by lockedByHelper, it takes the
// lock named by LIVEFILE_LOCK on LIVEFILE_LOCK_PATH, says "locked" and
// holds it until stdin closes.
func TestDarwinLockHelper(t *testing.T) {
	kind, path := os.Getenv("LIVEFILE_LOCK"), os.Getenv("LIVEFILE_LOCK_PATH")
	if kind == "" {
		t.Skip("helper process only")
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	switch kind {
	case "posix-write", "posix-read":
		typ := int16(unix.F_WRLCK)
		if kind == "posix-read" {
			typ = unix.F_RDLCK
		}
		err = unix.FcntlFlock(f.Fd(), unix.F_SETLK, &unix.Flock_t{Type: typ})
	case "flock":
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
	}
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("locked\n")
	bufio.NewReader(os.Stdin).ReadString('\n')
	os.Exit(0)
}

func lockedByHelper(t *testing.T, path, kind string) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDarwinLockHelper$")
	cmd.Env = append(os.Environ(), "LIVEFILE_LOCK="+kind, "LIVEFILE_LOCK_PATH="+path)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.Contains(line, "locked") {
		t.Fatalf("helper said %q, %v", line, err)
	}
	return cmd.Process.Pid
}

// TestLockedByDarwin: fcntl and flock locks of another process are found
// on macOS, a POSIX one with its pid and command; an unlocked file is not
// reported, and the Reader's probe only reports exclusive locks.
func TestLockedByDarwin(t *testing.T) {
	for _, tc := range []struct {
		kind      string
		lock      LockKind
		exclusive bool
		named     bool
	}{
		{"posix-write", LockPOSIX, true, true},
		{"posix-read", LockPOSIX, false, true},
		{"flock", LockFlock, true, false},
	} {
		path := filepath.Join(t.TempDir(), "mailbox")
		if err := os.WriteFile(path, []byte("data"), 0o644); err != nil {
			t.Fatal(err)
		}
		if h, err := LockedBy(path, nil); h != nil || err != nil {
			t.Fatalf("unlocked file: %v %v", h, err)
		}
		pid := lockedByHelper(t, path, tc.kind)
		h, err := LockedBy(path, nil)
		if err != nil || h == nil || h.Lock != tc.lock || h.Exclusive != tc.exclusive {
			t.Fatalf("%s: holder %v, %v", tc.kind, h, err)
		}
		if tc.named && (h.Pid != pid || h.Comm == "") {
			t.Errorf("%s: holder %v, want pid %d with its command", tc.kind, h, pid)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		vh, err := probeLocks(int(f.Fd()), false)
		f.Close()
		if err != nil || (vh != nil) != tc.exclusive {
			t.Errorf("%s: the read probe gave %v, %v", tc.kind, vh, err)
		}
	}
}

// TestScanOpenForWriteDarwin: the set says it is not a scan, and why.
func TestScanOpenForWriteDarwin(t *testing.T) {
	o, err := ScanOpenForWrite()
	if err != nil || o.Available() || !strings.Contains(o.Note(), "not available on macOS") {
		t.Fatalf("%v %v %q", o, err, o.Note())
	}
}
