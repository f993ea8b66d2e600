//go:build linux

package mount_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/stillpoint-backup/stillpoint/internal/mount"
	"golang.org/x/sys/unix"
)

// resident tells how many of the pages of file p the page cache holds,
// without reading it (mincore of a mapping), and how many it has.
func resident(t *testing.T, p string, size int) (in, pages int) {
	t.Helper()
	f, err := os.Open(p)
	must(t, err)
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	must(t, err)
	defer unix.Munmap(m)
	pages = (size + os.Getpagesize() - 1) / os.Getpagesize()
	vec := make([]byte, pages)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatalf("mincore %s: %v", p, errno)
	}
	for _, v := range vec {
		in += int(v & 1)
	}
	return in, pages
}

// dropPages asks the kernel to forget the cached pages of p.
func dropPages(t *testing.T, p string) {
	t.Helper()
	f, err := os.Open(p)
	must(t, err)
	defer f.Close()
	must(t, unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED))
}

// byInode lists the regular files of dir sorted by inode number, the
// order in which cp goes through a directory.
func byInode(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	must(t, err)
	type file struct {
		name string
		ino  uint64
	}
	var files []file
	for _, e := range ents {
		var st unix.Stat_t
		must(t, unix.Lstat(filepath.Join(dir, e.Name()), &st))
		if st.Mode&unix.S_IFMT == unix.S_IFREG {
			files = append(files, file{e.Name(), st.Ino})
		}
	}
	slices.SortFunc(files, func(a, b file) int {
		if a.ino < b.ino {
			return -1
		}
		return 1
	})
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.name
	}
	return names
}

// Once a file of a directory is read, the small files after it are in the
// page cache before anyone reads them, byte for byte as stored; pages the
// kernel dropped are read from the mount again, right.
func TestMountPushesSmallFilesIntoThePageCache(t *testing.T) {
	needFUSE(t)
	src := filepath.Join(t.TempDir(), "src")
	want := map[string][]byte{}
	// sizes around a page and a blob (the test repository's chunks are
	// 16-256 KiB, so the larger files have several blobs), and one too
	// large to be pushed
	sizes := []int{1, 100, 4095, 4096, 4097, 9000, 65536, 200_001, 700_000}
	for i := range 24 {
		n := sizes[i%len(sizes)] + i
		name := fmt.Sprintf("f%02d", i)
		want[name] = randomData(uint64(100+i), n)
		writeFile(t, filepath.Join(src, "d", name), want[name])
	}
	want["large"] = randomData(99, 3<<20)
	writeFile(t, filepath.Join(src, "d", "large"), want["large"])
	writeFile(t, filepath.Join(src, "other", "x"), randomData(98, 5000))
	r := localRepo(t)
	backup(t, r, src, time.Now(), "h")
	m := serve(t, r, mount.Options{})
	dir := filepath.Join(m.dir, "latest", src, "d")
	names := byInode(t, dir)

	// listing pushes nothing
	time.Sleep(200 * time.Millisecond)
	for _, n := range names {
		if in, _ := resident(t, filepath.Join(dir, n), len(want[n])); in != 0 {
			t.Fatalf("%s: %d pages cached after a listing alone", n, in)
		}
	}

	// reading the first file pushes the others
	got, err := os.ReadFile(filepath.Join(dir, names[0]))
	must(t, err)
	if !bytes.Equal(got, want[names[0]]) {
		t.Fatalf("%s: content differs", names[0])
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, n := range names[1:] {
		p := filepath.Join(dir, n)
		for {
			in, pages := resident(t, p, len(want[n]))
			if n == "large" {
				if in != 0 {
					t.Fatalf("large: %d pages pushed, want none (larger than the files pushed)", in)
				}
				break
			}
			if in == pages {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d of %d pages in the page cache 10s after the first file was read", n, in, pages)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// the other directory was not read: nothing of it is pushed
	if in, _ := resident(t, filepath.Join(m.dir, "latest", src, "other", "x"), 5000); in != 0 {
		t.Fatalf("other/x: %d pages cached, nothing of its directory was read", in)
	}
	// what was pushed is what was stored (the reads come from the cache)
	for _, n := range names {
		got, err := os.ReadFile(filepath.Join(dir, n))
		must(t, err)
		if !bytes.Equal(got, want[n]) {
			t.Fatalf("%s: the pushed content differs from the stored one (%d bytes, want %d)", n, len(got), len(want[n]))
		}
	}
	// dropped pages are read from the mount again
	for _, n := range names {
		p := filepath.Join(dir, n)
		dropPages(t, p)
		if in, _ := resident(t, p, len(want[n])); in != 0 {
			t.Fatalf("%s: %d pages still cached after FADV_DONTNEED", n, in)
		}
		got, err := os.ReadFile(p)
		must(t, err)
		if !bytes.Equal(got, want[n]) {
			t.Fatalf("%s: content read after its pages were dropped differs", n)
		}
	}
	m.stop(t)
}
