package backend

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/testutil/loopfs"
	"golang.org/x/sys/unix"
)

// packData returns n pseudo-random bytes at an address aligned for direct I/O
// (a large allocation starts on a page; the test checks that it does).
func packData(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(1, uint64(n)))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	if !aligned(b) {
		t.Fatalf("a %d-byte allocation is not aligned to %d", n, directAlign)
	}
	return b
}

// cachedPages is how many of the file's pages are in the page cache.
func cachedPages(t *testing.T, path string) uint64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st unix.Cachestat_t
	if err := unix.Cachestat(uint(f.Fd()), &unix.CachestatRange{}, &st, 0); err != nil {
		t.Fatalf("cachestat: %v", err)
	}
	return st.Cache
}

// onRepositoryFileSystems runs fn on a new Local in a loopback ext4, XFS
// and btrfs each: the file systems repositories live on.
func onRepositoryFileSystems(t *testing.T, fn func(t *testing.T, fsName string, l *Local)) {
	for _, fs := range []struct {
		name  string
		mount func(testing.TB, int) string
	}{{"ext4", loopfs.Ext4}, {"xfs", loopfs.XFS}, {"btrfs", loopfs.Btrfs}} {
		t.Run(fs.name, func(t *testing.T) {
			l := NewLocal(fs.mount(t, 300) + "/repo")
			if err := l.Create(context.Background()); err != nil {
				t.Fatal(err)
			}
			fn(t, fs.name, l)
		})
	}
}

// A pack goes to the disk past the page cache on the file systems
// repositories live on: after Save only the tail of less than a block is
// cached, and the file reads back whole.
func TestSaveWritesPacksPastThePageCache(t *testing.T) {
	onRepositoryFileSystems(t, func(t *testing.T, fsName string, l *Local) {
		ctx := context.Background()
		data := packData(t, 3<<20+1234)
		h := Handle{Kind: Packs, Name: "ab01"}
		if err := l.Save(ctx, h, data); err != nil {
			t.Fatal(err)
		}
		if l.noDirect.Load() {
			t.Fatalf("%s refused direct I/O", fsName)
		}
		if n := cachedPages(t, l.path(h)); n > 1 {
			t.Errorf("%d pages of the pack are cached after Save; want at most the tail's 1", n)
		}
		got, err := l.Load(ctx, h, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatal("the pack read back differs from what was saved")
		}
		// a long read leaves the pack's pages free again
		part := make([]byte, 2<<20)
		if err := l.LoadInto(ctx, h, 4096, part); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(part, data[4096:4096+len(part)]) {
			t.Fatal("LoadInto read the wrong bytes")
		}
		if n := cachedPages(t, l.path(h)); n > 2 {
			t.Errorf("%d pages of the pack are cached after reading it; want them dropped", n)
		}
	})
}

// A file system that refuses direct I/O part way gets the whole file through
// the page cache, and is not asked again; so does data that is not aligned.
func TestSaveFallsBackWhenDirectIOIsRefused(t *testing.T) {
	l := NewLocal(t.TempDir())
	ctx := context.Background()
	if err := l.Create(ctx); err != nil {
		t.Fatal(err)
	}
	calls := 0
	directWriter = func(f *os.File, data []byte) (int, error) {
		calls++
		// a refusal after some of the data reached the file
		if _, err := f.WriteAt(bytes.Repeat([]byte{0xee}, 8192), 0); err != nil {
			t.Fatal(err)
		}
		return 8192, &os.PathError{Op: "write", Path: f.Name(), Err: unix.EINVAL}
	}
	t.Cleanup(func() { directWriter = writeDirect })

	for i, data := range [][]byte{packData(t, 2<<20+7), packData(t, 5<<20)} {
		h := Handle{Kind: Packs, Name: "cd0" + string(rune('0'+i))}
		if err := l.Save(ctx, h, data); err != nil {
			t.Fatal(err)
		}
		got, err := l.Load(ctx, h, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("pack %d read back differs after the refusal", i)
		}
	}
	if calls != 1 || !l.noDirect.Load() {
		t.Fatalf("direct writes tried %d times (noDirect %v); want once, then never again", calls, l.noDirect.Load())
	}

	directWriter = func(*os.File, []byte) (int, error) {
		t.Fatal("unaligned data was written with O_DIRECT")
		return 0, nil
	}
	l2 := NewLocal(t.TempDir())
	if err := l2.Create(ctx); err != nil {
		t.Fatal(err)
	}
	buf := packData(t, 3<<20)
	h := Handle{Kind: Packs, Name: "ef01"}
	if err := l2.Save(ctx, h, buf[1:]); err != nil {
		t.Fatal(err)
	}
	if got, err := l2.Load(ctx, h, 0, 0); err != nil || !bytes.Equal(got, buf[1:]) {
		t.Fatalf("unaligned pack read back wrong (err %v)", err)
	}
}
