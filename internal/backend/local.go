package backend

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// Local stores files in a directory. Packs are spread over 256
// subdirectories named by the first two characters of their name.
type Local struct {
	dir     string
	mkdirMu sync.Mutex
	made    map[string]bool
	directState
}

// ReadAlign is the block a caller of Local.LoadInto aligns its buffer to:
// a long read of a pack into a buffer whose address and offset agree
// modulo ReadAlign is read past the page cache on Linux (cheaper, and
// deeper on the disk). Any other buffer is read as well, through the cache.
const ReadAlign = 4096

// NewLocal returns a backend for dir; it does not touch the disk.
func NewLocal(dir string) *Local {
	return &Local{dir: dir, made: map[string]bool{}}
}

// Location implements Backend.
func (l *Local) Location() string { return l.dir }

func (l *Local) path(h Handle) string {
	if h.Kind == Config {
		return filepath.Join(l.dir, "config")
	}
	if h.Kind == Packs && len(h.Name) >= 2 {
		return filepath.Join(l.dir, string(h.Kind), h.Name[:2], h.Name)
	}
	return filepath.Join(l.dir, string(h.Kind), h.Name)
}

// Create makes the repository's folders.
func (l *Local) Create(ctx context.Context) error {
	if err := os.MkdirAll(l.dir, 0o700); err != nil {
		return err
	}
	for _, k := range Kinds {
		if k == Config {
			continue
		}
		if err := os.MkdirAll(filepath.Join(l.dir, string(k)), 0o700); err != nil {
			return err
		}
	}
	return syncDir(l.dir)
}

func (l *Local) ensureDir(d string) error {
	l.mkdirMu.Lock()
	defer l.mkdirMu.Unlock()
	if l.made[d] {
		return nil
	}
	if err := os.MkdirAll(d, 0o700); err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(d)); err != nil {
		return err
	}
	l.made[d] = true
	return nil
}

// Save implements Backend: write to a temporary name, fsync, link into
// place (which fails if the name exists, so nothing is overwritten), fsync
// the directory.
func (l *Local) Save(ctx context.Context, h Handle, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	final := l.path(h)
	dir := filepath.Dir(final)
	if err := l.ensureDir(dir); err != nil {
		return fmt.Errorf("save %s: %w", h, err)
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(dir, ".tmp-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("save %s: %w", h, err)
	}
	werr := l.writeSynced(f, data)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("save %s: %w", h, werr)
	}
	err = os.Link(tmp, final)
	_ = os.Remove(tmp)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("save %s: %w", h, ErrExists)
		}
		return fmt.Errorf("save %s: %w", h, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("save %s: %w", h, err)
	}
	return nil
}

// Load implements Backend.
func (l *Local) Load(ctx context.Context, h Handle, offset, length int64) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := l.openForLoad(h)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if length == 0 {
		fi, err := f.Stat()
		if err != nil {
			return nil, err
		}
		if offset > fi.Size() {
			return nil, fmt.Errorf("load %s: %w", h, io.ErrUnexpectedEOF)
		}
		length = fi.Size() - offset
	}
	buf := make([]byte, length)
	if err := readFull(f, h, offset, buf); err != nil {
		return nil, err
	}
	if h.Kind == Packs {
		dropRead(f, offset, len(buf))
	}
	return buf, nil
}

// LoadInto implements Backend.
func (l *Local) LoadInto(ctx context.Context, h Handle, offset int64, buf []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := l.openForLoad(h)
	if err != nil {
		return err
	}
	defer f.Close()
	if h.Kind == Packs {
		return l.readPack(f, h, offset, buf)
	}
	return readFull(f, h, offset, buf)
}

func (l *Local) openForLoad(h Handle) (*os.File, error) {
	f, err := os.Open(l.path(h))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("load %s: %w", h, ErrNotFound)
		}
		return nil, fmt.Errorf("load %s: %w", h, err)
	}
	return f, nil
}

func readFull(f *os.File, h Handle, offset int64, buf []byte) error {
	n, err := f.ReadAt(buf, offset)
	if n < len(buf) {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("load %s: %w", h, err)
	}
	return nil
}

// Stat implements Backend.
func (l *Local) Stat(ctx context.Context, h Handle) (FileInfo, error) {
	fi, err := os.Stat(l.path(h))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return FileInfo{}, fmt.Errorf("stat %s: %w", h, ErrNotFound)
		}
		return FileInfo{}, err
	}
	return FileInfo{Name: h.Name, Size: fi.Size()}, nil
}

// List implements Backend. Temporary files of an interrupted Save are not listed.
func (l *Local) List(ctx context.Context, k Kind, fn func(FileInfo) error) error {
	base := filepath.Join(l.dir, string(k))
	if k == Config {
		fi, err := os.Stat(filepath.Join(l.dir, "config"))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		return fn(FileInfo{Name: "config", Size: fi.Size()})
	}
	return filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == base {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || len(d.Name()) > 4 && d.Name()[:5] == ".tmp-" {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		return fn(FileInfo{Name: d.Name(), Size: info.Size()})
	})
}

// Remove implements Backend.
func (l *Local) Remove(ctx context.Context, h Handle) error {
	err := os.Remove(l.path(h))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// SyncRemovals implements RemovalSyncer: it fsyncs the folder of kind k (for
// packs, each of their subfolders).
func (l *Local) SyncRemovals(ctx context.Context, k Kind) error {
	base := filepath.Join(l.dir, string(k))
	dirs := []string{base}
	if k == Packs {
		entries, err := os.ReadDir(base)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		for _, e := range entries {
			if e.IsDir() {
				dirs = append(dirs, filepath.Join(base, e.Name()))
			}
		}
	}
	for _, d := range dirs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := syncDir(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// RemoveTemporary deletes temporary files left by a killed Save.
func (l *Local) RemoveTemporary() (int, error) {
	n := 0
	err := filepath.WalkDir(l.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if !d.IsDir() && len(d.Name()) > 5 && d.Name()[:5] == ".tmp-" {
			if os.Remove(p) == nil {
				n++
			}
		}
		return nil
	})
	return n, err
}

// Close implements Backend.
func (l *Local) Close() error { return nil }

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return syncDirErr(err)
	}
	return nil
}
