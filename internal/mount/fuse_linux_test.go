//go:build linux

package mount_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/archiver"
	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/mount"
	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
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

// needFUSE skips without root or /dev/fuse; in CI it fails instead.
func needFUSE(t *testing.T) {
	t.Helper()
	ci.NeedRoot(t)
	if err := mount.Available(); err != nil {
		if ci.Enabled() {
			t.Fatal(err)
		}
		t.Skip(err)
	}
}

// mounted tells whether dir is a mount point in /proc/self/mountinfo.
func mounted(t *testing.T, dir string) bool {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	must(t, err)
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

// served is a running mount.
type served struct {
	dir    string
	cancel context.CancelFunc
	done   chan struct{} // closed when Serve returned, with err
	err    error
}

// serve mounts r at a new directory; the mount is gone when the test ends,
// whatever happened.
func serve(t *testing.T, r mount.Repo, opts mount.Options) *served {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	must(t, os.Mkdir(dir, 0o755))
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	opts.Ready = func() { close(ready) }
	if opts.Warn == nil {
		opts.Warn = func(msg string) { t.Log("mount:", msg) }
	}
	s := &served{dir: dir, cancel: cancel, done: make(chan struct{})}
	go func() {
		s.err = mount.Serve(ctx, r, dir, opts)
		close(s.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(15 * time.Second):
		}
		if mounted(t, dir) {
			// our own mount point only
			if exec.Command("fusermount3", "-u", "-z", dir).Run() != nil {
				_ = syscall.Unmount(dir, syscall.MNT_DETACH)
			}
		}
	})
	select {
	case <-ready:
	case <-s.done:
		t.Fatalf("mount: %v", s.err)
	case <-time.After(15 * time.Second):
		t.Fatal("not mounted after 15s")
	}
	return s
}

// stop unmounts through ctx and checks that Serve ended cleanly.
func (s *served) stop(t *testing.T) {
	t.Helper()
	s.cancel()
	select {
	case <-s.done:
		if s.err != nil {
			t.Fatalf("Serve after unmount: %v", s.err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not return 15s after its context ended")
	}
	if mounted(t, s.dir) {
		t.Fatalf("%s is still mounted", s.dir)
	}
}

// localRepo is a repository on disk with small chunks, so that files of
// a few MiB have many blobs.
func localRepo(t *testing.T) *repo.Repository {
	t.Helper()
	cfg := repo.DefaultConfig
	cfg.Chunker = repo.ChunkerParams{Algorithm: "jc-v1.0.0", Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10}
	cfg.PackSize = 1 << 20
	r, err := repo.Init(context.Background(), backend.NewLocal(filepath.Join(t.TempDir(), "repo")), repo.Credential{KeyFile: repo.NewKeyFileSecret()}, cfg)
	must(t, err)
	return r
}

// backup stores src as a snapshot of host with tags.
func backup(t *testing.T, r *repo.Repository, src string, when time.Time, host string, tags ...string) *repo.Snapshot {
	t.Helper()
	ctx := context.Background()
	res, err := archiver.New(r, &view.Live{}, archiver.Options{}).Run(ctx, []string{src})
	must(t, err)
	must(t, r.Flush(ctx))
	s := &repo.Snapshot{Time: when, Host: host, Tags: tags, Paths: []string{src}, Tree: res.Tree, Outcomes: map[string]int64{}}
	_, err = r.SaveSnapshot(ctx, s)
	must(t, err)
	return s
}

func writeFile(t *testing.T, p string, data []byte) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, data, 0o644))
}

func randomData(seed uint64, n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(b)
	return b
}

// makeSource writes the kinds of entries a mount must show as they were.
func makeSource(t *testing.T, root string) {
	writeFile(t, filepath.Join(root, "big.bin"), randomData(1, 6<<20+12345))
	writeFile(t, filepath.Join(root, "text/readme.txt"), bytes.Repeat([]byte("stillpoint mounts what it stored\n"), 3000))
	writeFile(t, filepath.Join(root, "text/empty"), nil)
	writeFile(t, filepath.Join(root, "dir with space/日本語"), []byte("unicode"))
	must(t, os.Chmod(filepath.Join(root, "text/readme.txt"), 0o640))
	must(t, os.Lchown(filepath.Join(root, "text/readme.txt"), 1234, 5678))
	must(t, unix.Setxattr(filepath.Join(root, "text/readme.txt"), "user.color", []byte("blue\x00binary"), 0))

	sp, err := os.Create(filepath.Join(root, "sparse.img"))
	must(t, err)
	_, err = sp.WriteAt(randomData(2, 4096), 8<<20)
	must(t, err)
	must(t, sp.Close())

	writeFile(t, filepath.Join(root, "links/a"), []byte("one inode, three names"))
	must(t, os.Link(filepath.Join(root, "links/a"), filepath.Join(root, "links/b")))
	must(t, os.MkdirAll(filepath.Join(root, "links/sub"), 0o755))
	must(t, os.Link(filepath.Join(root, "links/a"), filepath.Join(root, "links/sub/c")))
	must(t, os.Symlink("../text/readme.txt", filepath.Join(root, "links/sym")))
	must(t, unix.Mkfifo(filepath.Join(root, "fifo"), 0o620))
	ts := time.Date(2020, 1, 2, 3, 4, 5, 123456789, time.UTC).UnixNano()
	must(t, unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(root, "big.bin"), []unix.Timespec{unix.NsecToTimespec(ts), unix.NsecToTimespec(ts)}, 0))
}

// compareTree checks every entry below src against the same path below got.
func compareTree(t *testing.T, src, got string) {
	t.Helper()
	inodes := map[uint64]uint64{} // source inode -> mounted inode
	n := 0
	must(t, filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		must(t, err)
		rel, _ := filepath.Rel(src, p)
		g := filepath.Join(got, rel)
		var ws, gs unix.Stat_t
		must(t, unix.Lstat(p, &ws))
		if err := unix.Lstat(g, &gs); err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		n++
		if gs.Mode != ws.Mode || gs.Uid != ws.Uid || gs.Gid != ws.Gid {
			t.Errorf("%s: mode %o uid %d gid %d, want %o %d %d", rel, gs.Mode, gs.Uid, gs.Gid, ws.Mode, ws.Uid, ws.Gid)
		}
		if !fi.IsDir() && (gs.Mtim != ws.Mtim || gs.Size != ws.Size) {
			t.Errorf("%s: mtime %v size %d, want %v %d", rel, gs.Mtim, gs.Size, ws.Mtim, ws.Size)
		}
		switch {
		case fi.Mode().IsRegular():
			want, err := os.ReadFile(p)
			must(t, err)
			have, err := os.ReadFile(g)
			if err != nil || !bytes.Equal(have, want) {
				t.Errorf("%s: content differs (%d bytes, want %d): %v", rel, len(have), len(want), err)
			}
			if ws.Nlink > 1 {
				if m, ok := inodes[ws.Ino]; ok && m != gs.Ino {
					t.Errorf("%s: a hard link shows inode %d, its other names %d", rel, gs.Ino, m)
				}
				inodes[ws.Ino] = gs.Ino
				if gs.Nlink != ws.Nlink {
					t.Errorf("%s: %d links, want %d", rel, gs.Nlink, ws.Nlink)
				}
			}
		case fi.Mode()&os.ModeSymlink != 0:
			w, _ := os.Readlink(p)
			if h, err := os.Readlink(g); h != w {
				t.Errorf("%s: link to %q (%v), want %q", rel, h, err, w)
			}
		}
		return nil
	}))
	if n < 12 {
		t.Fatalf("compared %d entries only", n)
	}
}

func getxattr(t *testing.T, p, name string) string {
	t.Helper()
	buf := make([]byte, 256)
	n, err := unix.Getxattr(p, name, buf)
	if err != nil {
		return "error: " + err.Error()
	}
	return string(buf[:n])
}

func listxattr(t *testing.T, p string) []string {
	t.Helper()
	buf := make([]byte, 1024)
	n, err := unix.Listxattr(p, buf)
	must(t, err)
	if n == 0 {
		return nil
	}
	return strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
}

func TestMountShowsSnapshotsAsStored(t *testing.T) {
	needFUSE(t)
	src := filepath.Join(t.TempDir(), "src")
	makeSource(t, src)
	r := localRepo(t)
	when := time.Date(2026, 11, 30, 22, 15, 0, 0, time.FixedZone("", 3600))
	s := backup(t, r, src, when, "db1", "daily")
	m := serve(t, r, mount.Options{CacheSize: 2 << 20})

	name := "2026-11-30T22:15:00+01:00"
	entries, err := os.ReadDir(filepath.Join(m.dir, "snapshots"))
	must(t, err)
	if len(entries) != 1 || entries[0].Name() != name {
		t.Fatalf("snapshots/ holds %v, want [%s]", entries, name)
	}
	for link, want := range map[string]string{"latest": "snapshots/" + name, "ids/" + s.ID.Short(): "../snapshots/" + name, "hosts/db1/latest": name, "tags/daily/latest": name} {
		if got, err := os.Readlink(filepath.Join(m.dir, link)); got != want {
			t.Errorf("%s -> %q (%v), want %q", link, got, err, want)
		}
	}
	snapDir := filepath.Join(m.dir, "snapshots", name)
	if got := getxattr(t, snapDir, mount.XattrSnapshot); got != s.ID.String() {
		t.Errorf("snapshot directory's id attribute %q", got)
	}
	compareTree(t, src, filepath.Join(snapDir, src))
	compareTree(t, src, filepath.Join(m.dir, "hosts/db1", name, src))
	compareTree(t, src, filepath.Join(m.dir, "tags/daily/latest", src))

	readme := filepath.Join(snapDir, src, "text/readme.txt")
	if got := getxattr(t, readme, "user.color"); got != "blue\x00binary" {
		t.Errorf("stored xattr %q", got)
	}
	if got := getxattr(t, readme, mount.XattrOutcome); got != "ok" {
		t.Errorf("outcome %q, want ok", got)
	}
	// a whole file lists its own attributes only: cp -a copies no outcome
	if names := listxattr(t, readme); !slices.Equal(names, []string{"user.color"}) {
		t.Errorf("listed attributes %q, want the stored one alone", names)
	}

	// the sparse file keeps its hole
	sparse := filepath.Join(snapDir, src, "sparse.img")
	var st unix.Stat_t
	must(t, unix.Stat(sparse, &st))
	if st.Blocks*512 > 1<<20 {
		t.Errorf("sparse.img: %d bytes allocated of %d: the hole is not one", st.Blocks*512, st.Size)
	}
	f, err := os.Open(sparse)
	must(t, err)
	off, err := unix.Seek(int(f.Fd()), 0, unix.SEEK_DATA)
	f.Close()
	if err != nil || off < 7<<20 || off > 8<<20 {
		t.Errorf("SEEK_DATA from 0 went to %d (%v), want the data near 8 MiB", off, err)
	}

	// and cp keeps it
	copied := filepath.Join(t.TempDir(), "sparse.img")
	if out, err := exec.Command("cp", sparse, copied).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	must(t, unix.Stat(copied, &st))
	if st.Blocks*512 > 1<<20 {
		t.Errorf("cp of sparse.img out of the mount allocated %d bytes: holes lost", st.Blocks*512)
	}

	// read-only everywhere
	for _, err := range []error{
		os.WriteFile(filepath.Join(snapDir, src, "new"), nil, 0o644),
		os.WriteFile(readme, []byte("x"), 0o644),
		os.Remove(readme),
		os.Mkdir(filepath.Join(m.dir, "snapshots", "x"), 0o755),
		os.Chmod(readme, 0o777),
	} {
		if !errors.Is(err, syscall.EROFS) {
			t.Errorf("a write gave %v, want EROFS", err)
		}
	}
	m.stop(t)
}

func TestMountReadsLargeFileAtRandomOffsets(t *testing.T) {
	needFUSE(t)
	src := filepath.Join(t.TempDir(), "src")
	want := randomData(7, 8<<20+333)
	writeFile(t, filepath.Join(src, "big"), want)
	r := localRepo(t)
	backup(t, r, src, time.Now(), "h")
	// a cache smaller than the file: reads must load what they need again
	m := serve(t, r, mount.Options{CacheSize: 1 << 20})
	f, err := os.Open(filepath.Join(m.dir, "latest", src, "big"))
	must(t, err)
	defer f.Close()
	rnd := rand.New(rand.NewPCG(3, 4))
	buf := make([]byte, 600<<10)
	for range 200 {
		off := rnd.Int64N(int64(len(want)))
		n := rnd.IntN(len(buf)) + 1
		// O_DIRECT is not needed: each offset is new to the page cache often enough,
		// and a wrong byte from any path fails the comparison
		got, err := f.ReadAt(buf[:n], off)
		end := min(off+int64(n), int64(len(want)))
		if int64(got) != end-off || !bytes.Equal(buf[:got], want[off:end]) {
			t.Fatalf("read %d at %d: %d bytes (%v), content equal: %v", n, off, got, err, bytes.Equal(buf[:got], want[off:end]))
		}
	}
	f.Close()
	m.stop(t)
}

// handMade stores a snapshot of files whose outcomes say they are not whole.
func handMade(t *testing.T, r *repo.Repository, when time.Time) *repo.Snapshot {
	t.Helper()
	ctx := context.Background()
	data := []byte("read while it changed")
	id := r.Hash(data)
	_, err := r.SaveBlob(ctx, repo.DataBlob, id, data)
	must(t, err)
	leaf := &repo.Tree{Nodes: []*repo.Node{
		{Name: "changed.db", Type: repo.NodeFile, Mode: 0o644, Size: uint64(len(data)), Content: []repo.ID{id}, Links: 1,
			Outcome: outcome.Changed, Reason: "size changed while read", Holder: "postgres[42]"},
		{Name: "locked.pst", Type: repo.NodeFile, Mode: 0o600, Links: 1, Outcome: outcome.Failed, Reason: "locked"},
		{Name: "whole.txt", Type: repo.NodeFile, Mode: 0o644, Size: uint64(len(data)), Content: []repo.ID{id}, Links: 1},
	}}
	leafID, err := r.SaveTree(ctx, leaf)
	must(t, err)
	root := &repo.Tree{Nodes: []*repo.Node{{Name: "srv", Type: repo.NodeDir, Mode: 0o755, Subtree: leafID, Outcome: outcome.Changed}}}
	rootID, err := r.SaveTree(ctx, root)
	must(t, err)
	must(t, r.Flush(ctx))
	s := &repo.Snapshot{Time: when, Host: "h", Paths: []string{"/srv"}, Tree: rootID, Partial: true, Consistency: "live"}
	_, err = r.SaveSnapshot(ctx, s)
	must(t, err)
	return s
}

func TestMountOutcomeAttributesAndNewSnapshots(t *testing.T) {
	needFUSE(t)
	r := localRepo(t)
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	handMade(t, r, t0)
	m := serve(t, r, mount.Options{RefreshEvery: 50 * time.Millisecond})

	dir := filepath.Join(m.dir, "latest", "srv")
	for file, want := range map[string][3]string{
		"changed.db": {"changed", "size changed while read", "postgres[42]"},
		"locked.pst": {"failed", "locked", ""},
		"whole.txt":  {"ok", "", ""},
	} {
		p := filepath.Join(dir, file)
		got := [3]string{getxattr(t, p, mount.XattrOutcome), getxattr(t, p, mount.XattrReason), getxattr(t, p, mount.XattrHolder)}
		for i, name := range []string{mount.XattrReason, mount.XattrHolder} {
			if want[i+1] == "" && got[i+1] == "error: "+syscall.ENODATA.Error() {
				got[i+1] = ""
			}
			_ = name
		}
		if got != want {
			t.Errorf("%s: outcome, reason, holder %q, want %q", file, got, want)
		}
	}
	if got := listxattr(t, filepath.Join(dir, "changed.db")); !slices.Equal(got, []string{mount.XattrOutcome, mount.XattrReason, mount.XattrHolder}) {
		t.Errorf("a changed file lists %q, want its outcome, reason and holder", got)
	}
	if got := getxattr(t, dir, mount.XattrOutcome); got != "changed" {
		t.Errorf("directory's outcome %q", got)
	}
	if got := getxattr(t, filepath.Join(m.dir, "latest"), mount.XattrConsistency); got != "live" {
		t.Errorf("snapshot's consistency %q", got)
	}

	// a backup while mounted, with data only its new index file locates
	src := filepath.Join(t.TempDir(), "src")
	fresh := randomData(9, 300<<10)
	writeFile(t, filepath.Join(src, "fresh"), fresh)
	backup(t, r, src, t0.Add(time.Hour), "h2")
	name := t0.Add(time.Hour).Format(mount.TimeFormat)
	deadline := time.Now().Add(5 * time.Second)
	for {
		entries, err := os.ReadDir(filepath.Join(m.dir, "snapshots"))
		must(t, err)
		if len(entries) == 2 && entries[1].Name() == name {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new snapshot did not appear: %v", entries)
		}
		time.Sleep(60 * time.Millisecond)
	}
	got, err := os.ReadFile(filepath.Join(m.dir, "snapshots", name, src, "fresh"))
	if err != nil || !bytes.Equal(got, fresh) {
		t.Fatalf("the new snapshot's file: %v (equal: %v)", err, bytes.Equal(got, fresh))
	}
	for target := ""; target != "snapshots/"+name; time.Sleep(50 * time.Millisecond) {
		// the kernel may keep the old link for a second
		if target, _ = os.Readlink(filepath.Join(m.dir, "latest")); time.Now().After(deadline.Add(2 * time.Second)) {
			t.Fatalf("latest -> %q after the new backup", target)
		}
	}
	if _, err := os.Stat(filepath.Join(m.dir, "hosts/h2", name)); err != nil {
		t.Errorf("the new host's directory: %v", err)
	}
	m.stop(t)
}

func TestMountEndsWhenUnmountedFromOutside(t *testing.T) {
	needFUSE(t)
	r := localRepo(t)
	handMade(t, r, time.Now())
	for _, lazy := range []bool{false, true} {
		m := serve(t, r, mount.Options{})
		p := filepath.Join(m.dir, "latest", "srv", "whole.txt")
		if !lazy {
			if out, err := exec.Command("fusermount3", "-u", m.dir).CombinedOutput(); err != nil {
				t.Fatalf("fusermount3 -u: %v: %s", err, out)
			}
		} else {
			// a file open in the mount is served until it is closed
			f, err := os.Open(p)
			must(t, err)
			if out, err := exec.Command("umount", "-l", m.dir).CombinedOutput(); err != nil {
				t.Fatalf("umount -l: %v: %s", err, out)
			}
			if mounted(t, m.dir) {
				t.Fatal("still mounted after umount -l")
			}
			buf := make([]byte, 100)
			if n, err := f.Read(buf); err != nil || string(buf[:n]) != "read while it changed" {
				t.Errorf("the open file after the lazy unmount: %q, %v", buf[:n], err)
			}
			f.Close()
		}
		select {
		case <-m.done:
			if m.err != nil {
				t.Fatalf("Serve after an unmount from outside (lazy %v): %v", lazy, m.err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Serve still runs 10s after the unmount (lazy %v)", lazy)
		}
		if mounted(t, m.dir) {
			t.Fatal("still mounted")
		}
	}
}
