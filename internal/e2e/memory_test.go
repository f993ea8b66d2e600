//go:build linux

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// maxRSS runs a backup of src and returns the process's peak RSS in bytes.
func maxRSS(t *testing.T, e *env, src string) int64 {
	t.Helper()
	cmd := e.command(context.Background(), "backup", "--quiet", src)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	return cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss * 1024
}

// Peak memory does not grow with the size of a file: a 1 GiB file is
// backed up in about the memory a 32 MiB file takes.
func TestMemoryDoesNotGrowWithFileSize(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 1 GiB")
	}
	dir := t.TempDir()
	small, big := filepath.Join(dir, "small"), filepath.Join(dir, "big")
	os.Mkdir(small, 0o755)
	os.Mkdir(big, 0o755)
	writeRandom(t, filepath.Join(small, "f"), 1, 32<<20)
	writeRandom(t, filepath.Join(big, "f"), 2, 1<<30)
	e := newEnv(t)
	e.must(t, 0, "init")
	rssSmall := maxRSS(t, e, small)
	rssBig := maxRSS(t, e, big)
	t.Logf("peak RSS: 32 MiB file %d MiB, 1 GiB file %d MiB", rssSmall>>20, rssBig>>20)
	if rssBig > rssSmall+96<<20 || rssBig > 320<<20 {
		t.Fatalf("peak RSS grew with the file: %d MiB for 32 MiB, %d MiB for 1 GiB", rssSmall>>20, rssBig>>20)
	}
}
