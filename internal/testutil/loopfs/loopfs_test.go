package loopfs

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestFilesystems(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("loop devices are Linux only")
	}
	for name, mk := range map[string]func(testing.TB, int) string{
		"btrfs": Btrfs, "xfs": XFS, "ext4": Ext4, "tmpfs": Tmpfs,
	} {
		t.Run(name, func(t *testing.T) {
			var mnt string
			t.Run("use", func(t *testing.T) {
				mnt = mk(t, 0)
				if err := os.WriteFile(filepath.Join(mnt, "f"), []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
				if !mounted(t, mnt, name) {
					t.Fatalf("%s is not mounted as %s", mnt, name)
				}
			})
			// The subtest's cleanups have run: nothing of it may be left.
			if mounted(t, mnt, "") {
				t.Fatalf("%s still mounted after cleanup", mnt)
			}
		})
	}
}

func mounted(t *testing.T, mnt, fstype string) bool {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && f[1] == mnt && (fstype == "" || f[2] == fstype) {
			return true
		}
	}
	return false
}
