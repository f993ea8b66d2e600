package restore_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/archiver"
	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/restore"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/loopfs"
	"github.com/stillpoint-backup/stillpoint/internal/view"
	"golang.org/x/sys/unix"
)

// restoreAll restores tree and fails unless its files, all of them
// whole, are the n it holds.
func restoreAll(t *testing.T, r restore.Repo, tree repo.ID, opts restore.Options, n int) {
	t.Helper()
	rr, err := restore.Run(context.Background(), r, tree, opts)
	must(t, err)
	if rr.Errors != 0 || rr.Files != int64(n) {
		t.Fatalf("%d files restored of %d, events %+v", rr.Files, n, rr.Events)
	}
}

// sameFiles fails unless each file named in files is in dir with its content.
func sameFiles(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for name, data := range files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		must(t, err)
		if !bytes.Equal(got, data) {
			t.Fatalf("%s restored wrong (%d bytes, want %d)", name, len(got), len(data))
		}
	}
}

// cachedPages is how many of the file's pages are in the page cache.
func cachedPages(t *testing.T, path string) uint64 {
	t.Helper()
	f, err := os.Open(path)
	must(t, err)
	defer f.Close()
	var st unix.Cachestat_t
	must(t, unix.Cachestat(uint(f.Fd()), &unix.CachestatRange{}, &st, 0))
	return st.Cache
}

// Big files are restored past the page cache on the file systems a restore
// goes to, byte for byte: unaligned blob edges, a length that is no
// multiple of a block, several writers of one file, a hole. Small files
// still go through the cache.
func TestBigFilesRestoredPastThePageCache(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	must(t, os.MkdirAll(src, 0o755))
	files := map[string][]byte{
		"odd":   pseudoRandom(13<<20+4097, 7),
		"round": pseudoRandom(24<<20, 8),
		"small": pseudoRandom(100<<10, 9),
	}
	for name, data := range files {
		must(t, os.WriteFile(filepath.Join(src, name), data, 0o644))
	}
	// data, a 16 MiB hole, data
	sparse := append(append(pseudoRandom(6<<20+5, 10), make([]byte, 16<<20)...), pseudoRandom(3<<20, 11)...)
	f, err := os.Create(filepath.Join(src, "sparse"))
	must(t, err)
	_, err = f.WriteAt(sparse[:6<<20+5], 0)
	must(t, err)
	_, err = f.WriteAt(sparse[22<<20+5:], 22<<20+5)
	must(t, err)
	must(t, f.Close())
	files["sparse"] = sparse

	ctx := context.Background()
	r, err := repo.Init(ctx, backend.NewMem(), repo.Credential{KeyFile: repo.NewKeyFileSecret()}, repo.DefaultConfig)
	must(t, err)
	res, err := archiver.New(r, &view.Live{}, archiver.Options{}).Run(ctx, []string{src})
	must(t, err)
	must(t, r.Flush(ctx))

	for _, fs := range []struct {
		name  string
		mount func(testing.TB, int) string
	}{{"ext4", loopfs.Ext4}, {"xfs", loopfs.XFS}, {"btrfs", loopfs.Btrfs}} {
		t.Run(fs.name, func(t *testing.T) {
			dst := fs.mount(t, 400)
			restoreAll(t, r, res.Tree, restore.Options{Target: dst, Workers: 4}, len(files))
			// before anything reads them back: the bulk of the big files
			// went past the cache, only the edges of their runs are cached
			for name, data := range files {
				pages := uint64(len(data)+4095) / 4096
				cached := cachedPages(t, filepath.Join(dst, src, name))
				if name == "small" {
					if cached != pages {
						t.Errorf("small: %d of its %d pages cached; a small file is written through the cache", cached, pages)
					}
				} else if cached > pages/16 {
					t.Errorf("%s: %d of its %d pages cached after the restore; want only the edges of its runs", name, cached, pages)
				}
			}
			sameFiles(t, filepath.Join(dst, src), files)
			var st unix.Stat_t
			must(t, unix.Stat(filepath.Join(dst, src, "sparse"), &st))
			// the chunks at the hole's edges hold some of its zeros; the rest
			// stays a hole (also on XFS, whose speculative preallocation
			// allocated into it when buffered writes extended the file)
			if st.Blocks*512 > int64(len(sparse))-8<<20 {
				t.Errorf("sparse: %d bytes allocated of %d: the hole was filled", st.Blocks*512, len(sparse))
			}
		})
	}

	// edges written while the file is restored, not all at its end, as a
	// file of a terabyte needs: every byte still comes back
	t.Run("edges written on the way", func(t *testing.T) {
		defer restore.KeepEdges(8 << 10)()
		dst := loopfs.Ext4(t, 200)
		restoreAll(t, r, res.Tree, restore.Options{Target: dst, Workers: 4}, len(files))
		sameFiles(t, filepath.Join(dst, src), files)
	})

	// a damaged blob in the middle of a big file: the blobs around it,
	// their unaligned edges too, are at their offsets, and the file keeps
	// its size
	t.Run("damaged", func(t *testing.T) {
		dst := loopfs.Ext4(t, 200)
		node := findNode(t, r, res.Tree, filepath.Join(src, "odd"))
		bad := node.Content[len(node.Content)/2]
		rr, err := restore.Run(ctx, damagedBlob{r, bad}, res.Tree, restore.Options{Target: dst, Workers: 4})
		must(t, err)
		if rr.Errors != 1 || rr.Files != int64(len(files)-1) {
			t.Fatalf("%d errors, %d files restored; want 1 error and the others whole: %+v", rr.Errors, rr.Files, rr.Events)
		}
		got, err := os.ReadFile(filepath.Join(dst, src, "odd"))
		must(t, err)
		data := files["odd"]
		if len(got) != len(data) {
			t.Fatalf("damaged file has %d bytes, want %d", len(got), len(data))
		}
		var off int64
		for _, id := range node.Content {
			bi, _ := r.LookupBlob(id)
			if id != bad && !bytes.Equal(got[off:off+int64(bi.RawLen)], data[off:off+int64(bi.RawLen)]) {
				t.Errorf("intact blob at %d not restored", off)
			}
			off += int64(bi.RawLen)
		}
	})

	// a disk that fills up under the direct writes (XFS allocates no blocks
	// before them, as ext4 does): each file that did not fit says so, and
	// each file claimed whole is
	t.Run("full disk", func(t *testing.T) {
		dst := loopfs.XFS(t, 320)
		var st unix.Statfs_t
		must(t, unix.Statfs(dst, &st))
		filler, err := os.Create(filepath.Join(dst, "filler"))
		must(t, err)
		must(t, unix.Fallocate(int(filler.Fd()), 0, 0, int64(st.Bavail)*st.Bsize-20<<20))
		must(t, filler.Close())
		rr, err := restore.Run(ctx, r, res.Tree, restore.Options{Target: dst, Workers: 4})
		must(t, err)
		failed := map[string]bool{}
		for _, e := range rr.Events {
			if e.Kind != "error" || !strings.Contains(e.Message, "no space left on device") {
				t.Errorf("want only errors of a full disk: %+v", e)
			}
			failed[filepath.Base(e.Path)] = true
		}
		if len(failed) == 0 || rr.Files+int64(len(failed)) != int64(len(files)) {
			t.Fatalf("%d files restored, %d failed (%v), of %d: %+v", rr.Files, len(failed), failed, len(files), rr.Events)
		}
		for name, data := range files {
			if failed[name] {
				continue
			}
			got, err := os.ReadFile(filepath.Join(dst, src, name))
			must(t, err)
			if !bytes.Equal(got, data) {
				t.Errorf("%s claimed whole on a full disk, but restored wrong", name)
			}
		}
	})

	// a file system that refuses O_DIRECT gets every byte through the cache,
	// and is asked once a restore
	refused := 0
	defer restore.RefuseDirectIO(&refused)()
	dst := t.TempDir()
	restoreAll(t, r, res.Tree, restore.Options{Target: dst, Workers: 1}, len(files))
	sameFiles(t, filepath.Join(dst, src), files)
	if refused != 1 {
		t.Errorf("O_DIRECT asked for %d times after a refusal; want once", refused)
	}
}
