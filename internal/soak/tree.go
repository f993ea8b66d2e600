package soak

import (
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// tree is one client's source directory and the generator that changes it.
// Everything it writes follows from its seed: the same seed and the same
// number of rounds give the same tree (only times differ).
type tree struct {
	root    string
	r       *rand.Rand
	files   []string // relative paths of the regular files it made, sorted
	next    int      // counter for new names
	keep    int      // forget's --keep-last: how long a reverted version waits
	maxSize int64
}

// A new file is small (under 16 KiB, two in three), text (compressible, up
// to maxSize/16), medium (maxSize/64 to maxSize/4) or, one in 33, large (up
// to maxSize). Files are spread over dirCount×subCount directories.
const (
	smallMax = 16 << 10
	dirCount = 16
	subCount = 4
)

// revertFiles hold content that comes back: a version returns once forget has
// dropped every snapshot that held it, so its blobs are in packs a prune
// marks, and a backup must not trust them.
const revertFiles = 4

func newTree(root string, seed uint64, keepLast int, maxSize int64) *tree {
	return &tree{root: root, r: rand.New(rand.NewPCG(seed, 0x50a4)), keep: keepLast, maxSize: maxSize}
}

// create writes n files and a few symlinks and empty directories.
func (t *tree) create(n int) error {
	for range n {
		if err := t.add(); err != nil {
			return err
		}
	}
	for i := range max(n/200, 1) {
		dir := t.dir()
		if err := os.MkdirAll(filepath.Join(t.root, dir), 0o755); err != nil {
			return err
		}
		if err := os.Symlink(fmt.Sprintf("../target-%d", i), filepath.Join(t.root, dir, fmt.Sprintf("link-%d", i))); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(t.root, dir, fmt.Sprintf("empty-%d", i)), 0o750); err != nil {
			return err
		}
	}
	return t.reverts(0)
}

func (t *tree) dir() string {
	return filepath.Join(fmt.Sprintf("d%02d", t.r.IntN(dirCount)), fmt.Sprintf("s%d", t.r.IntN(subCount)))
}

// add writes one new file of a random class.
func (t *tree) add() error {
	t.next++
	var name string
	var size int64
	text := false
	m := t.maxSize
	switch k := t.r.IntN(100); {
	case k < 68:
		name, size = "small", int64(t.r.IntN(smallMax))
	case k < 88:
		name, size, text = "text", 4<<10+t.r.Int64N(max(m/16, 1)), true
	case k < 97:
		name, size = "medium", m/64+t.r.Int64N(max(m/4-m/64, 1))
	default:
		name, size = "large", m/4+t.r.Int64N(max(m-m/4, 1))
	}
	ext := ".bin"
	if text {
		ext = ".txt"
	}
	rel := filepath.Join(t.dir(), fmt.Sprintf("%s-%d%s", name, t.next, ext))
	if err := writeFile(filepath.Join(t.root, rel), t.r.Uint64(), size, text); err != nil {
		return err
	}
	t.insert(rel)
	return nil
}

func (t *tree) insert(rel string) {
	i := sort.SearchStrings(t.files, rel)
	t.files = append(t.files, "")
	copy(t.files[i+1:], t.files[i:])
	t.files[i] = rel
}

func (t *tree) remove(i int) string {
	rel := t.files[i]
	t.files = append(t.files[:i], t.files[i+1:]...)
	return rel
}

// Change counts what one round did.
type Change struct {
	Modified, Added, Deleted, Renamed, Chmod int
}

// change modifies, adds, deletes and renames 1–5% of the files (round > 0),
// and moves the revert files on by one version.
func (t *tree) change(round int) (Change, error) {
	var c Change
	n := max(len(t.files)*(1+t.r.IntN(5))/100, 1)
	for range n {
		if len(t.files) == 0 {
			break
		}
		i := t.r.IntN(len(t.files))
		p := filepath.Join(t.root, t.files[i])
		var err error
		switch k := t.r.IntN(100); {
		case k < 30: // rewrite whole: new content, new size
			text := strings.HasSuffix(p, ".txt")
			fi, serr := os.Stat(p)
			if serr != nil {
				return c, serr
			}
			size := max(fi.Size()/2+t.r.Int64N(fi.Size()+1), 0)
			err = writeFile(p, t.r.Uint64(), size, text)
			c.Modified++
		case k < 50: // change a block in place: the rest deduplicates
			err = t.patch(p)
			c.Modified++
		case k < 58: // append
			err = t.appendTo(p)
			c.Modified++
		case k < 63: // mode only
			err = t.chmod(p)
			c.Chmod++
		case k < 72:
			err = os.Remove(p)
			t.remove(i)
			c.Deleted++
		case k < 82: // rename into another directory
			rel := t.remove(i)
			t.next++
			to := filepath.Join(t.dir(), fmt.Sprintf("%s-r%d", strings.SplitN(filepath.Base(rel), "-", 2)[0], t.next)+filepath.Ext(rel))
			if err = os.MkdirAll(filepath.Join(t.root, filepath.Dir(to)), 0o755); err == nil {
				err = os.Rename(p, filepath.Join(t.root, to))
			}
			t.insert(to)
			c.Renamed++
		default:
			err = t.add()
			c.Added++
		}
		if err != nil {
			return c, err
		}
	}
	return c, t.reverts(round)
}

// reverts writes version round mod (keep+2) of each revert file: a version
// comes back after every snapshot that had it was forgotten.
func (t *tree) reverts(round int) error {
	period := t.keep + 2
	for k := range revertFiles {
		v := (round + k) % period
		size := int64(16<<10) + int64(v)*t.maxSize/2/int64(period)
		if err := writeFile(filepath.Join(t.root, fmt.Sprintf("revert-%d.bin", k)), uint64(1000*k+v), size, false); err != nil {
			return err
		}
	}
	return nil
}

func (t *tree) patch(p string) error {
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	n := int64(4<<10 + t.r.IntN(60<<10))
	off := int64(0)
	if fi.Size() > n {
		off = t.r.Int64N(fi.Size() - n)
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return err
	}
	if err := fill(f, t.r.Uint64(), n, false); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (t *tree) appendTo(p string) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if err := fill(f, t.r.Uint64(), int64(1+t.r.IntN(32<<10)), strings.HasSuffix(p, ".txt")); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (t *tree) chmod(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	mode := fs.FileMode(0o600)
	if fi.Mode().Perm() == 0o600 {
		mode = 0o644
	}
	return os.Chmod(p, mode)
}

func writeFile(p string, seed uint64, size int64, text bool) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	if err := fill(f, seed, size, text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

var words = strings.Fields("backup restore snapshot pack index tree blob chunk key lock check prune mark sweep data repository file directory the of and a to in is")

// fill writes n bytes from seed: random, or text of words (compressible).
func fill(w io.Writer, seed uint64, n int64, text bool) error {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	src := rand.NewChaCha8(s)
	buf := make([]byte, min(n, 1<<20))
	var r *rand.Rand
	if text {
		r = rand.New(src)
	}
	for n > 0 {
		b := buf[:min(n, int64(len(buf)))]
		if text {
			for i := 0; i < len(b); {
				i += copy(b[i:], words[r.IntN(len(words))])
				if i < len(b) {
					b[i] = " \n"[r.IntN(2)]
					i++
				}
			}
		} else {
			_, _ = src.Read(b)
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		n -= int64(len(b))
	}
	return nil
}
