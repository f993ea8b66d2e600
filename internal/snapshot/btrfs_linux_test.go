package snapshot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stillpoint-backup/stillpoint/internal/testutil/loopfs"
	"github.com/stillpoint-backup/stillpoint/internal/view"
)

func TestBtrfsSubvolumeRoot(t *testing.T) {
	mnt := loopfs.Btrfs(t, 0)
	data := filepath.Join(mnt, "data")
	mkSubvol(t, data)
	write(t, data+"/a", "old a")
	write(t, data+"/dir/b", "old b")

	s, err := NewSet(context.Background(), []Source{{data, Required}}, Options{RunID: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Sources[0]; got.Provider != "btrfs" || got.Consistency != Crash || s.Consistency() != Crash {
		t.Fatalf("source plan %+v, set consistency %s", got, s.Consistency())
	}
	// Change everything live; the view must not see it.
	write(t, data+"/a", "new a, longer")
	write(t, data+"/c", "new c")
	if err := os.RemoveAll(data + "/dir"); err != nil {
		t.Fatal(err)
	}
	v := s.View()
	if b := readAll(t, s, data+"/a"); string(b) != "old a" {
		t.Errorf("a through the view = %q, want the snapshot's %q", b, "old a")
	}
	if b := readAll(t, s, data+"/dir/b"); string(b) != "old b" {
		t.Errorf("dir/b = %q", b)
	}
	if _, err := v.Lstat(data + "/c"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("c was created after the snapshot, Lstat = %v", err)
	}
	if names, err := v.ReadDir(data); err != nil || !reflect.DeepEqual(names, []string{"a", "dir"}) {
		t.Errorf("ReadDir = %v, %v", names, err)
	}
	// Inode numbers survive a snapshot; the device is reported as the
	// live subvolume's, so incremental runs can match files.
	st, err := v.Lstat(data + "/a")
	if err != nil {
		t.Fatal(err)
	}
	var live unix.Stat_t
	unix.Stat(data+"/a", &live)
	if st.Dev != uint64(live.Dev) || st.Ino != uint64(live.Ino) {
		t.Errorf("view dev/ino %d/%d, live %d/%d", st.Dev, st.Ino, live.Dev, live.Ino)
	}
	f, err := v.Open(data + "/a")
	if err != nil {
		t.Fatal(err)
	}
	if OriginOf(f) != Crash {
		t.Errorf("origin %s", OriginOf(f))
	}
	f.Close()
	if s.Window <= 0 {
		t.Errorf("window %v", s.Window)
	}
	if err := s.Release(); err != nil {
		t.Fatal(err)
	}
	if err := s.Release(); err != nil {
		t.Fatalf("second release: %v", err)
	}
	assertClean(t, mnt, 1)
}

func TestBtrfsDeepPathAndTopLevel(t *testing.T) {
	mnt := loopfs.Btrfs(t, 0)
	deep := filepath.Join(mnt, "vol", "x", "y")
	mkSubvol(t, filepath.Join(mnt, "vol"))
	write(t, deep+"/f", "v1")
	write(t, mnt+"/vol/outside", "v1")
	write(t, mnt+"/top", "v1")
	link := filepath.Join(t.TempDir(), "link") // a source reached through a symlink
	if err := os.Symlink(deep, link); err != nil {
		t.Fatal(err)
	}

	s, err := NewSet(context.Background(), []Source{{deep, Required}, {link, Required}, {mnt, Required}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	write(t, deep+"/f", "v2")
	write(t, mnt+"/vol/outside", "v2")
	write(t, mnt+"/top", "v2")
	for _, p := range []string{deep + "/f", link + "/f", mnt + "/top"} {
		if b := readAll(t, s, p); string(b) != "v1" {
			t.Errorf("%s = %q, want the snapshot's v1", p, b)
		}
	}
	// vol is nested in the top level source: it has its own snapshot.
	if b := readAll(t, s, mnt+"/vol/outside"); string(b) != "v1" {
		t.Errorf("vol/outside = %q, want v1 from vol's own snapshot", b)
	}
	// Outside every source the set reads live.
	outside := filepath.Join(t.TempDir(), "elsewhere")
	write(t, outside, "live")
	if b := readAll(t, s, outside); string(b) != "live" {
		t.Errorf("%s = %q", outside, b)
	}
	names, err := s.View().ReadDir(mnt)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.HasPrefix(n, ".stillpoint") {
			t.Errorf("ReadDir of the top level shows %s", n)
		}
	}
	if err := s.Release(); err != nil {
		t.Fatal(err)
	}
	assertClean(t, mnt, 1)
}

func TestBtrfsNestedSubvolumes(t *testing.T) {
	mnt := loopfs.Btrfs(t, 0)
	data := filepath.Join(mnt, "data")
	mkSubvol(t, data)
	mkSubvol(t, data+"/inner")
	if err := os.MkdirAll(data+"/inner/d", 0o755); err != nil {
		t.Fatal(err)
	}
	mkSubvol(t, data+"/inner/d/deeper")
	mkSubvol(t, mnt+"/other") // not below the source: must not be snapped
	write(t, data+"/f", "p1")
	write(t, data+"/inner/f", "i1")
	write(t, data+"/inner/d/deeper/f", "d1")

	s, err := NewSet(context.Background(), []Source{{data, Required}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	ents, err := os.ReadDir(filepath.Join(mnt, SnapshotDir, s.Label.Name()))
	if err != nil || len(ents) != 3 {
		t.Fatalf("want 3 snapshots (data, inner, deeper), got %v %v", ents, err)
	}
	for p, c := range map[string]string{"/f": "p2", "/inner/f": "i2", "/inner/d/deeper/f": "d2"} {
		write(t, data+p, c)
	}
	for p, c := range map[string]string{"/f": "p1", "/inner/f": "i1", "/inner/d/deeper/f": "d1"} {
		if b := readAll(t, s, data+p); string(b) != c {
			t.Errorf("%s = %q, want %q from its own snapshot", p, b, c)
		}
	}
	st, err := s.View().Lstat(data + "/inner")
	if err != nil || st.Type != view.TypeDir || st.Ino != firstFreeObjectID {
		t.Errorf("inner through the view: %+v %v (want the nested snapshot's root)", st, err)
	}
	if names, _ := s.View().ReadDir(data + "/inner/d"); !reflect.DeepEqual(names, []string{"deeper"}) {
		t.Errorf("ReadDir inner/d = %v", names)
	}
	if !strings.Contains(strings.Join(s.Notes, "\n"), "not atomic") {
		t.Errorf("no note on nested subvolumes: %q", s.Notes)
	}
	if err := s.Release(); err != nil {
		t.Fatal(err)
	}
	assertClean(t, mnt, 4)
}

// TestBtrfsPointInTime takes many snapshots of a file another process
// rewrites as fast as it can: each snapshot must hold one whole state,
// and keep holding it while the writer goes on.
//
// The state is one page (4 KiB). A btrfs snapshot is crash-consistent, not
// write()-atomic: measured on kernel 6.18, a single 64 KiB or 1 MiB pwrite
// in flight is regularly caught half-written (most runs of 25 snapshots).
// Applications get whole states from a btrfs snapshot through their own
// crash safety or by being quiesced; reflink clones (see the XFS test)
// hold whole multi-page writes.
func TestBtrfsPointInTime(t *testing.T) {
	mnt := loopfs.Btrfs(t, 0)
	data := filepath.Join(mnt, "data")
	mkSubvol(t, data)
	testPointInTime(t, mnt, data, 4096, "btrfs", 1)
}

func TestBtrfsFailureMidwayReleases(t *testing.T) {
	mnt := loopfs.Btrfs(t, 0)
	data := filepath.Join(mnt, "data")
	mkSubvol(t, data)
	mkSubvol(t, data+"/n1")
	mkSubvol(t, data+"/n2")
	injected := errors.New("injected ENOSPC")
	testHookSnap = func(i int) error {
		if i == 2 {
			return injected
		}
		return nil
	}
	defer func() { testHookSnap = nil }()
	_, err := NewSet(context.Background(), []Source{{data, Required}}, Options{})
	if !errors.Is(err, injected) {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), "btrfs") || !strings.Contains(err.Error(), data) {
		t.Errorf("error does not name provider and source: %v", err)
	}
	assertClean(t, mnt, 3)
}

// The label and the snapshots' directory are made when the plan is
// prepared, and the point in time is the Create after it: a write between
// the two is in the snapshot, one after Create is not. A prepared plan
// that is aborted, or whose Create fails, leaves nothing behind.
func TestBtrfsPreparedPlanSnapsAtCreate(t *testing.T) {
	mnt := loopfs.Btrfs(t, 0)
	data := filepath.Join(mnt, "data")
	mkSubvol(t, data)
	mkSubvol(t, data+"/nested")
	write(t, data+"/a", "before prepare")

	plan, err := NewPlan([]Source{{data, Required}}, Options{RunID: "prep"})
	if err != nil {
		t.Fatal(err)
	}
	pr, err := plan.Prepare(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	labels, err := FindLeftovers([]string{mnt})
	if err != nil || len(labels) != 1 || !labels[0].InUse {
		t.Fatalf("after Prepare: leftovers %+v (%v), want this run's one label, in use", labels, err)
	}
	dir := filepath.Join(mnt, SnapshotDir, pr.set.Label.Name())
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Fatalf("after Prepare, %s holds %v (%v): want it made and empty (no snapshot yet)", dir, ents, err)
	}
	write(t, data+"/a", "between prepare and create")
	write(t, data+"/nested/b", "nested, between")
	s, err := pr.Create(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	write(t, data+"/a", "after create")
	if b := readAll(t, s, data+"/a"); string(b) != "between prepare and create" {
		t.Errorf("a through the view = %q: the point in time is not Create", b)
	}
	if b := readAll(t, s, data+"/nested/b"); string(b) != "nested, between" {
		t.Errorf("nested/b through the view = %q", b)
	}
	if _, err := pr.Create(context.Background()); err == nil {
		t.Error("a second Create of one prepared plan succeeded")
	}
	if err := pr.Abort(); err != nil {
		t.Errorf("Abort after Create: %v", err)
	}
	if b := readAll(t, s, data+"/a"); string(b) != "between prepare and create" {
		t.Errorf("Abort after Create touched the set: a = %q", b)
	}
	if err := s.Release(); err != nil {
		t.Fatal(err)
	}
	assertClean(t, mnt, 2)

	// aborted before Create
	pr, err = plan.Prepare(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := pr.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, err := pr.Create(context.Background()); err == nil {
		t.Error("Create after Abort succeeded")
	}
	assertClean(t, mnt, 2)

	// Create fails midway: the snapshot made and the prepared directory go
	injected := errors.New("injected ENOSPC")
	testHookSnap = func(i int) error {
		if i == 1 {
			return injected
		}
		return nil
	}
	defer func() { testHookSnap = nil }()
	pr, err = plan.Prepare(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pr.Create(context.Background()); !errors.Is(err, injected) {
		t.Fatalf("Create = %v, want the injected failure", err)
	}
	assertClean(t, mnt, 2)

	// a cancelled context before Create removes what was prepared
	testHookSnap = nil
	pr, err = plan.Prepare(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := pr.Create(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Create with a cancelled context = %v", err)
	}
	assertClean(t, mnt, 2)
}
