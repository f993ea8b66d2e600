package cache_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/backend/cache"
	"github.com/stillpoint-backup/stillpoint/internal/backend/metered"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

func randName(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func randBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// store is a memory store with a meter, and the repository id its config names.
type store struct {
	mem *backend.Mem
	m   *metered.Meter
	id  string
}

func newStore(t *testing.T) *store {
	t.Helper()
	s := &store{mem: backend.NewMem(), m: metered.NewMeter(0), id: randName(t)}
	cfg := fmt.Sprintf(`{"version":1,"id":%q}`, s.id)
	if err := s.mem.Save(context.Background(), backend.Handle{Kind: backend.Config, Name: "config"}, []byte(cfg)); err != nil {
		t.Fatal(err)
	}
	return s
}

// open is what a new process does: a cache on dir over the store, which
// reads the config first.
func (s *store) open(t *testing.T, dir string, max int64) *cache.Cache {
	t.Helper()
	c, err := cache.New(metered.New(s.mem, s.m), cache.Options{Dir: dir, MaxTreeBytes: max})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Load(context.Background(), backend.Handle{Kind: backend.Config, Name: "config"}, 0, 0); err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, s.id, "cache"); c.Dir() != want {
		t.Fatalf("cache dir %q, want %q", c.Dir(), want)
	}
	return c
}

func (s *store) loads(k backend.Kind) int64 { return s.m.Counts().Of(k, metered.OpLoad) }

func load(t *testing.T, ctx context.Context, c *cache.Cache, h backend.Handle, off, n int64) []byte {
	t.Helper()
	data, err := c.Load(ctx, h, off, n)
	if err != nil {
		t.Fatalf("load %s [%d,+%d]: %v", h, off, n, err)
	}
	return data
}

func TestHitsMissesAndRanges(t *testing.T) {
	ctx := context.Background()
	s, dir := newStore(t), t.TempDir()
	c := s.open(t, dir, 0)
	if got := s.loads(backend.Config); got != 1 {
		t.Fatalf("config loads %d, want 1", got)
	}
	load(t, ctx, c, backend.Handle{Kind: backend.Config, Name: "config"}, 0, 0)
	if got := s.loads(backend.Config); got != 1 {
		t.Fatalf("a second config load reached the store: %d loads", got)
	}

	// written through: index, snapshot, tree pack; a data pack is not kept
	idx := backend.Handle{Kind: backend.Indexes, Name: randName(t)}
	snap := backend.Handle{Kind: backend.Snapshots, Name: randName(t)}
	tree := backend.Handle{Kind: backend.Packs, Name: randName(t)}
	data := backend.Handle{Kind: backend.Packs, Name: randName(t)}
	content := map[backend.Handle][]byte{idx: randBytes(t, 5000), snap: randBytes(t, 300), tree: randBytes(t, 70000), data: randBytes(t, 9000)}
	for h, b := range content {
		sctx := ctx
		if h == tree {
			sctx = backend.WithTreePack(ctx)
		}
		if err := c.Save(sctx, h, b); err != nil {
			t.Fatal(err)
		}
	}
	treeCtx := backend.WithTreePack(ctx)
	if got := load(t, ctx, c, idx, 0, 0); !bytes.Equal(got, content[idx]) {
		t.Fatal("index copy differs")
	}
	if got := load(t, ctx, c, snap, 0, 0); !bytes.Equal(got, content[snap]) {
		t.Fatal("snapshot copy differs")
	}
	if got := load(t, treeCtx, c, tree, 1000, 4000); !bytes.Equal(got, content[tree][1000:5000]) {
		t.Fatal("range of the tree pack's copy differs")
	}
	if got := load(t, treeCtx, c, tree, 69000, 0); !bytes.Equal(got, content[tree][69000:]) {
		t.Fatal("tail of the tree pack's copy differs")
	}
	if n := s.m.Counts().Requests[metered.OpLoad]; n != 1 {
		t.Fatalf("%d loads reached the store, want 1 (the config)", n)
	}
	// a range past the end is short, as from the store
	if _, err := c.Load(treeCtx, tree, 69000, 2000); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a range past the end of a copy: %v, want io.ErrUnexpectedEOF", err)
	}
	buf := make([]byte, 100)
	if err := c.LoadInto(treeCtx, tree, 500, buf); err != nil || !bytes.Equal(buf, content[tree][500:600]) {
		t.Fatalf("LoadInto of a copy: %v", err)
	}

	// a data pack always goes to the store, and leaves no copy
	for range 2 {
		if got := load(t, ctx, c, data, 10, 20); !bytes.Equal(got, content[data][10:30]) {
			t.Fatal("data pack range differs")
		}
	}
	if got := s.loads(backend.Packs); got != 2 {
		t.Fatalf("data pack loads %d, want 2", got)
	}
	if _, err := os.Stat(filepath.Join(c.Dir(), "data", data.Name)); !os.IsNotExist(err) {
		t.Fatalf("a data pack was copied: %v", err)
	}

	// a second process on the directory finds the copies: a tree pack read
	// unmarked (as check reads packs) still goes to the store
	c2 := s.open(t, dir, 0)
	before := s.m.Counts()
	for h, b := range content {
		if h == data {
			continue
		}
		if got := load(t, treeCtx, c2, h, 0, 0); !bytes.Equal(got, b) {
			t.Fatalf("%s differs in the second cache", h)
		}
	}
	after := s.m.Counts()
	if after.Requests[metered.OpLoad] != before.Requests[metered.OpLoad] {
		t.Fatalf("the second cache read the store: %v then %v", before.Requests, after.Requests)
	}
	load(t, ctx, c2, tree, 0, 10)
	if s.loads(backend.Packs) != 3 {
		t.Fatal("an unmarked load of a tree pack did not reach the store")
	}
	if st := c2.Stats(); st.Hits != 3 || st.Misses != 0 {
		t.Fatalf("stats %+v", st)
	}

	// a miss of a marked tree pack reads it whole once, then serves ranges
	cold := backend.Handle{Kind: backend.Packs, Name: randName(t)}
	whole := randBytes(t, 40000)
	if err := s.mem.Save(ctx, cold, whole); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		off := int64(i * 7000)
		if got := load(t, treeCtx, c2, cold, off, 1000); !bytes.Equal(got, whole[off:off+1000]) {
			t.Fatalf("range %d of a tree pack read on a miss differs", i)
		}
	}
	if got := s.m.Counts().Of(backend.Packs, metered.OpLoad); got != 4 {
		t.Fatalf("pack loads %d, want 4 (one for the miss)", got)
	}
	if got := s.m.Counts().BytesReceived - after.BytesReceived; got != 10+40000 {
		t.Fatalf("bytes received %d, want %d", got, 10+40000)
	}
}

func TestDamagedCopyIsReadAgain(t *testing.T) {
	ctx := context.Background()
	s, dir := newStore(t), t.TempDir()
	c := s.open(t, dir, 0)
	h := backend.Handle{Kind: backend.Indexes, Name: randName(t)}
	want := randBytes(t, 4096)
	if err := c.Save(ctx, h, want); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(c.Dir(), "index", h.Name)
	for _, damage := range []struct {
		name string
		fn   func([]byte) []byte
	}{
		{"one bit flipped", func(b []byte) []byte { b[100] ^= 1; return b }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-10] }},
		{"content cut, trailer kept", func(b []byte) []byte { return append(b[:50:50], b[len(b)-44:]...) }},
		{"empty", func([]byte) []byte { return nil }},
	} {
		t.Run(damage.name, func(t *testing.T) {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, damage.fn(b), 0o600); err != nil {
				t.Fatal(err)
			}
			fresh := s.open(t, dir, 0)
			before := s.loads(backend.Indexes)
			if got := load(t, ctx, fresh, h, 0, 0); !bytes.Equal(got, want) {
				t.Fatal("a damaged copy was served")
			}
			if s.loads(backend.Indexes) != before+1 {
				t.Fatal("the damaged copy was not read again from the store")
			}
			if st := fresh.Stats(); st.Dropped != 1 || st.Misses != 1 {
				t.Fatalf("stats %+v", st)
			}
			// rebuilt: the next process reads the new copy
			again := s.open(t, dir, 0)
			load(t, ctx, again, h, 0, 0)
			if s.loads(backend.Indexes) != before+1 {
				t.Fatal("the copy was not rebuilt")
			}
		})
	}
}

func TestRemovedFilesCopiesDropped(t *testing.T) {
	ctx := context.Background()
	s, dir := newStore(t), t.TempDir()
	c := s.open(t, dir, 0)
	var keep, gone []backend.Handle
	for i := range 6 {
		for _, k := range []backend.Kind{backend.Snapshots, backend.Indexes} {
			h := backend.Handle{Kind: k, Name: randName(t)}
			if err := c.Save(ctx, h, randBytes(t, 100)); err != nil {
				t.Fatal(err)
			}
			if i%2 == 0 {
				keep = append(keep, h)
			} else {
				gone = append(gone, h)
			}
		}
	}
	// another client removes files; the copies are older than the listing
	old := time.Now().Add(-time.Minute)
	for _, h := range append(append([]backend.Handle{}, keep...), gone...) {
		if err := os.Chtimes(filepath.Join(c.Dir(), string(h.Kind), h.Name), old, old); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range gone {
		if err := s.mem.Remove(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	// a copy written while the listing runs is not dropped
	late := backend.Handle{Kind: backend.Snapshots, Name: randName(t)}
	listed := 0
	for _, k := range []backend.Kind{backend.Snapshots, backend.Indexes} {
		if err := c.List(ctx, k, func(fi backend.FileInfo) error {
			listed++
			if k == backend.Snapshots && listed == 1 {
				return c.Save(ctx, late, []byte("late"))
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range gone {
		if _, err := os.Stat(filepath.Join(c.Dir(), string(h.Kind), h.Name)); !os.IsNotExist(err) {
			t.Errorf("the copy of removed %s is still there (%v)", h, err)
		}
	}
	for _, h := range append(keep, late) {
		if _, err := os.Stat(filepath.Join(c.Dir(), string(h.Kind), h.Name)); err != nil {
			t.Errorf("the copy of %s is gone: %v", h, err)
		}
	}
	// a removal through the cache drops the copy at once
	if err := c.Remove(ctx, keep[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Load(ctx, keep[0], 0, 0); !backend.IsNotFound(err) {
		t.Fatalf("a removed file loads: %v", err)
	}
}

func TestConcurrentReadersOneRequest(t *testing.T) {
	ctx := backend.WithTreePack(context.Background())
	s, dir := newStore(t), t.TempDir()
	h := backend.Handle{Kind: backend.Packs, Name: randName(t)}
	whole := randBytes(t, 1<<20)
	if err := s.mem.Save(ctx, h, whole); err != nil {
		t.Fatal(err)
	}
	c := s.open(t, dir, 0)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			off := int64(i * 30000)
			got, err := c.Load(ctx, h, off, 2000)
			if err == nil && !bytes.Equal(got, whole[off:off+2000]) {
				err = fmt.Errorf("reader %d got other bytes", i)
			}
			if err == nil {
				got[0]++ // callers own what they get: decryption is in place
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := s.loads(backend.Packs); got != 1 {
		t.Fatalf("32 readers of a cold tree pack made %d requests, want 1", got)
	}
	if got := load(t, ctx, c, h, 0, 0); !bytes.Equal(got, whole) {
		t.Fatal("a caller's change reached the copy")
	}
}

func TestTwoCachesShareADirectory(t *testing.T) {
	ctx := backend.WithTreePack(context.Background())
	s, dir := newStore(t), t.TempDir()
	var hs []backend.Handle
	content := map[string][]byte{}
	for range 20 {
		h := backend.Handle{Kind: backend.Packs, Name: randName(t)}
		content[h.Name] = randBytes(t, 20000)
		if err := s.mem.Save(ctx, h, content[h.Name]); err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	a, b := s.open(t, dir, 0), s.open(t, dir, 0)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for round := range 5 {
		for i, c := range []*cache.Cache{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range hs {
					h := hs[(j+round*3+i*7)%len(hs)]
					got, err := c.Load(ctx, h, 100, 500)
					if err == nil && !bytes.Equal(got, content[h.Name][100:600]) {
						err = fmt.Errorf("%s differs", h)
					}
					if err != nil {
						errs <- err
					}
					if j%5 == 0 {
						c.Forget(h) // and another process rewrites it meanwhile
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Join(a.Dir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
	// every copy that is left is whole: a third process reads no pack
	c := s.open(t, dir, 0)
	before := s.loads(backend.Packs)
	for _, e := range entries {
		got := load(t, ctx, c, backend.Handle{Kind: backend.Packs, Name: e.Name()}, 0, 0)
		if !bytes.Equal(got, content[e.Name()]) {
			t.Fatalf("copy %s differs", e.Name())
		}
	}
	if s.loads(backend.Packs) != before {
		t.Fatal("a copy left by two caches was damaged")
	}
}

func TestTreePacksEvictedLeastRecentlyUsed(t *testing.T) {
	ctx := backend.WithTreePack(context.Background())
	s, dir := newStore(t), t.TempDir()
	const size = 10000
	c := s.open(t, dir, 5*(size+44)+10) // room for five
	var hs []backend.Handle
	base := time.Now().Add(-time.Hour)
	for i := range 5 {
		h := backend.Handle{Kind: backend.Packs, Name: randName(t)}
		if err := c.Save(ctx, h, randBytes(t, size)); err != nil {
			t.Fatal(err)
		}
		at := base.Add(time.Duration(i) * time.Minute)
		if err := os.Chtimes(filepath.Join(c.Dir(), "data", h.Name), at, at); err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	// a new process uses the oldest: it becomes the newest
	c2 := s.open(t, dir, 5*(size+44)+10)
	load(t, ctx, c2, hs[0], 0, 10)
	extra := backend.Handle{Kind: backend.Packs, Name: randName(t)}
	if err := c2.Save(ctx, extra, randBytes(t, size)); err != nil {
		t.Fatal(err)
	}
	exists := func(h backend.Handle) bool {
		_, err := os.Stat(filepath.Join(c2.Dir(), "data", h.Name))
		return err == nil
	}
	if exists(hs[1]) || exists(hs[2]) {
		t.Fatal("the least recently used copies were kept")
	}
	for _, h := range []backend.Handle{hs[0], hs[3], hs[4], extra} {
		if !exists(h) {
			t.Fatalf("%s was evicted before older ones", h)
		}
	}
	if st := c2.Stats(); st.Evicted != 2 {
		t.Fatalf("evicted %d, want 2", st.Evicted)
	}
	// index and snapshot copies are never evicted
	idx := backend.Handle{Kind: backend.Indexes, Name: randName(t)}
	if err := c2.Save(context.Background(), idx, randBytes(t, 6*size)); err != nil {
		t.Fatal(err)
	}
	if !exists(hs[4]) {
		t.Fatal("an index copy evicted a tree pack")
	}
}

func TestBadNamesAndIDsAreNotCached(t *testing.T) {
	ctx := context.Background()
	mem, m := backend.NewMem(), metered.NewMeter(0)
	dir := t.TempDir()
	// a config whose id would leave the directory
	if err := mem.Save(ctx, backend.Handle{Kind: backend.Config, Name: "config"}, []byte(`{"id":"../../etc"}`)); err != nil {
		t.Fatal(err)
	}
	c, err := cache.New(metered.New(mem, m), cache.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Load(ctx, backend.Handle{Kind: backend.Config, Name: "config"}, 0, 0); err != nil {
		t.Fatal(err)
	}
	if c.Dir() != "" {
		t.Fatalf("an id like ../../etc named cache dir %q", c.Dir())
	}
	h := backend.Handle{Kind: backend.Snapshots, Name: randName(t)}
	if err := c.Save(ctx, h, []byte("x")); err != nil {
		t.Fatal(err)
	}
	load(t, ctx, c, h, 0, 0)
	if got := m.Counts().Of(backend.Snapshots, metered.OpLoad); got != 1 {
		t.Fatalf("without a repository id, loads pass through: %d", got)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("the cache wrote %v", entries)
	}
	if _, err := cache.New(mem, cache.Options{}); err == nil {
		t.Fatal("a cache without a directory")
	}
}

// The repository's side of the seam: a reopened repository reads keys,
// index, snapshots and trees from the copies, and a copy of a file that
// was damaged in the store is not used twice.
func TestRepositoryThroughTheCache(t *testing.T) {
	ctx := context.Background()
	mem, m, dir := backend.NewMem(), metered.NewMeter(0), t.TempDir()
	open := func() *cache.Cache {
		c, err := cache.New(metered.New(mem, m), cache.Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cred := repo.Credential{KeyFile: repo.NewKeyFileSecret()}
	r, err := repo.Init(ctx, open(), cred, repo.DefaultConfig)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := r.SaveTree(ctx, &repo.Tree{Nodes: []*repo.Node{{Name: "f", Type: repo.NodeFile, Mode: 0o644, Size: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	root, err := r.SaveTree(ctx, &repo.Tree{Nodes: []*repo.Node{{Name: "d", Type: repo.NodeDir, Mode: 0o755, Subtree: sub}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.SaveBlob(ctx, repo.DataBlob, r.Hash([]byte("some data")), []byte("some data")); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	snapID, err := r.SaveSnapshot(ctx, &repo.Snapshot{Time: time.Now(), Host: "h", Paths: []string{"/x"}, Tree: root})
	if err != nil {
		t.Fatal(err)
	}

	read := func() error {
		r, err := repo.Open(ctx, open(), cred)
		if err != nil {
			return err
		}
		snaps, bad, err := r.Snapshots(ctx)
		if err != nil {
			return err
		}
		if len(bad) > 0 || len(snaps) != 1 {
			return fmt.Errorf("snapshots %d, unreadable %v", len(snaps), bad)
		}
		top, err := r.LoadTree(ctx, snaps[0].Tree)
		if err != nil {
			return err
		}
		if _, err := r.LoadTree(ctx, top.Nodes[0].Subtree); err != nil {
			return err
		}
		return nil
	}
	// the first open copies the keys (Init wrote them before the config
	// named the repository); index, snapshot and tree pack were written through
	if err := read(); err != nil {
		t.Fatal(err)
	}
	before := m.Counts()
	if err := read(); err != nil {
		t.Fatal(err)
	}
	after := m.Counts()
	for _, k := range []backend.Kind{backend.Keys, backend.Indexes, backend.Snapshots, backend.Packs} {
		if n := after.Of(k, metered.OpLoad) - before.Of(k, metered.OpLoad); n != 0 {
			t.Errorf("a warm open read %s from the store %d times", k, n)
		}
	}
	if n := after.Of(backend.Config, metered.OpLoad) - before.Of(backend.Config, metered.OpLoad); n != 1 {
		t.Errorf("config loads %d, want 1", n)
	}

	// the snapshot is damaged in the store, copied damaged by a new cache,
	// then repaired (say, put back from a copy of the bucket)
	sh := backend.Handle{Kind: backend.Snapshots, Name: snapID.String()}
	good, err := mem.Load(ctx, sh, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(dir, r.Config().ID, "cache", "snapshots", sh.Name)
	if err := os.Remove(copyPath); err != nil {
		t.Fatal(err)
	}
	mem.Tamper(sh, func(b []byte) []byte { b[len(b)/2] ^= 0x40; return b })
	r2, err := repo.Open(ctx, open(), cred)
	if err != nil {
		t.Fatal(err)
	}
	n0 := m.Counts().Of(backend.Snapshots, metered.OpLoad)
	if _, err := r2.LoadSnapshot(ctx, snapID); err == nil {
		t.Fatal("a damaged snapshot loaded")
	}
	if n := m.Counts().Of(backend.Snapshots, metered.OpLoad) - n0; n != 2 {
		t.Fatalf("a snapshot that does not decrypt was read %d times from the store, want 2 (the copy dropped, the store asked again)", n)
	}
	mem.Tamper(sh, func([]byte) []byte { return good })
	if _, err := r2.LoadSnapshot(ctx, snapID); err != nil {
		t.Fatalf("after the store was repaired, the damaged copy was used again: %v", err)
	}

	// the same for a tree pack whose copy went bad after it was checked
	// (the cache checks a copy once per process, then reads ranges)
	var treePack string
	entries, _ := os.ReadDir(filepath.Join(dir, r.Config().ID, "cache", "data"))
	for _, e := range entries {
		treePack = e.Name()
	}
	if len(entries) != 1 {
		t.Fatalf("%d tree packs copied, want 1 (the data pack is not copied)", len(entries))
	}
	snaps, _, err := r2.Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r2.LoadTree(ctx, snaps[0].Tree); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, r.Config().ID, "cache", "data", treePack)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for i := range len(b) - 44 {
		b[i] ^= 0xff
	}
	info, _ := os.Stat(p)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(p, info.ModTime(), info.ModTime()) // the same stamp: not checked again
	p0 := m.Counts().Of(backend.Packs, metered.OpLoad)
	if _, err := r2.LoadTree(ctx, snaps[0].Tree); err != nil {
		t.Fatalf("a tree from a copy damaged after its check: %v", err)
	}
	if n := m.Counts().Of(backend.Packs, metered.OpLoad) - p0; n != 1 {
		t.Fatalf("tree pack loads from the store %d, want 1", n)
	}
}

func TestDirs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, b := newStore(t), newStore(t)
	ca, cb := a.open(t, dir, 0), b.open(t, dir, 0)
	for i, c := range []*cache.Cache{ca, cb} {
		for range i + 1 {
			if err := c.Save(ctx, backend.Handle{Kind: backend.Snapshots, Name: randName(t)}, randBytes(t, 1000)); err != nil {
				t.Fatal(err)
			}
		}
	}
	old := time.Now().Add(-48 * time.Hour)
	filepath.Walk(ca.Dir(), func(p string, _ os.FileInfo, _ error) error { return os.Chtimes(p, old, old) })
	if err := os.MkdirAll(filepath.Join(dir, "staging"), 0o700); err != nil { // not a repository's
		t.Fatal(err)
	}
	ds, err := cache.Dirs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 || ds[0].RepositoryID != a.id || ds[1].RepositoryID != b.id {
		t.Fatalf("dirs %+v", ds)
	}
	if ds[0].Files != 1 || ds[0].Bytes != 1044 || ds[1].Files != 2 || !ds[0].LastUsed.Before(time.Now().Add(-47*time.Hour)) {
		t.Fatalf("dirs %+v", ds)
	}
	if ds, err := cache.Dirs(filepath.Join(dir, "missing")); err != nil || len(ds) != 0 {
		t.Fatalf("a missing directory: %v %v", ds, err)
	}
}
