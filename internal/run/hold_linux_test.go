package run_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/hold"
	"github.com/stillpoint-backup/stillpoint/internal/livefile"
	"github.com/stillpoint-backup/stillpoint/internal/quiesce"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/run"
	"github.com/stillpoint-backup/stillpoint/internal/snapshot"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/detached"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/loopfs"
)

// seqPages is the file of the reproduction: 4,096 pages of 4 KiB
// rewritten in place, page after page, as fast as a process can.
const seqPages = 4096

// startDetachedPageWriter starts the page writer as an application would
// run: not a descendant of the backup (whose own children are never held).
func startDetachedPageWriter(t *testing.T, path string, pages int) int {
	t.Helper()
	pid := detached.Start(t, []string{"STILLPOINT_TEST_PAGE_WRITER=" + path, "STILLPOINT_TEST_PAGES=" + strconv.Itoa(pages)},
		os.Args[0], "-test.run=^$")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if fi, err := os.Stat(path); err == nil && fi.Size() == int64(pages*pageSize) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the page writer did not write its first pass")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // into its second pass and beyond
	return pid
}

// dirtyPagePressure keeps one core busy and the kernel writing back dirty
// pages all the time (a dd with fsync in a loop on dir), as on a busy
// server, until the test ends.
func dirtyPagePressure(t *testing.T, dir string) {
	t.Helper()
	busy := exec.Command("yes")
	if err := busy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Process.Kill(); busy.Wait() })
	// detached like the writer: another application on the filesystem,
	// which the hold stops too (in its own process group, to end it whole)
	loop := `while :; do dd if=/dev/zero of="$1/pressure" bs=1M count=64 conv=fsync 2>/dev/null; done`
	out, err := exec.Command("sh", "-c", `setsid sh -c "$0" sh "$1" >/dev/null 2>&1 </dev/null & echo $!`, loop, dir).Output()
	if err != nil {
		t.Fatal(err)
	}
	pgid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("pressure pid %q", out)
	}
	t.Cleanup(func() { syscall.Kill(-pgid, syscall.SIGCONT); syscall.Kill(-pgid, syscall.SIGKILL) })
}

func readFromSet(t *testing.T, set *snapshot.Set, path string) []byte {
	t.Helper()
	f, err := set.View().Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var data []byte
	buf := make([]byte, 1<<20)
	for {
		n, err := f.Read(buf)
		data = append(data, buf[:n]...)
		if err != nil {
			break
		}
	}
	return data
}

// The reproduction: under dirty-page pressure, 100 btrfs snapshots
// with the writer held are each a state the file had (a cut), read
// straight from the snapshot.
func TestHeldBtrfsSnapshotIsAPointInTimeUnderLoad(t *testing.T) {
	// deleted snapshots are cleaned in the background, slowly under the
	// pressure: room for all of them (the image is sparse)
	mnt := loopfs.Btrfs(t, 4096)
	// a subvolume of its own, so the snapshots do not pin the pressure file
	src := filepath.Join(mnt, "app")
	if out, err := exec.Command("btrfs", "subvolume", "create", src).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	file := filepath.Join(src, "pages.db")
	writer := startDetachedPageWriter(t, file, seqPages)
	dirtyPagePressure(t, mnt)
	const rounds = 100
	var stall []float64
	for i := range rounds {
		plan, err := run.PlanSnapshots([]run.Source{{Path: src, Snapshot: snapshot.Required}}, "pit", nil)
		if err != nil {
			t.Fatal(err)
		}
		plan.RemoveLeftovers()
		set, r, err := run.CreateHeld(context.Background(), plan, nil, hold.Options{Enabled: true})
		if err != nil {
			t.Fatal(err)
		}
		if !r.PointInTime() || !slices.ContainsFunc(r.Held, func(p hold.Process) bool { return p.Pid == writer }) {
			set.Release()
			t.Fatalf("round %d: the writer %d was not held: %+v", i, writer, r)
		}
		stall = append(stall, r.HeldMs)
		data := readFromSet(t, set, file)
		if err := set.Release(); err != nil {
			t.Fatal(err)
		}
		if err := checkPages(data); err != nil {
			t.Fatalf("round %d: the held snapshot is no state the file had: %v", i, err)
		}
	}
	slices.Sort(stall)
	t.Logf("%d held snapshots, each a cut; writer stalled median %.1f ms, p99 %.1f ms, max %.1f ms",
		rounds, stall[rounds/2], stall[rounds*99/100], stall[rounds-1])
	assertNoLeftovers(t, mnt)
}

func backupWithHold(t *testing.T, r *repo.Repository, o run.BackupOptions) *run.BackupResult {
	t.Helper()
	plan, err := run.PlanSnapshots(o.Sources, "hold", nil)
	if err != nil {
		t.Fatal(err)
	}
	o.Plan = plan
	res, err := run.Backup(context.Background(), r, o)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func btrfsSource(t *testing.T, path string) run.Source {
	lf := livefile.DefaultConfig()
	lf.StagingDir = t.TempDir()
	return run.Source{Path: path, Snapshot: snapshot.Required, OpenFiles: lf}
}

// Without a hold a btrfs snapshot is recorded crash-consistent; with it,
// volume, with the held writer named in the manifest, and the restored
// file is a cut.
func TestManifestSaysCrashWithoutHoldAndVolumeWithIt(t *testing.T) {
	mnt := loopfs.Btrfs(t, 384)
	src := filepath.Join(mnt, "data")
	os.MkdirAll(src, 0o755)
	file := filepath.Join(src, "pages.db")
	writer := startDetachedPageWriter(t, file, 256)
	r := newRepo(t)
	for _, held := range []bool{false, true} {
		res := backupWithHold(t, r, run.BackupOptions{Sources: []run.Source{btrfsSource(t, src)}, Hold: hold.Options{Enabled: held}, Force: true})
		s := res.Snapshot
		want := "crash"
		if held {
			want = "volume"
		}
		if s.Consistency != want || s.Sources[0].Consistency != want {
			t.Fatalf("hold %v: consistency %s (source %s), want %s", held, s.Consistency, s.Sources[0].Consistency, want)
		}
		if !held {
			if s.Quiesce != nil && s.Quiesce.Hold != nil {
				t.Fatalf("a hold recorded although it was off: %+v", s.Quiesce.Hold)
			}
			continue
		}
		h := s.Quiesce.Hold
		if h == nil || len(h.Held) != 1 || h.Held[0].Pid != writer || h.HeldMs <= 0 {
			t.Fatalf("hold record %+v, want writer %d held", h, writer)
		}
		data, _ := restoreFile(t, r, s, file)
		if err := checkPages(data); err != nil {
			t.Fatalf("restored from a held snapshot: %v", err)
		}
	}
}

// A process that starts writing after the run's open-file scan (here: one
// a before-snapshot hook launches) is held too; the repository and the
// staging directory on the same filesystem, and a command writer, do not
// make the run wait on what it holds.
func TestHoldCatchesLateWritersAndNeverStallsTheRun(t *testing.T) {
	mnt := loopfs.Btrfs(t, 384)
	src := filepath.Join(mnt, "data")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "a"), []byte("a"), 0o644)
	pidFile := filepath.Join(t.TempDir(), "late.pid")
	late := `"$0" -test.run='^$' >/dev/null 2>&1 </dev/null & echo $! > "$1"`
	hooks := quiesce.Hooks{quiesce.BeforeSnapshot: {{Argv: []string{"sh", "-c", late, os.Args[0], pidFile}, Essential: true}}}
	t.Setenv("STILLPOINT_TEST_PAGE_WRITER", filepath.Join(src, "late.db"))
	t.Setenv("STILLPOINT_TEST_PAGES", "16")
	t.Cleanup(func() {
		if b, err := os.ReadFile(pidFile); err == nil {
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			syscall.Kill(pid, syscall.SIGCONT)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	// the repository lives on the filesystem being snapped
	r, err := repo.Init(context.Background(), backend.NewLocal(filepath.Join(mnt, "repo")), repo.Credential{Password: "pw"}, repo.DefaultConfig)
	if err != nil {
		t.Fatal(err)
	}
	source := btrfsSource(t, src)
	source.OpenFiles.StagingDir = filepath.Join(mnt, "staging")
	freezeLog := filepath.Join(mnt, "writer.log")
	writers := []quiesce.Writer{quiesce.NewCommandWriter("echo freeze >> "+freezeLog+"; sleep 0.05", "echo thaw >> "+freezeLog, 10*time.Second)}
	done := make(chan *run.BackupResult, 1)
	go func() {
		done <- backupWithHold(t, r, run.BackupOptions{Sources: []run.Source{source}, Hooks: hooks, Writers: writers,
			Hold: hold.Options{Enabled: true}, Excludes: []string{"late.db"}})
	}()
	var res *run.BackupResult
	select {
	case res = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("the backup did not finish: it waits on something it holds")
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal("the hook did not start the late writer:", err)
	}
	lateWriter, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	h := res.Snapshot.Quiesce.Hold
	if h == nil || !slices.ContainsFunc(h.Held, func(p repo.ProcessInfo) bool { return p.Pid == lateWriter }) {
		t.Fatalf("the writer started after the open-file scan (pid %d) was not held: %+v", lateWriter, h)
	}
	if slices.ContainsFunc(h.Held, func(p repo.ProcessInfo) bool { return p.Pid == os.Getpid() }) {
		t.Fatal("stillpoint held itself")
	}
	if res.Snapshot.Consistency != "volume" {
		t.Fatalf("consistency %s, hold %+v", res.Snapshot.Consistency, h)
	}
	if log, _ := os.ReadFile(freezeLog); string(log) != "freeze\nthaw\n" {
		t.Fatalf("writer log %q", log)
	}
	if ok, err := r.Check(context.Background(), repo.CheckOptions{}); err != nil || !ok.OK() {
		t.Fatalf("check after the run: %v %+v", err, ok)
	}
}
