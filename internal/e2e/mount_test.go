//go:build linux

package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/mount"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/ci"
)

func needFUSE(t *testing.T) {
	t.Helper()
	ci.NeedRoot(t)
	if err := mount.Available(); err != nil {
		if ci.Enabled() {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	if _, err := exec.LookPath("fusermount3"); err != nil {
		if ci.Enabled() {
			t.Fatal("fusermount3 is missing: test.sh installs fuse3")
		}
		t.Skip("fusermount3 is missing (apt install fuse3)")
	}
}

func isMounted(t *testing.T, dir string) bool {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

// startMount runs `stillpoint mount dir` until it has mounted; the process
// and the mount are gone when the test ends, whatever happened.
func (e *env) startMount(t *testing.T, dir string) (*exec.Cmd, *bytes.Buffer, <-chan struct{}) {
	t.Helper()
	cmd := e.command(context.Background(), "mount", dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill() // our own child, by pid
			<-exited
		}
		if isMounted(t, dir) {
			_ = exec.Command("umount", "-l", dir).Run()
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for !isMounted(t, dir) {
		select {
		case <-exited:
			t.Fatalf("stillpoint mount exited before mounting: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not mounted after 20s: %s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cmd, &out, exited
}

// waitExit waits for the mount process and returns its exit code.
func waitExit(t *testing.T, cmd *exec.Cmd, out *bytes.Buffer, exited <-chan struct{}) int {
	t.Helper()
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("stillpoint mount still runs 20s later: %s", out.String())
	}
	return cmd.ProcessState.ExitCode()
}

func TestMountCommand(t *testing.T) {
	needFUSE(t)
	e := newEnv(t)
	src := filepath.Join(t.TempDir(), "src")
	writeRandom(t, filepath.Join(src, "data/blob.bin"), 5, 3<<20)
	e.must(t, 0, "backup", src)
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	for _, how := range []string{"SIGTERM", "SIGINT", "fusermount3 -u"} {
		cmd, out, exited := e.startMount(t, dir)
		want, _ := os.ReadFile(filepath.Join(src, "data/blob.bin"))
		got, err := os.ReadFile(filepath.Join(dir, "latest", src, "data/blob.bin"))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: the file through the mount: %v (equal %v)", how, err, bytes.Equal(got, want))
		}
		locks, _ := os.ReadDir(filepath.Join(e.repo, "locks"))
		if len(locks) != 1 {
			t.Errorf("%s: %d locks while mounted, want the mount's shared one", how, len(locks))
		}
		switch how {
		case "SIGTERM":
			_ = cmd.Process.Signal(syscall.SIGTERM)
		case "SIGINT":
			_ = cmd.Process.Signal(syscall.SIGINT)
		default:
			if o, err := exec.Command("fusermount3", "-u", dir).CombinedOutput(); err != nil {
				t.Fatalf("fusermount3 -u: %v: %s", err, o)
			}
		}
		if code := waitExit(t, cmd, out, exited); code != 0 {
			t.Fatalf("%s: exit %d, want 0: %s", how, code, out.String())
		}
		if isMounted(t, dir) {
			t.Fatalf("%s: still mounted after the command ended", how)
		}
		if locks, _ := os.ReadDir(filepath.Join(e.repo, "locks")); len(locks) != 0 {
			t.Errorf("%s: the mount left %d locks", how, len(locks))
		}
	}

	// never inside the repository, nor over it
	inside := filepath.Join(e.repo, "mnt")
	if err := os.Mkdir(inside, 0o755); err != nil {
		t.Fatal(err)
	}
	res := e.must(t, 1, "mount", inside)
	if !strings.Contains(res.stderr, "inside the repository") {
		t.Errorf("mount inside the repository: %s", res)
	}
	res = e.must(t, 1, "mount", filepath.Dir(e.repo))
	if !strings.Contains(res.stderr, "inside the mount point") {
		t.Errorf("mount over the repository: %s", res)
	}
	if isMounted(t, inside) || isMounted(t, filepath.Dir(e.repo)) {
		t.Fatal("a refused mount was mounted")
	}
	res = e.must(t, 2, "mount", "--cache-size", "lots", dir)
	if !strings.Contains(res.stderr, "--cache-size") {
		t.Errorf("a bad --cache-size: %s", res)
	}
	if _, err := os.Stat(filepath.Join(dir, "latest")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the mount point after the test: %v", err)
	}
}
