package livefile

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Tests start real processes by re-running the test binary with
// LIVEFILE_HELPER set: the child takes its role, names itself with
// /proc/self/comm so tests can check the comm we report, prints "ready"
// and lives until its stdin closes (which also happens if the test binary
// dies, so no child outlives a test run).
const helperEnv = "LIVEFILE_HELPER"

func TestMain(m *testing.M) {
	if role := os.Getenv(helperEnv); role != "" {
		os.Exit(runHelper(role, os.Args[len(os.Args)-1]))
	}
	os.Exit(m.Run())
}

func helperFail(format string, args ...any) int {
	fmt.Printf("error: "+format+"\n", args...)
	return 2
}

func runHelper(role, path string) int {
	name := strings.SplitN(role, ":", 2)[0]
	// /proc/self/comm names the main thread, which is what /proc/PID/comm
	// shows; prctl would name whichever thread the goroutine runs on.
	_ = os.WriteFile("/proc/self/comm", []byte("sp-"+name), 0)
	var f *os.File
	var err error
	switch name {
	case "hold-read", "flock-ex":
		f, err = os.Open(path)
	case "posix-rdlock":
		f, err = os.OpenFile(path, os.O_RDONLY, 0)
	default:
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	}
	if err != nil {
		return helperFail("%v", err)
	}
	whole := unix.Flock_t{Whence: 0, Start: 0, Len: 0}
	switch name {
	case "posix-lock":
		whole.Type = unix.F_WRLCK
		err = unix.FcntlFlock(f.Fd(), unix.F_SETLK, &whole)
	case "posix-rdlock":
		whole.Type = unix.F_RDLCK
		err = unix.FcntlFlock(f.Fd(), unix.F_SETLK, &whole)
	case "ofd-lock":
		whole.Type = unix.F_WRLCK
		err = unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &whole)
	case "flock-ex":
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	}
	if err != nil {
		return helperFail("locking %s: %v", path, err)
	}
	stdin := bufio.NewScanner(os.Stdin)
	if name != "writer" {
		fmt.Println("ready")
		for stdin.Scan() {
		}
		return 0
	}
	// writer: rewrite blocks in place and append, every millisecond, until
	// told "stop"; then keep the file open, idle, until stdin closes.
	cmds := make(chan string)
	go func() {
		for stdin.Scan() {
			cmds <- stdin.Text()
		}
		close(cmds)
	}()
	block := make([]byte, 4096)
	for i := 0; ; i++ {
		for j := range block {
			block[j] = byte(i)
		}
		if _, err := f.WriteAt(block, int64(i%16)*4096); err != nil {
			return helperFail("writing: %v", err)
		}
		if i%8 == 0 {
			if _, err := f.WriteAt(block[:100], 16*4096+int64(i/8)*100); err != nil {
				return helperFail("appending: %v", err)
			}
		}
		if i == 0 {
			fmt.Println("ready")
		}
		select {
		case cmd, ok := <-cmds:
			if !ok {
				return 0
			}
			if cmd == "stop" {
				fmt.Println("stopped")
				for range cmds {
				}
				return 0
			}
		case <-time.After(time.Millisecond):
		}
	}
}

// child is a helper process started by a test.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
	Pid   int
}

// comm is the name a helper with this role gives itself (15 bytes at most,
// as the kernel keeps it).
func helperComm(role string) string {
	c := "sp-" + strings.SplitN(role, ":", 2)[0]
	if len(c) > 15 {
		c = c[:15]
	}
	return c
}

func startHelper(t *testing.T, role, path string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", path)
	// GORACE: a race-enabled child would otherwise linger a second at exit
	cmd.Env = append(os.Environ(), helperEnv+"="+role, "GORACE=atexit_sleep_ms=0")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: in, out: bufio.NewScanner(out), Pid: cmd.Process.Pid}
	t.Cleanup(func() { c.stop() })
	c.expect(t, "ready")
	return c
}

// expect waits (generously: the machine may be loaded) for a line.
func (c *child) expect(t *testing.T, want string) {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		if c.out.Scan() {
			got <- c.out.Text()
		} else {
			got <- "<eof>"
		}
	}()
	select {
	case line := <-got:
		if line != want {
			t.Fatalf("helper %d said %q, want %q", c.Pid, line, want)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("helper %d did not say %q within 20 s", c.Pid, want)
	}
}

func (c *child) send(t *testing.T, line string) {
	t.Helper()
	if _, err := fmt.Fprintln(c.stdin, line); err != nil {
		t.Fatal(err)
	}
}

// stop closes the child's stdin and waits for it; it is killed (by its
// pid, which we own) if it does not go.
func (c *child) stop() {
	c.stdin.Close()
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

func pidString(pid int) string { return strconv.Itoa(pid) }
