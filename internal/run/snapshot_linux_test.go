package run_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/livefile"
	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/restore"
	"github.com/stillpoint-backup/stillpoint/internal/run"
	"github.com/stillpoint-backup/stillpoint/internal/snapshot"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/loopfs"
)

// The page writer rewrites a file of pageCount pages in place, page after
// page, each page carrying its generation, its index and a checksum. A copy
// is a state the file really had when every page is whole and the
// generations read g…g, g-1…g-1 (the writer was part-way through g).
//
// A btrfs snapshot is crash-consistent: what was in flight in the page
// cache may reach it in any order, so only single-page states are
// guaranteed whole there (the btrfs test uses a one-page file). A reflink
// clone excludes whole write calls, so the multi-page prefix check holds.
const (
	pageSize  = 4096
	pageCount = 64
)

var pagesInFile = pageCount

func TestMain(m *testing.M) {
	if path := os.Getenv("STILLPOINT_TEST_PAGE_WRITER"); path != "" {
		if n, err := strconv.Atoi(os.Getenv("STILLPOINT_TEST_PAGES")); err == nil {
			pagesInFile = n
		}
		pageWriter(path)
		return
	}
	if path := os.Getenv("STILLPOINT_TEST_HOLDER"); path != "" {
		holdFile(path, os.Getenv("STILLPOINT_TEST_HOLD_MODE"))
		return
	}
	os.Exit(m.Run())
}

func page(gen uint64, i int) []byte {
	b := make([]byte, pageSize)
	binary.LittleEndian.PutUint64(b[0:], gen)
	binary.LittleEndian.PutUint64(b[8:], uint64(i))
	for k := 16; k < pageSize-4; k++ {
		b[k] = byte(gen*31 + uint64(i)*7 + uint64(k))
	}
	binary.LittleEndian.PutUint32(b[pageSize-4:], crc32.ChecksumIEEE(b[:pageSize-4]))
	return b
}

func pageWriter(path string) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		os.Exit(2)
	}
	for i := range pagesInFile {
		f.WriteAt(page(1, i), int64(i*pageSize))
	}
	os.Stdout.WriteString("ready\n")
	for gen := uint64(2); ; gen++ {
		for i := range pagesInFile {
			if _, err := f.WriteAt(page(gen, i), int64(i*pageSize)); err != nil {
				os.Exit(3)
			}
		}
	}
}

// checkPages tells whether data is a state the page writer produced.
func checkPages(data []byte) error {
	if len(data) == 0 || len(data)%pageSize != 0 {
		return fmt.Errorf("size %d", len(data))
	}
	var first, prev uint64
	for i := range len(data) / pageSize {
		b := data[i*pageSize : (i+1)*pageSize]
		if crc32.ChecksumIEEE(b[:pageSize-4]) != binary.LittleEndian.Uint32(b[pageSize-4:]) {
			return fmt.Errorf("page %d is torn", i)
		}
		gen := binary.LittleEndian.Uint64(b)
		if i == 0 {
			first, prev = gen, gen
			continue
		}
		if gen > prev || (gen != first && gen != first-1) {
			return fmt.Errorf("page %d has generation %d after %d: never a state of the file", i, gen, prev)
		}
		prev = gen
	}
	return nil
}

func startPageWriter(t *testing.T, path string) { startPageWriterN(t, path, pageCount) }

func startPageWriterN(t *testing.T, path string, pages int) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "STILLPOINT_TEST_PAGE_WRITER="+path, "STILLPOINT_TEST_PAGES="+strconv.Itoa(pages))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	buf := make([]byte, 6)
	if _, err := out.Read(buf); err != nil || string(buf) != "ready\n" {
		t.Fatalf("page writer did not start: %q %v", buf, err)
	}
}

func newRepo(t *testing.T) *repo.Repository {
	r, err := repo.Init(context.Background(), backend.NewMem(), repo.Credential{Password: "pw"}, repo.DefaultConfig)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func backupOnce(t *testing.T, r *repo.Repository, policy snapshot.Policy, paths ...string) *run.BackupResult {
	t.Helper()
	lf := livefile.DefaultConfig()
	lf.StagingDir = t.TempDir()
	var sources []run.Source
	for _, p := range paths {
		sources = append(sources, run.Source{Path: p, Snapshot: policy, OpenFiles: lf})
	}
	plan, err := run.PlanSnapshots(sources, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := run.Backup(context.Background(), r, run.BackupOptions{Sources: sources, Plan: plan})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func restoreFile(t *testing.T, r *repo.Repository, s *repo.Snapshot, orig string) ([]byte, outcome.Outcome) {
	t.Helper()
	dst := t.TempDir()
	rr, err := restore.Run(context.Background(), r, s.Tree, restore.Options{Target: dst})
	if err != nil || rr.Errors > 0 {
		t.Fatalf("restore: %v %+v", err, rr)
	}
	data, err := os.ReadFile(filepath.Join(dst, orig))
	if err != nil {
		t.Fatalf("restored file not at its original path: %v", err)
	}
	// the outcome stored with the file
	dir, name := filepath.Split(orig)
	tree := treeAt(t, r, s.Tree, dir)
	return data, tree.Find(name).Outcome
}

func treeAt(t *testing.T, r *repo.Repository, root repo.ID, dir string) *repo.Tree {
	t.Helper()
	tree, err := r.LoadTree(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range strings.Split(strings.Trim(dir, "/"), "/") {
		if name == "" {
			continue
		}
		n := tree.Find(name)
		if n == nil {
			t.Fatalf("%s not in snapshot", dir)
		}
		if tree, err = r.LoadTree(context.Background(), n.Subtree); err != nil {
			t.Fatal(err)
		}
	}
	return tree
}

// From a btrfs snapshot, a file rewritten continuously restores as a state
// the writer produced, every time.
func TestBtrfsSnapshotIsPointInTime(t *testing.T) {
	mnt := loopfs.Btrfs(t, 256)
	src := filepath.Join(mnt, "srv", "app")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(src, "page.db")
	startPageWriterN(t, file, 1)
	r := newRepo(t)
	for i := range 20 {
		res := backupOnce(t, r, snapshot.Required, src)
		s := res.Snapshot
		if s.Sources[0].Provider != "btrfs" || s.Consistency != "crash" {
			t.Fatalf("run %d: read via %+v", i, s.Sources)
		}
		if s.Sources[0].FreezeMs <= 0 || s.Sources[0].FreezeMs > 2000 {
			t.Errorf("run %d: freeze window %.1f ms", i, s.Sources[0].FreezeMs)
		}
		data, oc := restoreFile(t, r, s, file)
		if err := checkPages(data); err != nil {
			t.Fatalf("run %d: restored file is not a state the writer produced: %v", i, err)
		}
		if oc != outcome.OKSnapshot {
			t.Fatalf("run %d: outcome %s, want ok-snapshot", i, oc)
		}
	}
	assertNoLeftovers(t, mnt)
}

// The same on XFS, through per-file reflink clones.
func TestReflinkCloneIsPointInTime(t *testing.T) {
	mnt := loopfs.XFS(t, 320)
	src := filepath.Join(mnt, "data")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(src, "pages.db")
	startPageWriter(t, file)
	r := newRepo(t)
	for i := range 20 {
		res := backupOnce(t, r, snapshot.Required, src)
		if p := res.Snapshot.Sources[0]; p.Provider != "reflink" || p.Consistency != "file" {
			t.Fatalf("run %d: read via %+v", i, res.Snapshot.Sources)
		}
		data, oc := restoreFile(t, r, res.Snapshot, file)
		if err := checkPages(data); err != nil {
			t.Fatalf("run %d: restored file is not a state the writer produced: %v", i, err)
		}
		if oc != outcome.OKSnapshot {
			t.Fatalf("run %d: outcome %s, want ok-snapshot", i, oc)
		}
	}
	assertNoLeftovers(t, mnt)
}

// Without a snapshot the same file is read live: it must never be stored
// as whole when it is torn, and the writing is seen. (A read classed ok is
// fine when the writer happened to pause for the whole read: then the copy
// is a real state, which checkPages proves. On a loaded machine that can
// happen many times over, so the backups go on until one is flagged.)
func TestLiveReadNeverSilentlyTorn(t *testing.T) {
	mnt := loopfs.Ext4(t, 64)
	file := filepath.Join(mnt, "pages.db")
	startPageWriter(t, file)
	r := newRepo(t)
	flagged := 0
	for i := 0; i < 100 && (i < 10 || flagged == 0); i++ {
		res := backupOnce(t, r, snapshot.Off, mnt)
		data, oc := restoreFile(t, r, res.Snapshot, file)
		if err := checkPages(data); err != nil && oc.Whole() {
			t.Fatalf("run %d: torn file stored as %s: %v", i, oc, err)
		}
		if !oc.Whole() {
			flagged++
			if !res.Snapshot.Partial || res.ExitCode() != 3 {
				t.Fatalf("run %d: file classed %s but snapshot not partial", i, oc)
			}
		}
	}
	if flagged == 0 {
		t.Fatal("a file rewritten all the time was never flagged in 100 backups")
	}
}

func TestRequiredOnTmpfsWritesNothing(t *testing.T) {
	mnt := loopfs.Tmpfs(t, 16)
	_, err := run.PlanSnapshots([]run.Source{{Path: mnt, Snapshot: snapshot.Required}}, "test", nil)
	if err == nil || !strings.Contains(err.Error(), "is on tmpfs: no snapshot provider fits") || !strings.Contains(err.Error(), "--snapshot on") {
		t.Fatalf("want a clear refusal, got %v", err)
	}
}

// Change detection survives snapshots: a second backup of an unchanged tree,
// each from a new btrfs snapshot, reads no file content.
func TestIncrementalAcrossBtrfsSnapshots(t *testing.T) {
	mnt := loopfs.Btrfs(t, 256)
	src := filepath.Join(mnt, "tree")
	for d := range 100 {
		dir := filepath.Join(src, strconv.Itoa(d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for f := range 100 {
			if err := os.WriteFile(filepath.Join(dir, strconv.Itoa(f)), []byte(fmt.Sprint(d, f, time.Now())), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	r := newRepo(t)
	first := backupOnce(t, r, snapshot.Required, src)
	if first.Snapshot.Stats.FilesRead != 10000 {
		t.Fatalf("first backup read %d files", first.Snapshot.Stats.FilesRead)
	}
	second := backupOnce(t, r, snapshot.Required, src)
	if st := second.Snapshot.Stats; st.BytesRead != 0 || st.FilesRead != 0 {
		t.Fatalf("second backup from a new snapshot read %d bytes of %d files", st.BytesRead, st.FilesRead)
	}
	assertNoLeftovers(t, mnt)
}

// Nested subvolumes are snapped too, and a restore shows original paths.
func TestNestedSubvolumesRestoreOriginalPaths(t *testing.T) {
	mnt := loopfs.Btrfs(t, 256)
	if out, err := exec.Command("btrfs", "subvolume", "create", filepath.Join(mnt, "vol")).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if out, err := exec.Command("btrfs", "subvolume", "create", filepath.Join(mnt, "vol", "nested")).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	deep := filepath.Join(mnt, "vol", "a", "b")
	os.MkdirAll(deep, 0o755)
	os.WriteFile(filepath.Join(deep, "deep.txt"), []byte("deep"), 0o644)
	os.WriteFile(filepath.Join(mnt, "vol", "nested", "inner.txt"), []byte("inner"), 0o644)
	r := newRepo(t)
	for _, src := range []string{filepath.Join(mnt, "vol"), deep} {
		res := backupOnce(t, r, snapshot.Required, src)
		if res.Snapshot.Sources[0].Provider != "btrfs" {
			t.Fatalf("%s: provider %s", src, res.Snapshot.Sources[0].Provider)
		}
		data, oc := restoreFile(t, r, res.Snapshot, filepath.Join(deep, "deep.txt"))
		if string(data) != "deep" || oc != outcome.OKSnapshot {
			t.Fatalf("%s: deep.txt = %q (%s)", src, data, oc)
		}
		if src == filepath.Join(mnt, "vol") {
			data, _ := restoreFile(t, r, res.Snapshot, filepath.Join(mnt, "vol", "nested", "inner.txt"))
			if string(data) != "inner" {
				t.Fatalf("nested subvolume content %q", data)
			}
			joined := strings.Join(res.Notes, " ")
			if !strings.Contains(joined, "atomic") {
				t.Errorf("no note that nested subvolumes are not atomic: %q", res.Notes)
			}
		}
	}
	assertNoLeftovers(t, mnt)
}

func assertNoLeftovers(t *testing.T, mnt string) {
	t.Helper()
	los, err := snapshot.FindLeftovers([]string{mnt})
	if err != nil {
		t.Fatal(err)
	}
	if len(los) > 0 {
		t.Fatalf("leftovers after the runs: %+v", los)
	}
}
