package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/stillpoint-backup/stillpoint/internal/view"
)

// Clonefile freezes single files on APFS with clonefile(2), as Reflink
// does on Linux: a clone shares the file's blocks, so it costs no copy,
// and it is one state of the file even while the file is open for
// writing. It fits where apfs does not (not root, no Full Disk Access
// needed) at consistency File.
//
//   - Clone(path): the clone is kept in the staging directory until
//     Release and the view serves it.
//   - CloneOnOpen: every regular file the view opens is cloned at that
//     moment; the clone is unlinked as soon as it is open, so only a kill
//     in between leaves a file, in the labelled staging directory that
//     the next run removes.
//
// The staging directory is <volume>/.stillpoint-staging/<label name>, or,
// where the volume's root is not writable (not root), below the user's
// cache directory when that is on the same volume.
type Clonefile struct {
	CloneOnOpen bool
	// Dir, when set, holds the staging directories instead (it must be on
	// the volume of the sources).
	Dir string
}

// Name implements Provider.
func (*Clonefile) Name() string { return "clonefile" }

// cloneContainers are the places a clonefile staging directory of volume
// v may be, in order of preference.
func cloneContainers(v FSInfo) []string {
	out := []string{filepath.Join(v.Mountpoint, StagingDir)}
	if c, err := os.UserCacheDir(); err == nil {
		if cv, err := (darwinSystem{}).VolumeOf(c); err == nil && cv.Mountpoint == v.Mountpoint {
			out = append(out, filepath.Join(c, "stillpoint", "clones"))
		}
	}
	return out
}

func (c *Clonefile) containers(v FSInfo) []string {
	if c.Dir != "" {
		return []string{c.Dir}
	}
	return cloneContainers(v)
}

// container picks the first place where a clone can be made, by making
// one: it leaves nothing behind.
func (c *Clonefile) container(v FSInfo) (string, error) {
	var errs []error
	for _, dir := range c.containers(v) {
		err := probeClonefile(dir)
		if err == nil {
			return dir, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", dir, err))
	}
	return "", errors.Join(errs...)
}

func probeClonefile(dir string) error {
	made := false
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		made = true
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cannot create it (%w); clones need root or write permission", err)
	}
	defer func() {
		if made {
			os.Remove(dir)
		}
	}()
	f, err := os.CreateTemp(dir, "probe-")
	if err != nil {
		return fmt.Errorf("cannot create a file there: %w", err)
	}
	src := f.Name()
	defer os.Remove(src)
	_, err = f.Write(make([]byte, 4096))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cannot write a probe file: %w", err)
	}
	dst := src + ".clone"
	if err := unix.Clonefile(src, dst, unix.CLONE_NOFOLLOW|unix.CLONE_NOOWNERCOPY); err != nil {
		return fmt.Errorf("no clonefile support: %w", err)
	}
	return os.Remove(dst)
}

// Detect implements Provider.
func (c *Clonefile) Detect(path string) (Fit, error) {
	v, err := (darwinSystem{}).VolumeOf(path)
	if err != nil {
		return Fit{}, err
	}
	switch {
	case v.FSType != "apfs":
		return Fit{Provider: "clonefile", Reason: fmt.Sprintf("%s is on %s (%s): clonefile needs APFS", path, v.FSType, v.Mountpoint)}, nil
	case v.ReadOnly:
		return Fit{Provider: "clonefile", Reason: fmt.Sprintf("%s is mounted read-only: no place for clones", v.Mountpoint)}, nil
	}
	dir, err := c.container(v)
	if err != nil {
		return Fit{Provider: "clonefile", Reason: fmt.Sprintf("%s (volume %s): %v", path, v.Mountpoint, err)}, nil
	}
	return Fit{Provider: "clonefile", OK: true, Consistency: File, Reason: "per-file clones (clonefile) in " + dir}, nil
}

// Create implements Provider: it makes the labelled staging directory.
func (c *Clonefile) Create(_ context.Context, sources []string, label Label) (Snapshot, error) {
	var vol FSInfo
	for _, p := range sources {
		v, err := (darwinSystem{}).VolumeOf(p)
		if err != nil {
			return nil, fmt.Errorf("clonefile: %w", err)
		}
		if vol.Mountpoint != "" && v.Mountpoint != vol.Mountpoint {
			return nil, fmt.Errorf("clonefile: %s is not on the volume %s", p, vol.Mountpoint)
		}
		vol = v
	}
	if vol.Mountpoint == "" {
		return nil, errors.New("clonefile: no sources")
	}
	container, err := c.container(vol)
	if err != nil {
		return nil, fmt.Errorf("clonefile: no place for clones on %s: %w", vol.Mountpoint, err)
	}
	s := &clonefileSnapshot{sources: sources, volume: vol.Mountpoint, container: container, name: label.Name(),
		cloneOnOpen: c.CloneOnOpen, clones: map[string]cfClone{}}
	s.dir = filepath.Join(container, s.name)
	if err := os.MkdirAll(container, 0o700); err != nil {
		return nil, fmt.Errorf("clonefile: creating %s: %w", container, err)
	}
	if err := writeAPFSLabel(container, apfsLabel{Label: label, Volume: vol.Mountpoint}); err != nil {
		return nil, fmt.Errorf("clonefile: writing the label in %s: %w", container, err)
	}
	if err := os.Mkdir(s.dir, 0o700); err != nil {
		return nil, errors.Join(fmt.Errorf("clonefile: creating %s: %w", s.dir, err), s.Release())
	}
	return s, nil
}

type cfClone struct {
	staged string
	stat   view.Stat // the live file's metadata when cloned
}

type clonefileSnapshot struct {
	sources                      []string
	volume, container, name, dir string
	cloneOnOpen                  bool
	seq                          atomic.Uint64

	mu     sync.Mutex
	clones map[string]cfClone // by original path
	done   bool
}

func (s *clonefileSnapshot) Provider() string         { return "clonefile" }
func (s *clonefileSnapshot) Consistency() Consistency { return File }
func (s *clonefileSnapshot) Sources() []string        { return s.sources }
func (s *clonefileSnapshot) View() view.View          { return &clonefileView{s: s} }
func (s *clonefileSnapshot) Notes() []string          { return nil }

// Location is the staging directory of this run's clones.
func (s *clonefileSnapshot) Location() string { return s.dir }

// Clone implements Cloner.
func (s *clonefileSnapshot) Clone(path string) error {
	orig, err := absClean(path)
	if err != nil {
		return err
	}
	relp, err := relInVolume(orig, s.volume)
	if err != nil {
		return fmt.Errorf("clonefile: cannot clone %s: %w", path, err)
	}
	staged := filepath.Join(s.dir, "named", relp)
	if err := os.MkdirAll(filepath.Dir(staged), 0o700); err != nil {
		return fmt.Errorf("clonefile: %w", err)
	}
	os.Remove(staged)
	st, err := s.cloneTo(orig, staged)
	if err != nil {
		return fmt.Errorf("clonefile: cloning %s: %w", path, err)
	}
	s.mu.Lock()
	s.clones[orig] = cfClone{staged: staged, stat: *st}
	s.mu.Unlock()
	return nil
}

// cloneTo clones path as dst and returns the metadata the live file had
// when cloned. When the file was written during the clone, it is the
// metadata from before, which is not later than the bytes: the next backup
// then sees the file changed and reads it again.
func (s *clonefileSnapshot) cloneTo(path, dst string) (*view.Stat, error) {
	lv := &view.Live{}
	before, err := lv.Lstat(path)
	if err != nil {
		return nil, err
	}
	if before.Type != view.TypeRegular {
		return nil, &os.PathError{Op: "clonefile", Path: path, Err: errCloneNotRegular}
	}
	if err := unix.Clonefile(path, dst, unix.CLONE_NOFOLLOW|unix.CLONE_NOOWNERCOPY); err != nil {
		return nil, &os.PathError{Op: "clonefile", Path: path, Err: err}
	}
	st := before
	if after, err := lv.Lstat(path); err == nil && sameFileState(before, after) {
		st = after
	}
	if cs, err := lv.Lstat(dst); err == nil {
		st.Size, st.Blocks = cs.Size, cs.Blocks
	}
	return st, nil
}

// cloneOpen clones path into the staging directory, opens the clone and
// unlinks it, so nothing stays on disk.
func (s *clonefileSnapshot) cloneOpen(path string) (view.File, error) {
	dst := filepath.Join(s.dir, "c"+strconv.FormatUint(s.seq.Add(1), 10))
	st, err := s.cloneTo(path, dst)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(dst)
	os.Remove(dst)
	if err != nil {
		return nil, err
	}
	return &cfFile{File: f, stat: st}, nil
}

// Release removes the staging directory and then its label.
func (s *clonefileSnapshot) Release() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return nil
	}
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("clonefile: removing staging directory %s: %w (stillpoint doctor --cleanup removes it)", s.dir, err)
	}
	if err := os.Remove(filepath.Join(s.container, s.name+".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("clonefile: removing label: %w", err)
	}
	os.Remove(s.container) // only when empty: other runs may share it
	s.done = true
	return nil
}

var errCloneNotRegular = errors.New("not a regular file")

// cannotClonefile: the file is fine but cannot be cloned here (another
// volume below a source, a filesystem without clones), so read it live.
func cannotClonefile(err error) bool {
	return errors.Is(err, errCloneNotRegular) || errors.Is(err, unix.EXDEV) ||
		errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPERM)
}

func sameFileState(a, b *view.Stat) bool {
	return a.Ino == b.Ino && a.Size == b.Size && a.Mtime.Equal(b.Mtime) && a.Ctime.Equal(b.Ctime)
}

// clonefileView serves clones for cloned files and live entries otherwise.
type clonefileView struct{ s *clonefileSnapshot }

var cfLive = &view.Live{}

func (v *clonefileView) lookup(p string) (cfClone, bool) {
	v.s.mu.Lock()
	defer v.s.mu.Unlock()
	c, ok := v.s.clones[filepath.Clean(p)]
	return c, ok
}

func (v *clonefileView) Lstat(p string) (*view.Stat, error) {
	if c, ok := v.lookup(p); ok {
		st := c.stat
		return &st, nil
	}
	return cfLive.Lstat(p)
}

func (v *clonefileView) ReadDir(p string) ([]string, error)    { return cfLive.ReadDir(p) }
func (v *clonefileView) Readlink(p string) (string, error)     { return cfLive.Readlink(p) }
func (v *clonefileView) Xattrs(p string) ([]view.Xattr, error) { return cfLive.Xattrs(p) }

func (v *clonefileView) Open(p string) (view.File, error) {
	if c, ok := v.lookup(p); ok {
		f, err := os.Open(c.staged)
		if err != nil {
			return nil, err
		}
		st := c.stat
		return &cfFile{File: f, stat: &st}, nil
	}
	if v.s.cloneOnOpen {
		f, err := v.s.cloneOpen(p)
		if err == nil {
			return f, nil
		}
		if !cannotClonefile(err) {
			return nil, err
		}
	}
	return cfLive.Open(p)
}

// cfFile is a clone, read with the live file's metadata.
type cfFile struct {
	*os.File
	stat *view.Stat
}

func (f *cfFile) Stat() (*view.Stat, error) {
	st := *f.stat
	return &st, nil
}

// Consistency tells OriginOf that the bytes are a per-file clone.
func (f *cfFile) Consistency() Consistency { return File }
