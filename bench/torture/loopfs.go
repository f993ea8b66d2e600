//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A loopFS is a filesystem in an image file on a loop device, mounted for
// one workload and mode. Every one is unmounted and detached again, also
// when the run is interrupted (see releaseAll).
type loopFS struct {
	kind, img, dev, mnt string
}

var (
	loopMu sync.Mutex
	loops  = map[*loopFS]bool{}
)

// mountLoop makes a fresh filesystem of kind "btrfs" or "xfs" (XFS with
// reflink) of sizeMiB (sparse) in dir.
func mountLoop(kind, dir string, sizeMiB int) (*loopFS, error) {
	var mkfs []string
	switch kind {
	case "btrfs":
		mkfs = []string{"mkfs.btrfs", "-f", "-q"}
	case "xfs":
		mkfs = []string{"mkfs.xfs", "-f", "-q", "-m", "reflink=1"}
	default:
		return nil, fmt.Errorf("no loop filesystem %q", kind)
	}
	l := &loopFS{kind: kind, img: filepath.Join(dir, kind+".img"), mnt: filepath.Join(dir, "mnt")}
	f, err := os.Create(l.img)
	if err != nil {
		return nil, err
	}
	err = f.Truncate(int64(sizeMiB) << 20)
	f.Close()
	if err != nil {
		return nil, err
	}
	out, err := exec.Command("losetup", "--find", "--show", l.img).Output()
	if err != nil {
		os.Remove(l.img)
		return nil, fmt.Errorf("losetup: %v", err)
	}
	l.dev = strings.TrimSpace(string(out))
	loopMu.Lock()
	loops[l] = true
	loopMu.Unlock()
	if out, err := exec.Command(mkfs[0], append(mkfs[1:], l.dev)...).CombinedOutput(); err != nil {
		l.release()
		return nil, fmt.Errorf("%s: %v: %s", mkfs[0], err, out)
	}
	if err := os.MkdirAll(l.mnt, 0o755); err != nil {
		l.release()
		return nil, err
	}
	if err := unix.Mount(l.dev, l.mnt, kind, 0, ""); err != nil {
		l.release()
		return nil, fmt.Errorf("mount %s on %s: %v", l.dev, l.mnt, err)
	}
	return l, nil
}

// release unmounts (retrying while busy, lazily at last), detaches the
// loop device if it still backs our image, and removes the image.
func (l *loopFS) release() error {
	var errs []error
	if isMountPoint(l.mnt) {
		var err error
		for range 40 {
			if err = unix.Unmount(l.mnt, 0); err == nil || !errors.Is(err, unix.EBUSY) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil && errors.Is(err, unix.EBUSY) {
			err = unix.Unmount(l.mnt, unix.MNT_DETACH)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %v", l.mnt, err))
		}
	}
	if l.dev != "" {
		for range 40 {
			back, err := os.ReadFile("/sys/block/" + filepath.Base(l.dev) + "/loop/backing_file")
			if err != nil || !strings.HasPrefix(strings.TrimSpace(string(back)), l.img) {
				break // detached (or someone else's now: leave it)
			}
			exec.Command("losetup", "-d", l.dev).Run()
			time.Sleep(50 * time.Millisecond)
		}
	}
	os.Remove(l.img)
	loopMu.Lock()
	delete(loops, l)
	loopMu.Unlock()
	return errors.Join(errs...)
}

func isMountPoint(p string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && unescapeMount(f[4]) == p {
			return true
		}
	}
	return false
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// releaseAll releases every loop filesystem still held (on an interrupt).
func releaseAll() {
	loopMu.Lock()
	ls := make([]*loopFS, 0, len(loops))
	for l := range loops {
		ls = append(ls, l)
	}
	loopMu.Unlock()
	for _, l := range ls {
		if err := l.release(); err != nil {
			fmt.Fprintln(os.Stderr, "torture:", err)
		}
	}
}
