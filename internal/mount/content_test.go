package mount

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

func newRepo(t *testing.T) *repo.Repository {
	t.Helper()
	r, err := repo.Init(context.Background(), backend.NewMem(), repo.Credential{KeyFile: repo.NewKeyFileSecret()}, repo.DefaultConfig)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// store saves data as blobs of the given sizes and returns the node.
func store(t *testing.T, r *repo.Repository, data []byte, sizes ...int) *repo.Node {
	t.Helper()
	ctx := context.Background()
	n := &repo.Node{Type: repo.NodeFile, Size: uint64(len(data))}
	off := 0
	for _, s := range sizes {
		chunk := data[off : off+s]
		id := r.Hash(chunk)
		if _, err := r.SaveBlob(ctx, repo.DataBlob, id, chunk); err != nil {
			t.Fatal(err)
		}
		n.Content = append(n.Content, id)
		off += s
	}
	if off != len(data) {
		t.Fatalf("sizes add up to %d of %d", off, len(data))
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return n
}

// counting counts the blob loads.
type counting struct {
	BlobLoader
	mu    sync.Mutex
	loads map[repo.ID]int
	total atomic.Int64
}

func (c *counting) LoadBlob(ctx context.Context, id repo.ID) ([]byte, error) {
	c.mu.Lock()
	c.loads[id]++
	c.mu.Unlock()
	c.total.Add(1)
	return c.BlobLoader.LoadBlob(ctx, id)
}

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	rnd := rand.NewChaCha8([32]byte{byte(seed)})
	_, _ = rnd.Read(b)
	return b
}

func TestReadAtAnyRangeLoadsOnlyItsBlobs(t *testing.T) {
	r := newRepo(t)
	sizes := []int{1000, 1, 70000, 4096, 30000}
	data := randomBytes(1, 105097)
	n := store(t, r, data, sizes...)
	c, err := NewContent(r, NewHoles(r.Hash), n)
	if err != nil {
		t.Fatal(err)
	}
	if c.Size() != int64(len(data)) || c.Allocated() != int64(len(data)) {
		t.Fatalf("size %d allocated %d, want %d", c.Size(), c.Allocated(), len(data))
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		load := &counting{BlobLoader: r, loads: map[repo.ID]int{}}
		cache := NewCache(load, 1<<20)
		off := rnd.Int64N(int64(len(data)))
		buf := make([]byte, rnd.IntN(80000)+1)
		got, err := c.ReadAt(context.Background(), cache, buf, off, false)
		want := min(len(buf), len(data)-int(off))
		if got != want || !bytes.Equal(buf[:got], data[off:off+int64(got)]) {
			t.Fatalf("read %d at %d: got %d bytes (want %d), equal=%v", len(buf), off, got, want, bytes.Equal(buf[:got], data[off:off+int64(got)]))
		}
		if (got < len(buf)) != errors.Is(err, io.EOF) {
			t.Fatalf("read %d at %d: %d bytes, err %v", len(buf), off, got, err)
		}
		// exactly the blobs that overlap [off, off+got)
		var need int
		start := int64(0)
		for i, s := range sizes {
			end := start + int64(s)
			if end > off && start < off+int64(got) {
				need++
				if load.loads[n.Content[i]] != 1 {
					t.Fatalf("read %d at %d: blob %d loaded %d times", len(buf), off, i, load.loads[n.Content[i]])
				}
			}
			start = end
		}
		if int(load.total.Load()) != need {
			t.Fatalf("read %d at %d: %d loads for %d blobs", len(buf), off, load.total.Load(), need)
		}
	}
	if _, err := c.ReadAt(context.Background(), NewCache(r, 1<<20), make([]byte, 10), int64(len(data)), false); err != io.EOF {
		t.Fatalf("read at the end: %v, want EOF", err)
	}
}

func TestHolesAreReadWithoutLoadingAndSeekable(t *testing.T) {
	r := newRepo(t)
	data := append(append(randomBytes(2, 5000), make([]byte, 1<<20)...), randomBytes(3, 100)...)
	data = append(data, make([]byte, 300000)...)
	n := store(t, r, data, 5000, 1<<20, 100, 300000)
	c, err := NewContent(r, NewHoles(r.Hash), n)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Allocated(); got != 5100 {
		t.Errorf("allocated %d, want 5100 (the zero blobs are holes)", got)
	}
	load := &counting{BlobLoader: r, loads: map[repo.ID]int{}}
	buf := make([]byte, 1<<20)
	if _, err := c.ReadAt(context.Background(), NewCache(load, 4<<20), buf, 5000, false); err != nil || !bytes.Equal(buf, make([]byte, 1<<20)) {
		t.Fatalf("reading the hole: %v", err)
	}
	if load.total.Load() != 0 {
		t.Errorf("reading a hole loaded %d blobs", load.total.Load())
	}
	hole := int64(5000)
	data2 := hole + 1<<20
	for _, tc := range []struct {
		data       bool
		off, want  int64
		wantNoData bool
	}{
		{data: true, off: 0, want: 0}, {data: false, off: 0, want: hole},
		{data: true, off: hole + 7, want: data2}, {data: false, off: data2, want: data2 + 100},
		{data: true, off: data2 + 200, wantNoData: true}, {data: false, off: data2 + 200, want: data2 + 200},
		{data: true, off: int64(len(data)), wantNoData: true},
	} {
		var got int64
		var err error
		if tc.data {
			got, err = c.SeekData(tc.off)
		} else {
			got, err = c.SeekHole(tc.off)
		}
		if tc.wantNoData != (err != nil) || !tc.wantNoData && got != tc.want {
			t.Errorf("seek data=%v from %d: %d, %v; want %d (no data: %v)", tc.data, tc.off, got, err, tc.want, tc.wantNoData)
		}
	}
}

func TestNewContentNamesDamage(t *testing.T) {
	r := newRepo(t)
	n := store(t, r, []byte("hello"), 5)
	n.Size = 6
	if _, err := NewContent(r, NewHoles(r.Hash), n); err == nil {
		t.Error("a size that the blobs do not add up to passed")
	}
	n.Size = 5
	n.Content = append(n.Content, repo.ID{9})
	if _, err := NewContent(r, NewHoles(r.Hash), n); err == nil || !bytes.Contains([]byte(err.Error()), []byte("not in the index")) {
		t.Errorf("a blob missing from the index: %v", err)
	}
}

func TestCacheStaysWithinItsSizeAndLoadsOnce(t *testing.T) {
	r := newRepo(t)
	var nodes []*repo.Node
	for i := range 10 {
		nodes = append(nodes, store(t, r, randomBytes(uint64(10+i), 100000), 100000))
	}
	load := &counting{BlobLoader: r, loads: map[repo.ID]int{}}
	cache := NewCache(load, 350000)
	// many readers of one blob at once: one load
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := cache.Get(context.Background(), nodes[0].Content[0]); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if load.total.Load() != 1 {
		t.Fatalf("16 readers at once loaded the blob %d times", load.total.Load())
	}
	for _, n := range nodes {
		if _, err := cache.Get(context.Background(), n.Content[0]); err != nil {
			t.Fatal(err)
		}
		if cache.Size() > 350000 {
			t.Fatalf("cache holds %d bytes, limit 350000", cache.Size())
		}
	}
	// the three most recent are kept, the first is gone
	before := load.total.Load()
	for _, n := range nodes[7:] {
		_, _ = cache.Get(context.Background(), n.Content[0])
	}
	if load.total.Load() != before {
		t.Error("the most recently used blobs were evicted")
	}
	_, _ = cache.Get(context.Background(), nodes[0].Content[0])
	if load.total.Load() != before+1 {
		t.Error("the least recently used blob was kept beyond the limit")
	}
	// a failed load is not cached
	if _, err := cache.Get(context.Background(), repo.ID{1}); err == nil {
		t.Fatal("an unknown blob loaded")
	}
	if _, err := cache.Get(context.Background(), repo.ID{1}); err == nil || load.loads[repo.ID{1}] != 2 {
		t.Error("a failed load was cached")
	}
}

func TestWindowLoaderReadsNeighboursAtOnce(t *testing.T) {
	r := newRepo(t)
	var ids []repo.ID
	var want [][]byte
	for i := range 50 {
		data := randomBytes(uint64(100+i), 3000+i)
		want = append(want, data)
		ids = append(ids, r.Hash(data))
		if _, err := r.SaveBlob(context.Background(), repo.DataBlob, ids[i], data); err != nil {
			t.Fatal(err)
		}
	}
	big := randomBytes(200, 700<<10)
	bigNode := store(t, r, big, len(big)) // flushes all into one pack
	w := NewWindowLoader(r)
	// backwards: windows sit on a grid, so a blob met first does not decide
	// which of its neighbours its window holds
	for i := len(ids) - 1; i >= 0; i-- {
		id := ids[i]
		got, err := w.LoadBlob(context.Background(), id)
		if err != nil || !bytes.Equal(got, want[i]) {
			t.Fatalf("blob %d: %v (equal %v)", i, err, bytes.Equal(got, want[i]))
		}
	}
	// 50 neighbours of 3 KiB in one pack: one window holds them all
	if w.PackReads() != 1 {
		t.Errorf("%d pack reads for 50 neighbouring small blobs, want 1", w.PackReads())
	}
	// in any order, again from the window
	for _, i := range []int{49, 0, 25} {
		if got, err := w.LoadBlob(context.Background(), ids[i]); err != nil || !bytes.Equal(got, want[i]) {
			t.Fatalf("blob %d again: %v", i, err)
		}
	}
	if w.PackReads() != 1 {
		t.Errorf("reading them again read the pack %d times", w.PackReads())
	}
	// a blob as large as half a window is read alone
	if got, err := w.LoadBlob(context.Background(), bigNode.Content[0]); err != nil || !bytes.Equal(got, big) || w.PackReads() != 1 {
		t.Errorf("large blob: %v (equal %v), %d windows", err, bytes.Equal(got, big), w.PackReads())
	}
	if _, err := w.LoadBlob(context.Background(), repo.ID{3}); !errors.Is(err, repo.ErrBlobNotFound) {
		t.Errorf("an unknown blob: %v", err)
	}
}

// The scratch path reads the same bytes as LoadBlob while reusing its
// buffers, and windows dropped from the list lend their buffers to new
// ones without changing what the kept windows hold.
func TestWindowLoaderScratchAndReusedWindows(t *testing.T) {
	r := newRepo(t)
	ctx := context.Background()
	var ids []repo.ID
	var want [][]byte
	// compressible and random blobs, spread over more windows than are kept
	for i := range 800 {
		data := randomBytes(uint64(i), 20000+i)
		if i%4 == 0 {
			data = bytes.Repeat(data[:100], 200+i%7) // compressed
		}
		want = append(want, data)
		ids = append(ids, r.Hash(data))
		if _, err := r.SaveBlob(ctx, repo.DataBlob, ids[i], data); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	w := NewWindowLoader(r)
	var s Scratch
	for round := range 2 {
		for i, id := range ids {
			got, err := w.LoadBlobScratch(ctx, id, &s)
			if err != nil || !bytes.Equal(got, want[i]) {
				t.Fatalf("round %d, blob %d by scratch: %v (equal %v)", round, i, err, bytes.Equal(got, want[i]))
			}
			kept, err := w.LoadBlob(ctx, ids[(i+400)%len(ids)])
			if err != nil || !bytes.Equal(kept, want[(i+400)%len(ids)]) {
				t.Fatalf("round %d, blob %d: %v", round, (i+400)%len(ids), err)
			}
		}
	}
	if w.PackReads() <= windowKeep {
		t.Fatalf("%d windows read: the test means to drop some", w.PackReads())
	}
	// the blobs of the windows kept, in any order, are still right
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, i := range rnd.Perm(len(ids)) {
		got, err := w.LoadBlobScratch(ctx, ids[i], &s)
		if err != nil || !bytes.Equal(got, want[i]) {
			t.Fatalf("blob %d in random order: %v (equal %v)", i, err, bytes.Equal(got, want[i]))
		}
	}
	// a blob LoadBlob returned is the caller's: loading others changes nothing
	first, err := w.LoadBlob(ctx, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids[1:] {
		if _, err := w.LoadBlobScratch(ctx, id, &s); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(first, want[0]) {
		t.Fatal("a blob returned by LoadBlob changed when others were read")
	}
}

func TestFillMatchesReadAt(t *testing.T) {
	r := newRepo(t)
	data := randomBytes(5, 300<<10)
	clear(data[100<<10 : 200<<10]) // one blob of zeros: a hole
	n := store(t, r, data, 100<<10, 100<<10, 100<<10)
	c, err := NewContent(r, NewHoles(r.Hash), n)
	if err != nil {
		t.Fatal(err)
	}
	got := bytes.Repeat([]byte{0xff}, len(data))
	loads := 0
	err = c.Fill(got, func(id repo.ID) ([]byte, error) { loads++; return r.LoadBlob(context.Background(), id) })
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Fill: %v (equal %v)", err, bytes.Equal(got, data))
	}
	if loads != 2 {
		t.Errorf("%d blobs loaded, want 2 (the hole is not)", loads)
	}
	if err := c.Fill(got[:10], nil); err == nil {
		t.Error("Fill into a buffer of the wrong size did not fail")
	}
}
