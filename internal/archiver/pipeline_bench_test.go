package archiver_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/archiver"
	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/view"
)

// memView serves files held in memory, so the pipeline benchmark measures
// the archiver and the repository, not a disk.
type memView struct {
	files map[string][]byte
	dirs  map[string][]string
}

func newMemView() *memView {
	return &memView{files: map[string][]byte{}, dirs: map[string][]string{"/": nil}}
}

func (m *memView) add(p string, data []byte) {
	m.files[p] = data
	for child, dir := p, path.Dir(p); ; child, dir = dir, path.Dir(dir) {
		_, known := m.dirs[dir]
		m.dirs[dir] = append(m.dirs[dir], path.Base(child))
		if known || dir == "/" {
			break
		}
	}
	for d := range m.dirs {
		sort.Strings(m.dirs[d])
	}
}

var benchTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func (m *memView) Lstat(p string) (*view.Stat, error) {
	if data, ok := m.files[p]; ok {
		return &view.Stat{Type: view.TypeRegular, Mode: 0o644, Size: int64(len(data)), Mtime: benchTime, Ctime: benchTime, Nlink: 1}, nil
	}
	if _, ok := m.dirs[p]; ok {
		return &view.Stat{Type: view.TypeDir, Mode: 0o755, Mtime: benchTime, Ctime: benchTime, Nlink: 2}, nil
	}
	return nil, fs.ErrNotExist
}

func (m *memView) ReadDir(p string) ([]string, error)  { return m.dirs[p], nil }
func (m *memView) Readlink(string) (string, error)     { return "", fs.ErrInvalid }
func (m *memView) Xattrs(string) ([]view.Xattr, error) { return nil, nil }

func (m *memView) Open(p string) (view.File, error) {
	data, ok := m.files[p]
	if !ok {
		return nil, fs.ErrNotExist
	}
	st, _ := m.Lstat(p)
	return &memFile{Reader: bytes.NewReader(data), st: st}, nil
}

type memFile struct {
	*bytes.Reader
	st *view.Stat
}

func (f *memFile) Close() error              { return nil }
func (f *memFile) Stat() (*view.Stat, error) { return f.st, nil }

// pipelineData builds the benchmark's trees: "big" is one 256 MiB file of
// random bytes; "mixed" is 64 MiB in 1,000 files, half random, half text.
func pipelineData(kind string) *memView {
	m := newMemView()
	rng := rand.NewChaCha8([32]byte{42})
	random := func(n int) []byte { b := make([]byte, n); rng.Read(b); return b }
	switch kind {
	case "big":
		m.add("/data/big.img", random(256<<20))
	case "mixed":
		line := "2026-01-01T00:00:00Z INFO backup of /srv/app finished: 1234 files, 0 failed\n"
		for i := range 1000 {
			n := 4<<10 + int(rng.Uint64()%(124<<10))
			var data []byte
			if i%2 == 0 {
				data = random(n)
			} else {
				data = []byte(strings.Repeat(fmt.Sprintf("%d %s", i, line), n/len(line)+1)[:n])
			}
			m.add(fmt.Sprintf("/data/d%02d/f%04d", i%20, i), data)
		}
	}
	return m
}

func (m *memView) size() int64 {
	var n int64
	for _, d := range m.files {
		n += int64(len(d))
	}
	return n
}

// BenchmarkPipeline runs whole first backups (walk, read, chunk, hash,
// compress, encrypt, pack, upload to memory) of in-memory data with the
// default repository parameters.
func BenchmarkPipeline(b *testing.B) {
	for _, kind := range []string{"big", "mixed"} {
		b.Run(kind, func(b *testing.B) {
			v := pipelineData(kind)
			b.SetBytes(v.size())
			ctx := context.Background()
			for range b.N {
				b.StopTimer()
				r, err := repo.Init(ctx, backend.NewMem(), repo.Credential{KeyFile: repo.NewKeyFileSecret()}, repo.DefaultConfig)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if _, err := archiver.New(r, v, archiver.Options{}).Run(ctx, []string{"/data"}); err != nil {
					b.Fatal(err)
				}
				if err := r.Flush(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
