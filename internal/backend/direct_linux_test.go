package backend

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/bufs"
	"golang.org/x/sys/unix"
)

// dropCache writes the file out and takes its pages out of the page cache,
// as after a reboot.
func dropCache(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
}

func TestLoadIntoPastThePageCache(t *testing.T) {
	ctx := context.Background()
	l := NewLocal(t.TempDir())
	if err := l.Create(ctx); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 9<<20+321)
	rng := rand.NewChaCha8([32]byte{7})
	rng.Read(data)
	h := Handle{Kind: Packs, Name: "ab" + string(bytes.Repeat([]byte("0"), 62))}
	if err := l.Save(ctx, h, data); err != nil {
		t.Fatal(err)
	}
	var a bufs.Aligned
	cases := []struct {
		off int64
		n   int
	}{
		{0, len(data)},      // a whole pack, its end not aligned
		{1, directMin},      // an unaligned head
		{4095, 3<<20 + 777}, // a one-byte head, an unaligned tail
		{4096, 2 << 20},     // all aligned
		{12345, len(data) - 12345},
	}
	for _, c := range cases {
		dropCache(t, l.path(h))
		before := l.directReads.Load()
		buf := a.For(c.n, c.off)
		clear(buf)
		if err := l.LoadInto(ctx, h, c.off, buf); err != nil {
			t.Fatalf("offset %d, %d bytes: %v", c.off, c.n, err)
		}
		if !bytes.Equal(buf, data[c.off:c.off+int64(c.n)]) {
			t.Fatalf("offset %d, %d bytes: the content read differs", c.off, c.n)
		}
		if l.noDirect.Load() {
			t.Logf("the file system of %s refuses O_DIRECT: read through the page cache", l.dir)
		} else if l.directReads.Load() != before+1 {
			t.Errorf("offset %d, %d bytes, not cached: not read past the page cache", c.off, c.n)
		}
	}

	// what the cache holds is copied from it
	if _, err := l.Load(ctx, h, 0, 0); err != nil {
		t.Fatal(err)
	}
	before := l.directReads.Load()
	buf := a.For(4<<20, 8192)
	if err := l.LoadInto(ctx, h, 8192, buf); err != nil || !bytes.Equal(buf, data[8192:8192+4<<20]) {
		t.Fatalf("cached range: %v, or the content differs", err)
	}
	if l.directReads.Load() != before {
		t.Error("a range the page cache holds was read from the disk again")
	}

	// a buffer not aligned as the offset is, and a small read: as before
	dropCache(t, l.path(h))
	odd := make([]byte, 2<<20+1)[1:]
	if err := l.LoadInto(ctx, h, 4096, odd); err != nil || !bytes.Equal(odd, data[4096:4096+len(odd)]) {
		t.Fatalf("unaligned buffer: %v, or the content differs", err)
	}
	if l.directReads.Load() != before {
		t.Error("an unaligned buffer was read with O_DIRECT")
	}

	// past the end: a clear error, wherever the read goes
	dropCache(t, l.path(h))
	long := a.For(4<<20, int64(len(data))-2<<20)
	err := l.LoadInto(ctx, h, int64(len(data))-2<<20, long)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a range past the end: %v, want io.ErrUnexpectedEOF", err)
	}
	// a missing pack
	err = l.LoadInto(ctx, Handle{Kind: Packs, Name: "cd" + string(bytes.Repeat([]byte("0"), 62))}, 0, a.For(2<<20, 0))
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("a missing pack: %v, want ErrNotFound", err)
	}
}
