package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/stillpoint-backup/stillpoint/internal/view"
)

// Btrfs snaps btrfs subvolumes with read-only snapshots made by ioctl
// (no btrfs binary). Snapshots live in <mount point>/.stillpoint-snapshots/
// <label name>/<subvolume id>. Needs root: looking up nested subvolumes and
// deleting snapshots are privileged.
type Btrfs struct{}

// Name implements Provider.
func (Btrfs) Name() string { return "btrfs" }

// btrfsSource is a source resolved to its subvolume.
type btrfsSource struct {
	orig, real string
	mount      FSInfo
	root       string // subvolume root holding real
}

func resolveBtrfs(path string) (btrfsSource, string, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return btrfsSource{}, "", err
	}
	m, err := mountOf(real)
	if err != nil {
		return btrfsSource{}, "", err
	}
	src := btrfsSource{orig: path, real: real, mount: infoOf(m)}
	switch {
	case m.FSType != "btrfs":
		return src, fmt.Sprintf("%s is on %s (%s), not btrfs", path, m.FSType, m.Mountpoint), nil
	case os.Geteuid() != 0:
		return src, "btrfs snapshots need root (looking up subvolumes and deleting snapshots are privileged); run as root", nil
	case src.mount.ReadOnly:
		return src, fmt.Sprintf("the btrfs filesystem at %s is mounted read-only: no place for the snapshot", m.Mountpoint), nil
	}
	src.root, err = subvolRoot(real, m.Mountpoint)
	if err != nil {
		return src, err.Error(), nil
	}
	return src, "", nil
}

// subvolRoot walks up from real to the nearest subvolume root (inode 256),
// without leaving the mount.
func subvolRoot(real, mountpoint string) (string, error) {
	p := real
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return "", &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		p = filepath.Dir(p)
	}
	for {
		if err := unix.Stat(p, &st); err != nil {
			return "", &os.PathError{Op: "stat", Path: p, Err: err}
		}
		if st.Ino == firstFreeObjectID {
			return p, nil
		}
		if p == mountpoint || p == "/" {
			return "", fmt.Errorf("no btrfs subvolume root between %s and its mount point %s (a bind mount of a directory?): nothing to snap", real, mountpoint)
		}
		p = filepath.Dir(p)
	}
}

// Detect implements Provider.
func (Btrfs) Detect(path string) (Fit, error) {
	src, why, err := resolveBtrfs(path)
	if err != nil {
		return Fit{}, err
	}
	if why != "" {
		return Fit{Provider: "btrfs", Reason: why}, nil
	}
	return Fit{Provider: "btrfs", OK: true, Consistency: Crash,
		Reason: "read-only snapshot of subvolume " + src.root + " (crash-consistent; a point in time with the writers held)"}, nil
}

// subvol is one subvolume to snap.
type subvol struct {
	id   uint64
	root string // real path of its root
	dev  uint64 // st_dev of the live subvolume
}

// Create implements Provider.
func (b Btrfs) Create(ctx context.Context, sources []string, label Label) (Snapshot, error) {
	p, err := b.Prepare(ctx, sources, label)
	if err != nil {
		return nil, err
	}
	return p.Snap(ctx)
}

// Prepare implements Preparer: it finds the subvolumes, writes the label,
// makes the snapshots' directory and opens every subvolume, so that Snap
// is only the syncfs and the snapshot ioctls.
func (b Btrfs) Prepare(ctx context.Context, sources []string, label Label) (Pending, error) {
	var srcs []btrfsSource
	for _, p := range sources {
		src, why, err := resolveBtrfs(p)
		if err == nil && why != "" {
			err = errors.New(why)
		}
		if err == nil && len(srcs) > 0 && src.mount.Mountpoint != srcs[0].mount.Mountpoint {
			err = fmt.Errorf("not on the filesystem of %s (%s)", srcs[0].orig, srcs[0].mount.Mountpoint)
		}
		if err != nil {
			return nil, fmt.Errorf("btrfs: %s: %w", p, err)
		}
		srcs = append(srcs, src)
	}
	if len(srcs) == 0 {
		return nil, errors.New("btrfs: no sources")
	}
	mp := srcs[0].mount.Mountpoint
	s := &btrfsSnapshot{sources: sources, container: filepath.Join(mp, SnapshotDir), name: label.Name()}
	s.dir = filepath.Join(s.container, s.name)
	subs, nested, err := planSubvols(srcs, s.container)
	if err != nil {
		return nil, err
	}
	pb := &pendingBtrfs{s: s, srcs: srcs, subs: subs, nested: nested, dirFd: -1, fds: map[uint64]int{}}
	if err := pb.prepare(label); err != nil {
		return nil, errors.Join(err, pb.Abort())
	}
	return pb, nil
}

// pendingBtrfs is a btrfs snapshot whose label and directory exist and
// whose subvolumes are open, not yet snapped.
type pendingBtrfs struct {
	s      *btrfsSnapshot
	srcs   []btrfsSource
	subs   map[uint64]subvol
	nested map[string]uint64
	dirFd  int
	fds    map[uint64]int
	used   bool
}

func (p *pendingBtrfs) prepare(label Label) error {
	s := p.s
	if err := os.MkdirAll(s.container, 0o700); err != nil {
		return fmt.Errorf("btrfs: creating %s: %w", s.container, err)
	}
	if err := writeLabel(s.container, label); err != nil {
		return fmt.Errorf("btrfs: writing the label in %s: %w", s.container, err)
	}
	s.labelWritten = true
	if err := os.Mkdir(s.dir, 0o700); err != nil {
		return fmt.Errorf("btrfs: creating %s: %w", s.dir, err)
	}
	fd, err := unix.Open(s.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("btrfs: opening %s: %w", s.dir, err)
	}
	p.dirFd = fd
	for id, sv := range p.subs {
		fd, err := unix.Open(sv.root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("btrfs: opening subvolume %s: %w", sv.root, err)
		}
		p.fds[id] = fd
	}
	return nil
}

func (p *pendingBtrfs) closeFds() {
	for id, fd := range p.fds {
		unix.Close(fd)
		delete(p.fds, id)
	}
	if p.dirFd >= 0 {
		unix.Close(p.dirFd)
		p.dirFd = -1
	}
}

// Snap implements Pending.
func (p *pendingBtrfs) Snap(ctx context.Context) (Snapshot, error) {
	if p.used {
		return nil, errors.New("btrfs: snapshot already taken or aborted")
	}
	p.used = true
	err := p.s.make(ctx, p.dirFd, p.fds, p.subs)
	p.closeFds()
	if err != nil {
		return nil, errors.Join(err, p.s.Release())
	}
	p.s.view = p.s.buildView(p.srcs, p.subs, p.nested)
	return p.s, nil
}

// Abort implements Pending.
func (p *pendingBtrfs) Abort() error {
	if p.used {
		return nil
	}
	p.used = true
	p.closeFds()
	return p.s.Release()
}

// planSubvols finds the subvolume of each source and every subvolume nested
// below a source (except our own snapshots). nested maps a nested
// subvolume's root to its id.
func planSubvols(srcs []btrfsSource, container string) (map[uint64]subvol, map[string]uint64, error) {
	subs := map[uint64]subvol{}
	nested := map[string]uint64{}
	for _, src := range srcs {
		sv, err := statSubvol(src.root)
		if err != nil {
			return nil, nil, fmt.Errorf("btrfs: subvolume of %s: %w", src.orig, err)
		}
		subs[sv.id] = sv
		if err := findNested(sv, src, container, subs, nested); err != nil {
			return nil, nil, fmt.Errorf("btrfs: listing subvolumes nested in %s: %w (fix: run as root)", src.orig, err)
		}
	}
	return subs, nested, nil
}

func statSubvol(root string) (subvol, error) {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return subvol{}, &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return subvol{}, &os.PathError{Op: "fstat", Path: root, Err: err}
	}
	id, err := subvolID(fd)
	if err != nil {
		return subvol{}, &os.PathError{Op: "BTRFS_IOC_INO_LOOKUP", Path: root, Err: err}
	}
	return subvol{id: id, root: root, dev: uint64(st.Dev)}, nil
}

// findNested adds the subvolumes below src.real inside sv, recursively.
func findNested(sv subvol, src btrfsSource, container string, subs map[uint64]subvol, nested map[string]uint64) error {
	fd, err := unix.Open(sv.root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	kids, err := childSubvols(fd, sv.id)
	if err != nil {
		unix.Close(fd)
		return err
	}
	var found []subvol
	for _, k := range kids {
		dir, err := inoPath(fd, sv.id, k.dirID)
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // deleted meanwhile
			}
			unix.Close(fd)
			return err
		}
		p := filepath.Join(sv.root, dir, k.name)
		if !within(p, src.real) || within(p, container) {
			continue
		}
		if m, err := mountOf(p); err != nil || m.Mountpoint != src.mount.Mountpoint {
			continue // hidden under another mount: the walk will not see it here
		}
		child, err := statSubvol(p)
		if err != nil || child.id != k.id {
			continue // renamed or replaced meanwhile
		}
		found = append(found, child)
	}
	unix.Close(fd)
	for _, c := range found {
		subs[c.id] = c
		nested[c.root] = c.id
		if err := findNested(c, src, container, subs, nested); err != nil {
			return err
		}
	}
	return nil
}

// testHookSnap, when set by a test, runs before each snapshot ioctl; an
// error from it fails the snapshot as the kernel would.
var testHookSnap func(i int) error

// make snaps all subvolumes back to back, through the descriptors Prepare
// opened, so they are as close in time as the kernel allows.
func (s *btrfsSnapshot) make(ctx context.Context, dirFd int, fds map[uint64]int, subs map[uint64]subvol) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// The kernel's own flush before a snapshot does not wait for pages
	// already under writeback, and we measured snapshots missing writes that
	// had completed before the ioctl (1 run in ~40 of the point-in-time
	// test). syncfs writes and waits for everything first, so every write
	// completed before Snap is in the snapshot.
	if err := unix.Syncfs(dirFd); err != nil {
		return fmt.Errorf("btrfs: syncfs %s: %w", s.dir, err)
	}
	i := 0
	for id, fd := range fds {
		name := strconv.FormatUint(id, 10)
		var err error
		if testHookSnap != nil {
			err = testHookSnap(i)
		}
		if err == nil {
			err = snapCreate(dirFd, fd, name)
		}
		if err != nil {
			return fmt.Errorf("btrfs: snapshot of subvolume %s into %s: %w", subs[id].root, s.dir, err)
		}
		i++
	}
	return nil
}

type btrfsSnapshot struct {
	sources         []string
	container, name string
	dir             string
	notes           []string
	view            view.View
	labelWritten    bool

	mu   sync.Mutex
	done bool
}

func (s *btrfsSnapshot) snapPath(id uint64) string {
	return filepath.Join(s.dir, strconv.FormatUint(id, 10))
}

// buildView routes each source to its path inside its subvolume's snapshot
// and each nested subvolume (an empty directory in its parent's snapshot)
// to its own snapshot.
func (s *btrfsSnapshot) buildView(srcs []btrfsSource, subs map[uint64]subvol, nested map[string]uint64) view.View {
	var routes []route
	byRoot := map[string]subvol{}
	for _, sv := range subs {
		byRoot[sv.root] = sv
	}
	for _, src := range srcs {
		sv := byRoot[src.root]
		root := filepath.Join(s.snapPath(sv.id), rel(src.root, src.real))
		routes = append(routes, route{src.orig, &stamped{&view.Live{Strip: src.orig, Root: root}, sv.dev, Crash}})
		for np, id := range nested {
			if !within(np, src.real) {
				continue
			}
			orig := filepath.Join(src.orig, rel(src.real, np))
			routes = append(routes, route{orig, &stamped{&view.Live{Strip: orig, Root: s.snapPath(id)}, subs[id].dev, Crash}})
		}
	}
	var paths []string
	for np := range nested {
		paths = append(paths, np)
	}
	if len(paths) > 0 {
		s.notes = append(s.notes, fmt.Sprintf("btrfs: nested subvolumes %s were snapped separately: each is point-in-time, but not atomic with its parent",
			strings.Join(paths, ", ")))
	}
	return newRouter(routes, nil)
}

func (s *btrfsSnapshot) Provider() string         { return "btrfs" }
func (s *btrfsSnapshot) Consistency() Consistency { return Crash }
func (s *btrfsSnapshot) Sources() []string        { return s.sources }
func (s *btrfsSnapshot) View() view.View          { return s.view }
func (s *btrfsSnapshot) Notes() []string          { return s.notes }

// Release deletes the snapshots, their directory and the label, in that
// order, so an interrupted release still leaves a labelled leftover.
func (s *btrfsSnapshot) Release() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return nil
	}
	if err := removeSnapDir(s.dir); err != nil {
		return err
	}
	if s.labelWritten {
		if err := os.Remove(filepath.Join(s.container, s.name+".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("btrfs: removing label: %w", err)
		}
	}
	os.Remove(s.container) // only when empty: other runs may share it
	s.done = true
	return nil
}

// removeSnapDir deletes every snapshot (subvolume) in dir, anything else
// in it, and dir itself. A missing dir is not an error.
func removeSnapDir(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("btrfs: opening %s: %w", dir, err)
	}
	f := os.NewFile(uintptr(fd), dir)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("btrfs: listing %s: %w", dir, err)
	}
	var errs []error
	for _, n := range names {
		p := filepath.Join(dir, n)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			continue
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR && st.Ino == firstFreeObjectID {
			if err := snapDestroy(fd, n); err != nil {
				fix := "delete it with `btrfs subvolume delete " + p + "`"
				if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
					fix = "deleting a btrfs snapshot needs root: run as root, or " + fix
				}
				errs = append(errs, fmt.Errorf("btrfs: deleting snapshot %s: %w (%s)", p, err, fix))
			}
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, fmt.Errorf("btrfs: removing %s: %w", p, err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("btrfs: removing %s: %w", dir, err)
	}
	return nil
}

// Location is the directory holding this run's snapshots.
func (s *btrfsSnapshot) Location() string { return s.dir }
