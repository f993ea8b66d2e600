package loopfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Btrfs returns the mount point of a fresh btrfs filesystem of sizeMiB
// (btrfs needs at least 114 MiB; smaller sizes are raised to that).
func Btrfs(t testing.TB, sizeMiB int) string {
	t.Helper()
	return create(t, "btrfs", max(sizeMiB, 114), "mkfs.btrfs", "-f", "-q")
}

// XFS returns the mount point of a fresh XFS filesystem with reflink=1
// (XFS needs at least 300 MiB; smaller sizes are raised to that).
func XFS(t testing.TB, sizeMiB int) string {
	t.Helper()
	return create(t, "xfs", max(sizeMiB, 300), "mkfs.xfs", "-f", "-q", "-m", "reflink=1")
}

// Ext4 returns the mount point of a fresh ext4 filesystem.
func Ext4(t testing.TB, sizeMiB int) string {
	t.Helper()
	return create(t, "ext4", max(sizeMiB, 8), "mkfs.ext4", "-F", "-q")
}

// Tmpfs returns the mount point of a fresh tmpfs (no loop device needed).
func Tmpfs(t testing.TB, sizeMiB int) string {
	t.Helper()
	requireRoot(t, "tmpfs")
	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, fmt.Sprintf("size=%dm", max(sizeMiB, 1))); err != nil {
		t.Fatalf("loopfs: mount tmpfs on %s: %v", mnt, err)
	}
	t.Cleanup(func() { unmount(t, mnt) })
	return mnt
}

func requireRoot(t testing.TB, fs string) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "a loopback %s needs root (euid is %d)", fs, os.Geteuid())
	}
}

// create builds image → loop device → mkfs → mount. Cleanups are registered
// as soon as each resource exists, so a failure half-way still undoes it
// (t.Cleanup runs in reverse order: unmount, then detach).
func create(t testing.TB, fs string, sizeMiB int, mkfs string, mkfsArgs ...string) string {
	t.Helper()
	requireRoot(t, fs)
	for _, tool := range []string{mkfs, "losetup"} {
		if _, err := exec.LookPath(tool); err != nil {
			skipOrFail(t, "%s is not installed (Debian: apt-get install btrfs-progs xfsprogs e2fsprogs mount)", tool)
		}
	}
	dir := t.TempDir()
	img := filepath.Join(dir, fs+".img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatalf("loopfs: %v", err)
	}
	err = f.Truncate(int64(sizeMiB) << 20) // sparse
	f.Close()
	if err != nil {
		t.Fatalf("loopfs: size %s: %v", img, err)
	}
	dev := strings.TrimSpace(run(t, "losetup", "--find", "--show", img))
	if !strings.HasPrefix(dev, "/dev/loop") {
		t.Fatalf("loopfs: losetup gave %q for %s", dev, img)
	}
	t.Cleanup(func() { detach(t, dev, img) })
	run(t, mkfs, append(mkfsArgs, dev)...)
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatalf("loopfs: %v", err)
	}
	if err := unix.Mount(dev, mnt, fs, 0, ""); err != nil {
		t.Fatalf("loopfs: mount %s (%s) on %s: %v", dev, fs, mnt, err)
	}
	t.Cleanup(func() { unmount(t, mnt) })
	return mnt
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("loopfs: %s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String()
}

// unmount retries while the mount is busy (a child process of the test may
// still be exiting) and falls back to a lazy unmount so the loop device can
// still be released once the last user goes away.
func unmount(t testing.TB, mnt string) {
	var err error
	for i := 0; i < 20; i++ {
		err = unix.Unmount(mnt, 0)
		if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return // unmounted (EINVAL: not a mount point any more)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if lerr := unix.Unmount(mnt, unix.MNT_DETACH); lerr != nil {
		t.Errorf("loopfs: cannot unmount %s: %v (lazy: %v)", mnt, err, lerr)
		return
	}
	t.Logf("loopfs: %s was busy (%v); unmounted lazily", mnt, err)
}

// detach releases the loop device, but only if it still backs our image:
// never touch a loop device someone else attached.
func detach(t testing.TB, dev, img string) {
	var last string
	for i := 0; i < 20; i++ {
		back, err := os.ReadFile("/sys/block/" + filepath.Base(dev) + "/loop/backing_file")
		if err != nil || !strings.HasPrefix(strings.TrimSpace(string(back)), img) {
			return // already detached (a "(deleted)" suffix still counts as ours)
		}
		out, err := exec.Command("losetup", "-d", dev).CombinedOutput()
		if err == nil {
			// losetup -d is lazy (autoclear) while still in use; wait for it.
			last = "still attached after losetup -d"
		} else {
			last = fmt.Sprintf("%v: %s", err, strings.TrimSpace(string(out)))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("loopfs: cannot detach %s (%s): %s", dev, img, last)
}
