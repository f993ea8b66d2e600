//go:build linux

package mount

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Available tells why FUSE cannot be used here, nil when it can.
func Available() error { return available("/dev/fuse", os.Geteuid(), exec.LookPath) }

func available(device string, euid int, lookPath func(string) (string, error)) error {
	if _, err := os.Stat(device); err != nil {
		return fmt.Errorf("FUSE is not available: %s is missing (load the module with `modprobe fuse`; in a container, give it the device /dev/fuse and CAP_SYS_ADMIN)", device)
	}
	if euid == 0 {
		return nil // root mounts without the helper
	}
	if _, err := lookPath("fusermount3"); err != nil {
		if _, err := lookPath("fusermount"); err != nil {
			return errors.New("FUSE is not available: fusermount3 is not installed (on Debian and Ubuntu: apt install fuse3)")
		}
	}
	return nil
}

// Serve mounts the snapshots of r read-only at dir and serves them until
// ctx ends (then it unmounts) or the file system is unmounted from
// outside (fusermount -u, umount); both end it without an error. The
// caller holds a lock of the repository for as long as Serve runs.
func Serve(ctx context.Context, r Repo, dir string, opts Options) error {
	if err := Available(); err != nil {
		return err
	}
	if err := CheckPlace(dir, ""); err != nil {
		return err
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.RefreshEvery <= 0 {
		opts.RefreshEvery = DefaultRefresh
	}
	warn := opts.Warn
	if warn == nil {
		warn = func(string) {}
	}
	windows := NewWindowLoader(r)
	fsys := &filesystem{r: r, cache: NewCache(windows, opts.CacheSize), windows: windows, holes: NewHoles(r.Hash),
		refreshEvery: opts.RefreshEvery, warn: warn, started: time.Now()}
	fsys.pusher = newPusher(fsys)
	if err := fsys.load(ctx); err != nil {
		return fmt.Errorf("read the snapshots: %w", err)
	}
	name := opts.Name
	if name == "" {
		name = "stillpoint"
	}
	server, err := fs.Mount(dir, fsys.newRoot(), &fs.Options{
		MountOptions: fuse.MountOptions{
			FsName: name, Name: "stillpoint",
			// the kernel checks modes and owners as on any file system,
			// and refuses every write with EROFS
			Options:          []string{"ro", "default_permissions"},
			AllowOther:       opts.AllowOther,
			DirectMount:      os.Geteuid() == 0,
			DirectMountFlags: syscall.MS_RDONLY | syscall.MS_NOSUID | syscall.MS_NODEV,
			MaxReadAhead:     1 << 20,
			MaxWrite:         1 << 20,
			MaxBackground:    32,
			// no link ever changes its target (latest is a new inode then)
			EnableSymlinkCaching: true,
			Debug:                opts.Debug,
		},
		// no defaults: every node sets its own timeouts, and a name that is
		// not there yet (a new snapshot) is never cached as missing
		RootStableAttr: &fs.StableAttr{Ino: 1},
	})
	if err != nil {
		return mountError(dir, err)
	}
	pushCtx, stopPush := context.WithCancel(context.Background())
	defer stopPush()
	go fsys.pusher.run(pushCtx)
	if opts.Ready != nil {
		opts.Ready()
	}
	done := make(chan struct{})
	go func() {
		server.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	return unmount(server, dir, done)
}

// unmount unmounts dir; when it is busy (a shell is in it, a file open)
// it detaches it, so it goes once the last user leaves.
func unmount(server *fuse.Server, dir string, done <-chan struct{}) error {
	var err error
	for range 5 {
		if err = server.Unmount(); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		if lerr := lazyUnmount(dir); lerr != nil {
			return fmt.Errorf("unmount %s: %v; unmount it with `fusermount3 -u -z %s`", dir, err, dir)
		}
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("unmount %s: the kernel did not release it within 10s", dir)
	}
	return nil
}

func lazyUnmount(dir string) error {
	if os.Geteuid() == 0 {
		return syscall.Unmount(dir, syscall.MNT_DETACH)
	}
	bin, err := exec.LookPath("fusermount3")
	if err != nil {
		if bin, err = exec.LookPath("fusermount"); err != nil {
			return err
		}
	}
	return exec.Command(bin, "-u", "-z", dir).Run()
}

func mountError(dir string, err error) error {
	msg := err.Error()
	switch {
	case errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES):
		return fmt.Errorf("mount %s: %v (run as root, or install fuse3 so that fusermount3 can mount for you)", dir, err)
	case errors.Is(err, syscall.ENODEV):
		return fmt.Errorf("mount %s: the kernel has no FUSE (`modprobe fuse`): %v", dir, err)
	}
	return fmt.Errorf("mount %s: %s", dir, msg)
}
