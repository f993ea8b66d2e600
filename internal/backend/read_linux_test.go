package backend

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/bufs"
	"golang.org/x/sys/unix"
)

// placed returns a buffer of n bytes whose address agrees with offset
// modulo ReadAlign, as the restore places its pack spans. It is filled,
// as a reused buffer is: btrfs reads into memory not faulted in yet
// through the page cache.
func placed(n int, offset int64) []byte {
	b, _ := bufs.Placed(bytes.Repeat([]byte{0xa5}, n+ReadAlign), offset, n, ReadAlign)
	return b
}

// dropCache drops the file's pages from the page cache.
func dropCache(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
}

// countDirect counts the direct reads until the test ends.
func countDirect(t *testing.T) *int {
	n := new(int)
	directReader = func(f *os.File, buf []byte, offset int64) error {
		*n++
		return readDirect(f, buf, offset)
	}
	t.Cleanup(func() { directReader = readDirect })
	return n
}

// A long read of a pack into a buffer placed at its offset's place within
// a block reads the aligned middle past the page cache, on the file
// systems repositories live on: every byte is right, edges included, the
// pack's pages are not left in the cache, and a read past the end still
// says io.ErrUnexpectedEOF. A buffer placed otherwise is read through the
// cache, as right.
func TestLoadIntoReadsPacksPastThePageCache(t *testing.T) {
	onRepositoryFileSystems(t, func(t *testing.T, fsName string, l *Local) {
		ctx := context.Background()
		const size = 8<<20 + 777
		data := packData(t, size)
		h := Handle{Kind: Packs, Name: "ab02"}
		if err := l.Save(ctx, h, data); err != nil {
			t.Fatal(err)
		}
		direct := countDirect(t)
		ranges := []struct{ off, n int64 }{
			{0, size},                   // the whole pack: no head, a tail
			{100, size - 100},           // a head and a tail
			{4096, 4 << 20},             // aligned both ends
			{5000, 3<<20 + 11},          // unaligned both ends
			{size - (2 << 20), 2 << 20}, // to the end exactly
		}
		for _, c := range ranges {
			dropCache(t, l.path(h))
			buf := placed(int(c.n), c.off)
			before := *direct
			if err := l.LoadInto(ctx, h, c.off, buf); err != nil {
				t.Fatalf("LoadInto [%d,+%d]: %v", c.off, c.n, err)
			}
			if !bytes.Equal(buf, data[c.off:c.off+c.n]) {
				t.Fatalf("LoadInto [%d,+%d] read the wrong bytes", c.off, c.n)
			}
			if *direct != before+1 {
				t.Errorf("LoadInto [%d,+%d] into a placed buffer made %d direct reads, want 1", c.off, c.n, *direct-before)
			}
			if n := cachedPages(t, l.path(h)); n > 2 {
				t.Errorf("after LoadInto [%d,+%d] %d pages of the pack are cached; want at most the edges' 2", c.off, c.n, n)
			}
		}
		// the same ranges into buffers one byte off their place (after
		// the placed reads: their readahead may still be in flight)
		for _, c := range ranges {
			buf := placed(int(c.n)+1, c.off)[1:]
			before := *direct
			if err := l.LoadInto(ctx, h, c.off, buf); err != nil || !bytes.Equal(buf, data[c.off:c.off+c.n]) {
				t.Fatalf("LoadInto [%d,+%d] into a misplaced buffer: err %v or wrong bytes", c.off, c.n, err)
			}
			if *direct != before {
				t.Errorf("LoadInto [%d,+%d] into a misplaced buffer read past the cache", c.off, c.n)
			}
		}
		for _, c := range []struct{ off, n int64 }{
			{0, size + 1},                 // one byte past the end, in the tail
			{4096, (size + 4096) &^ 4095}, // past the end, aligned: no tail, the direct read is short
			{size - (1 << 20), 2 << 20},   // most of it past the end
		} {
			if err := l.LoadInto(ctx, h, c.off, placed(int(c.n), c.off)); !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("LoadInto [%d,+%d] of a %d-byte pack: %v, want io.ErrUnexpectedEOF", c.off, c.n, size, err)
			}
		}
		if l.noDirectRead.Load() {
			t.Errorf("%s refused a direct read", fsName)
		}
	})
}

// A file system that refuses a direct read gets it, and every later one,
// through the page cache.
func TestLoadIntoFallsBackWhenDirectReadIsRefused(t *testing.T) {
	l := NewLocal(t.TempDir())
	ctx := context.Background()
	if err := l.Create(ctx); err != nil {
		t.Fatal(err)
	}
	data := packData(t, 6<<20+5)
	h := Handle{Kind: Packs, Name: "cd05"}
	if err := l.Save(ctx, h, data); err != nil {
		t.Fatal(err)
	}
	calls := 0
	directReader = func(_ *os.File, buf []byte, _ int64) error {
		calls++
		clear(buf[:4096]) // a refusal after some of the buffer was touched
		return unix.EINVAL
	}
	t.Cleanup(func() { directReader = readDirect })
	for i := range 3 {
		off := int64(1000 * i)
		buf := placed(len(data)-int(off), off)
		if err := l.LoadInto(ctx, h, off, buf); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf, data[off:]) {
			t.Fatalf("read %d after the refusal is wrong", i)
		}
	}
	if calls != 1 || !l.noDirectRead.Load() {
		t.Fatalf("direct reads tried %d times (noDirectRead %v); want once, then never again", calls, l.noDirectRead.Load())
	}
}
