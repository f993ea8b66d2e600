//go:build linux

package restore_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/archiver"
	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/restore"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/ci"
	"github.com/stillpoint-backup/stillpoint/internal/view"
	"golang.org/x/sys/unix"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// makeTree builds every kind of entry stillpoint promises to round-trip.
func makeTree(t *testing.T, root string) {
	w := func(name string, data []byte, mode os.FileMode) {
		p := filepath.Join(root, name)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, data, mode))
		must(t, os.Chmod(p, mode))
	}
	w("plain.txt", bytes.Repeat([]byte("stillpoint "), 10000), 0o640)
	w("empty", nil, 0o600)
	w("setuid-bin", []byte("#!/bin/sh\n"), 0o4755)
	w("dir with space/日本語.txt", []byte("unicode"), 0o644)
	w("odd/new\nline", []byte("newline in name"), 0o644)
	w("odd/bad-\xff\xfe-utf8", []byte("invalid utf-8 name"), 0o644)
	w("odd/back\\slash", []byte("backslash"), 0o644)

	// sparse: 64 MiB with data only at 1 MiB and at the end
	sp, err := os.Create(filepath.Join(root, "sparse.img"))
	must(t, err)
	_, err = sp.WriteAt(bytes.Repeat([]byte{0xAB}, 4096), 1<<20)
	must(t, err)
	_, err = sp.WriteAt([]byte("tail"), 64<<20-4)
	must(t, err)
	must(t, sp.Close())

	// hard links
	w("links/a", []byte("shared inode"), 0o644)
	must(t, os.Link(filepath.Join(root, "links/a"), filepath.Join(root, "links/b")))
	must(t, os.MkdirAll(filepath.Join(root, "links/sub"), 0o755))
	must(t, os.Link(filepath.Join(root, "links/a"), filepath.Join(root, "links/sub/c")))

	must(t, os.Symlink("../plain.txt", filepath.Join(root, "links/sym")))
	must(t, os.Symlink("/does/not/exist", filepath.Join(root, "dangling")))
	must(t, unix.Mkfifo(filepath.Join(root, "fifo"), 0o620))
	must(t, unix.Mknod(filepath.Join(root, "null-dev"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	l, err := net.Listen("unix", filepath.Join(root, "sock"))
	must(t, err)
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()

	must(t, unix.Lsetxattr(filepath.Join(root, "plain.txt"), "user.stillpoint", []byte("xattr value\x00binary"), 0))
	must(t, os.Lchown(filepath.Join(root, "plain.txt"), 1234, 5678))
	must(t, os.Lchown(filepath.Join(root, "links/sym"), 4321, 8765))
	must(t, os.Chmod(filepath.Join(root, "dir with space"), 0o750))

	// distinctive times, with nanoseconds, set last (children first)
	var paths []string
	filepath.Walk(root, func(p string, _ os.FileInfo, _ error) error { paths = append(paths, p); return nil })
	sort.Sort(sort.Reverse(sort.StringSlice(paths)))
	for i, p := range paths {
		ts := time.Date(2020, 1, 2, 3, 4, 5, 123456789+i, time.UTC)
		must(t, unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{unix.NsecToTimespec(ts.UnixNano()), unix.NsecToTimespec(ts.UnixNano())}, unix.AT_SYMLINK_NOFOLLOW))
	}
}

type entry struct {
	mode  uint32
	uid   uint32
	gid   uint32
	size  int64
	mtime int64
	rdev  uint64
	link  string
	data  []byte
	xattr string
	ino   uint64
}

func snapshotOf(t *testing.T, root string) map[string]entry {
	out := map[string]entry{}
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		must(t, err)
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		must(t, unix.Lstat(p, &st))
		e := entry{mode: st.Mode, uid: st.Uid, gid: st.Gid, rdev: st.Rdev, ino: st.Ino,
			mtime: st.Mtim.Nano()}
		if fi.Mode().IsRegular() {
			e.size = st.Size
			e.data, err = os.ReadFile(p)
			must(t, err)
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			e.link, _ = os.Readlink(p)
		}
		buf := make([]byte, 256)
		if n, err := unix.Lgetxattr(p, "user.stillpoint", buf); err == nil {
			e.xattr = string(buf[:n])
		}
		out[rel] = e
		return nil
	})
	return out
}

func TestMetadataRoundTrip(t *testing.T) {
	ci.NeedRoot(t)
	src := filepath.Join(t.TempDir(), "src")
	must(t, os.Mkdir(src, 0o755))
	makeTree(t, src)
	want := snapshotOf(t, src)

	ctx := context.Background()
	r, err := repo.Init(ctx, backend.NewMem(), repo.Credential{Password: "x"}, repo.DefaultConfig)
	must(t, err)
	res, err := archiver.New(r, &view.Live{}, archiver.Options{}).Run(ctx, []string{src})
	must(t, err)
	must(t, r.Flush(ctx))
	if len(res.Problems) != 0 {
		t.Fatalf("problems: %+v", res.Problems)
	}
	dst := t.TempDir()
	rr, err := restore.Run(ctx, r, res.Tree, restore.Options{Target: dst})
	must(t, err)
	if rr.Errors != 0 {
		t.Fatalf("restore errors: %+v", rr.Events)
	}
	got := snapshotOf(t, filepath.Join(dst, src))

	if len(got) != len(want) {
		t.Errorf("restored %d entries, want %d", len(got), len(want))
	}
	inodeOf := map[uint64]string{}
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("%q missing", name)
			continue
		}
		if g.mode != w.mode || g.uid != w.uid || g.gid != w.gid || g.rdev != w.rdev || g.link != w.link || g.xattr != w.xattr || g.size != w.size {
			t.Errorf("%q: got mode %o uid %d gid %d rdev %d link %q xattr %q size %d; want mode %o uid %d gid %d rdev %d link %q xattr %q size %d",
				name, g.mode, g.uid, g.gid, g.rdev, g.link, g.xattr, g.size, w.mode, w.uid, w.gid, w.rdev, w.link, w.xattr, w.size)
		}
		if name != "." && g.mtime != w.mtime {
			t.Errorf("%q: mtime %d, want %d", name, g.mtime, w.mtime)
		}
		if !bytes.Equal(g.data, w.data) {
			t.Errorf("%q: content differs", name)
		}
		// entries that shared an inode must share one again, and only they
		if w.mode&unix.S_IFMT == unix.S_IFREG {
			if first, seen := inodeOf[w.ino]; seen {
				if got[first].ino != g.ino {
					t.Errorf("%q and %q were hard links, restored apart", first, name)
				}
			} else {
				inodeOf[w.ino] = name
			}
		}
	}
	var st syscall.Stat_t
	must(t, syscall.Stat(filepath.Join(dst, src, "sparse.img"), &st))
	if st.Blocks*512 > 8<<20 {
		t.Errorf("sparse file restored with %d bytes allocated for 64 MiB: not sparse", st.Blocks*512)
	}
}

// TestRestoreInBatches restores a tree whose files are planned in many
// small batches: blobs shared by files of different batches, files of
// several chunks and packs split between batches must all come back whole.
func TestRestoreInBatches(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	shared := bytes.Repeat([]byte("shared content "), 5000)
	for i := range 120 {
		var data []byte
		switch i % 3 {
		case 0:
			data = shared // the same blob in every batch
		case 1:
			data = []byte(fmt.Sprintf("small file %d\n", i))
		default:
			data = make([]byte, 300<<10) // several chunks
			for j := range data {
				data[j] = byte(i*7 + j*13 + j/997)
			}
		}
		p := filepath.Join(src, fmt.Sprintf("d%d", i%7), fmt.Sprintf("f%03d", i))
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, data, 0o644))
	}
	ctx := context.Background()
	cfg := repo.DefaultConfig
	cfg.Chunker = repo.ChunkerParams{Algorithm: "jc-v1.0.0", Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10}
	cfg.PackSize = 512 << 10
	r, err := repo.Init(ctx, backend.NewMem(), repo.Credential{KeyFile: repo.NewKeyFileSecret()}, cfg)
	must(t, err)
	res, err := archiver.New(r, &view.Live{}, archiver.Options{}).Run(ctx, []string{src})
	must(t, err)
	must(t, r.Flush(ctx))

	for _, batch := range []int{1, 5, 64} {
		dst := t.TempDir()
		rr, err := restore.Run(ctx, r, res.Tree, restore.Options{Target: dst, BatchWrites: batch})
		must(t, err)
		if rr.Errors != 0 || rr.Files != 120 {
			t.Fatalf("batches of %d: %d files, errors %+v", batch, rr.Files, rr.Events)
		}
		want, got := snapshotOf(t, src), snapshotOf(t, filepath.Join(dst, src))
		for name, w := range want {
			if g, ok := got[name]; !ok || !bytes.Equal(g.data, w.data) || g.size != w.size {
				t.Fatalf("batches of %d: %s restored wrong", batch, name)
			}
		}
	}
}
