package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/stillpoint-backup/stillpoint/internal/view"
)

// Reflink freezes single files with FICLONE (XFS with reflink, btrfs, and
// any filesystem that implements it): a clone shares the file's blocks, so
// it costs no copy, and it is taken under the file's inode lock, so it
// holds the file as it was between two write calls, even while the file is
// open for writing or locked.
//
// Two ways to freeze a file, chosen for simplicity:
//   - Clone(path), e.g. for the files a run knows are busy, right after the
//     set is created: the clone is kept in <mount point>/.stillpoint-staging/
//     <label name>/<path below the mount point> until Release, and the view
//     serves it (content and metadata as cloned).
//   - CloneOnOpen: every regular file the view opens is cloned at that
//     moment into an unnamed O_TMPFILE in the staging directory, so nothing
//     is left on disk even after kill -9.
//
// Everything else (directories, links, xattrs, files that cannot be cloned
// such as those under another mount) is read live.
type Reflink struct {
	CloneOnOpen bool
}

// Name implements Provider.
func (Reflink) Name() string { return "reflink" }

// Detect implements Provider by cloning a probe between two unnamed files
// at the mount point: it leaves nothing behind.
func (Reflink) Detect(path string) (Fit, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return Fit{}, err
	}
	m, err := mountOf(real)
	if err != nil {
		return Fit{}, err
	}
	fs := infoOf(m)
	if fs.ReadOnly {
		return Fit{Provider: "reflink", Reason: fmt.Sprintf("%s is mounted read-only: no place for clones", fs.Mountpoint)}, nil
	}
	if err := probeClone(fs.Mountpoint); err != nil {
		return Fit{Provider: "reflink", Reason: fmt.Sprintf("%s (%s at %s): %v", path, fs.FSType, fs.Mountpoint, err)}, nil
	}
	return Fit{Provider: "reflink", OK: true, Consistency: File,
		Reason: "per-file clones in " + filepath.Join(fs.Mountpoint, StagingDir)}, nil
}

func probeClone(dir string) error {
	a, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("cannot create a file there (%w); clones need root or write permission", err)
	}
	defer unix.Close(a)
	if _, err := unix.Write(a, make([]byte, 4096)); err != nil {
		return fmt.Errorf("cannot write a probe file: %w", err)
	}
	b, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	defer unix.Close(b)
	if err := unix.IoctlFileClone(b, a); err != nil {
		return fmt.Errorf("no reflink support (FICLONE: %w)", err)
	}
	return nil
}

// Prepare implements Preparer: a reflink snapshot clones files as the
// run opens them, so all that Create does (the label, the staging
// directory) can come before the point in time.
func (r Reflink) Prepare(ctx context.Context, sources []string, label Label) (Pending, error) {
	s, err := r.Create(ctx, sources, label)
	if err != nil {
		return nil, err
	}
	return &made{snap: s}, nil
}

// Create implements Provider: it makes the labelled staging directory.
func (r Reflink) Create(_ context.Context, sources []string, label Label) (Snapshot, error) {
	mp := ""
	for _, p := range sources {
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil, fmt.Errorf("reflink: %w", err)
		}
		m, err := mountOf(real)
		if err != nil {
			return nil, fmt.Errorf("reflink: %w", err)
		}
		if mp != "" && m.Mountpoint != mp {
			return nil, fmt.Errorf("reflink: %s is not on the filesystem at %s", p, mp)
		}
		mp = m.Mountpoint
	}
	if mp == "" {
		return nil, errors.New("reflink: no sources")
	}
	s := &reflinkSnapshot{sources: sources, mount: mp, container: filepath.Join(mp, StagingDir),
		name: label.Name(), cloneOnOpen: r.CloneOnOpen, clones: map[string]clone{}}
	s.dir = filepath.Join(s.container, s.name)
	if err := os.MkdirAll(s.container, 0o700); err != nil {
		return nil, fmt.Errorf("reflink: creating %s: %w", s.container, err)
	}
	if err := writeLabel(s.container, label); err != nil {
		return nil, fmt.Errorf("reflink: writing the label in %s: %w", s.container, err)
	}
	if err := os.Mkdir(s.dir, 0o700); err != nil {
		return nil, errors.Join(fmt.Errorf("reflink: creating %s: %w", s.dir, err), s.Release())
	}
	return s, nil
}

type clone struct {
	staged string
	stat   view.Stat // the live file's metadata when cloned
}

type reflinkSnapshot struct {
	sources                     []string
	mount, container, name, dir string
	cloneOnOpen                 bool

	mu     sync.Mutex
	clones map[string]clone // by original path
	done   bool
}

func (s *reflinkSnapshot) Provider() string         { return "reflink" }
func (s *reflinkSnapshot) Consistency() Consistency { return File }
func (s *reflinkSnapshot) Sources() []string        { return s.sources }
func (s *reflinkSnapshot) View() view.View          { return &reflinkView{s: s} }
func (s *reflinkSnapshot) Notes() []string          { return nil }

// Clone implements Cloner.
func (s *reflinkSnapshot) Clone(path string) error {
	orig, err := absClean(path)
	if err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(orig)
	if err != nil {
		return fmt.Errorf("reflink: %w", err)
	}
	if m, err := mountOf(real); err != nil || m.Mountpoint != s.mount {
		return fmt.Errorf("reflink: cannot clone %s: not on the filesystem at %s", path, s.mount)
	}
	staged := filepath.Join(s.dir, rel(s.mount, real))
	if err := os.MkdirAll(filepath.Dir(staged), 0o700); err != nil {
		return fmt.Errorf("reflink: %w", err)
	}
	f, st, err := cloneFile(orig, filepath.Dir(staged))
	if err != nil {
		return fmt.Errorf("reflink: cloning %s: %w", path, err)
	}
	defer f.Close()
	// Name the unnamed clone only now: a kill before this leaves nothing.
	tmp := fmt.Sprintf("/proc/self/fd/%d", f.Fd())
	os.Remove(staged)
	if err := unix.Linkat(unix.AT_FDCWD, tmp, unix.AT_FDCWD, staged, unix.AT_SYMLINK_FOLLOW); err != nil {
		return fmt.Errorf("reflink: naming the clone of %s as %s: %w", path, staged, err)
	}
	s.mu.Lock()
	s.clones[orig] = clone{staged: staged, stat: *st}
	s.mu.Unlock()
	return nil
}

// Release removes the staging directory and then its label.
func (s *reflinkSnapshot) Release() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return nil
	}
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("reflink: removing staging directory %s: %w (remove it by hand)", s.dir, err)
	}
	if err := os.Remove(filepath.Join(s.container, s.name+".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reflink: removing label: %w", err)
	}
	os.Remove(s.container) // only when empty: other runs may share it
	s.done = true
	return nil
}

// Location is the staging directory of this run's named clones.
func (s *reflinkSnapshot) Location() string { return s.dir }

// made is the Pending of a snapshot whose provider has nothing left to do
// at the point in time.
type made struct {
	snap Snapshot
	used bool
}

func (m *made) Snap(context.Context) (Snapshot, error) {
	if m.used {
		return nil, errors.New("snapshot already taken or aborted")
	}
	m.used = true
	return m.snap, nil
}

func (m *made) Abort() error {
	if m.used {
		return nil
	}
	m.used = true
	return m.snap.Release()
}
