package snapshot

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/testutil/loopfs"
)

// On XFS a 1 MiB state, written by one pwrite under the inode lock, is
// cloned whole: FICLONE takes the same lock.
func TestReflinkPointInTimeXFS(t *testing.T) {
	mnt := loopfs.XFS(t, 0)
	dir := filepath.Join(mnt, "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	testPointInTime(t, mnt, dir, 1<<20, "reflink", 0)
}

// Clone on open: every file opened through the view is a fresh clone.
func TestReflinkCloneOnOpen(t *testing.T) {
	mnt := loopfs.XFS(t, 0)
	dir := filepath.Join(mnt, "data")
	size := 64 << 10
	file := filepath.Join(dir, "state")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, dir+"/plain", "plain")
	_ = startWriter(t, file, size)
	s, err := NewSet(context.Background(), []Source{{dir, On}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	if s.Consistency() != File {
		t.Fatalf("consistency %s", s.Consistency())
	}
	var last uint64
	for i := 0; i < 30; i++ {
		f, err := s.View().Open(file)
		if err != nil {
			t.Fatal(err)
		}
		if OriginOf(f) != File {
			t.Fatalf("origin %s, want file (a clone)", OriginOf(f))
		}
		b := make([]byte, size+1)
		n, _ := f.Read(b)
		st, err := f.Stat()
		f.Close()
		if err != nil || st.Size != int64(size) {
			t.Fatalf("stat %+v %v", st, err)
		}
		seq, err := checkState(b[:n], size)
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		if seq < last {
			t.Fatalf("went back from %d to %d", last, seq)
		}
		last = seq
	}
	// Clones on open are unnamed files: nothing accumulates in staging.
	ents, err := os.ReadDir(filepath.Join(mnt, StagingDir, s.Label.Name()))
	if err != nil || len(ents) != 0 {
		t.Errorf("staging holds %v (%v)", ents, err)
	}
	if b := readAll(t, s, dir+"/plain"); string(b) != "plain" {
		t.Errorf("plain = %q", b)
	}
	if err := s.Release(); err != nil {
		t.Fatal(err)
	}
	assertClean(t, mnt, 0)
}

// btrfs without a subvolume to snap (a bind mount of a plain directory)
// falls back to reflink clones.
func TestReflinkOnBtrfsBindMount(t *testing.T) {
	mnt := loopfs.Btrfs(t, 0)
	write(t, mnt+"/plain/f", "v1")
	bind := t.TempDir()
	if err := mountBind(mnt+"/plain", bind); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unmountT(t, bind) })
	s, err := NewSet(context.Background(), []Source{{bind, Required}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Sources[0].Provider != "reflink" {
		t.Fatalf("provider %s; fits %s", s.Sources[0].Provider, dumpJSON(s.Sources[0].Fits))
	}
	if err := s.Clone(bind + "/f"); err != nil {
		t.Fatal(err)
	}
	write(t, bind+"/f", "v2")
	if b := readAll(t, s, bind+"/f"); string(b) != "v1" {
		t.Errorf("f = %q, want the clone's v1", b)
	}
	if _, err := os.Stat(filepath.Join(bind, StagingDir, s.Label.Name(), "f")); err != nil {
		t.Errorf("explicit clone not staged: %v", err)
	}
	if err := s.Release(); err != nil {
		t.Fatal(err)
	}
	assertClean(t, bind, 0)
	if _, err := os.Stat(filepath.Join(bind, StagingDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("staging dir survived release: %v", err)
	}
}

// A file written right after its clone is cloned once (each clone stalls
// its writers), and recorded with the metadata from before the clone: the
// bytes lack the write, so metadata that has it would let the next backup
// take the file as unchanged and keep bytes it never had.
func TestReflinkWrittenDuringCloneKeepsEarlierMetadata(t *testing.T) {
	mnt := loopfs.XFS(t, 0)
	dir := filepath.Join(mnt, "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "f")
	write(t, file, "before")
	before, err := os.Lstat(file)
	if err != nil {
		t.Fatal(err)
	}
	clones := 0
	testHookCloned = func(p string) {
		clones++
		time.Sleep(10 * time.Millisecond) // a coarse clock still moves
		if err := os.WriteFile(p, []byte("after the clone"), 0o644); err != nil {
			t.Error(err)
		}
	}
	defer func() { testHookCloned = nil }()
	s, err := NewSet(context.Background(), []Source{{dir, On}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	f, err := s.View().Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "before" || clones != 1 {
		t.Fatalf("read %q after %d clones, want the state before the write, cloned once", b, clones)
	}
	if !st.Mtime.Equal(before.ModTime()) || st.Size != int64(len("before")) {
		t.Fatalf("recorded mtime %v size %d, want the state before the clone (%v, 6)", st.Mtime, st.Size, before.ModTime())
	}
}
