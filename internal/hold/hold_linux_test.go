package hold

import (
	"context"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/testutil/ci"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/detached"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/loopfs"
)

// The test binary doubles as a writer (HOLD_TEST_WRITER=file: rewrites a
// counter at the start of file forever) and as a stillpoint that holds
// (HOLD_TEST_HOLDER=mount point: starts a hold and never ends it).
func TestMain(m *testing.M) {
	if path := os.Getenv("HOLD_TEST_WRITER"); path != "" {
		counterWriter(path)
	}
	if mnt := os.Getenv("HOLD_TEST_HOLDER"); mnt != "" {
		h := Start(context.Background(), []string{mnt}, Options{Enabled: true, Timeout: 5 * time.Second})
		os.Stdout.WriteString("never here: the test sleeps inside the hold\n")
		h.Release()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func counterWriter(path string) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		os.Exit(2)
	}
	var b [8]byte
	for n := uint64(1); ; n++ {
		binary.LittleEndian.PutUint64(b[:], n)
		if _, err := f.WriteAt(b[:], 0); err != nil {
			os.Exit(3)
		}
	}
}

func counter(t *testing.T, path string) uint64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 8 {
		t.Fatalf("reading the writer's counter: %v (%d bytes)", err, len(b))
	}
	return binary.LittleEndian.Uint64(b)
}

// startDetached starts a counter writer that is not a descendant of the
// test (its shell exits at once), as an application would be.
func startDetached(t *testing.T, path string) int {
	t.Helper()
	pid := detached.Start(t, []string{"HOLD_TEST_WRITER=" + path}, os.Args[0], "-test.run=^$")
	waitRunning(t, pid, path, time.Now().Add(5*time.Second))
	return pid
}

// waitRunning waits until pid is not stopped and its counter moves.
func waitRunning(t *testing.T, pid int, path string, deadline time.Time) {
	t.Helper()
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && len(b) >= 8 {
			c := binary.LittleEndian.Uint64(b)
			time.Sleep(5 * time.Millisecond)
			if st, err := readStat("/proc/"+strconv.Itoa(pid)+"/stat", pid); err == nil && st.state != 'T' && counter(t, path) > c {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("writer %d is not running by the deadline", pid)
}

func stopped(pid int) bool { return allThreadsStopped(pid) }

func heldPids(r *Report) []int {
	var out []int
	for _, p := range r.Held {
		out = append(out, p.Pid)
	}
	return out
}

func TestParseStat(t *testing.T) {
	line := "4242 (a (weird) name) S 1 4242 4242 34817 4242 4194560 0 0 0 0 1 2 0 0 20 0 3 0 987654 0 0\n"
	p, err := parseStat([]byte(line), 4242)
	if err != nil {
		t.Fatal(err)
	}
	want := procStat{pid: 4242, comm: "a (weird) name", state: 'S', ppid: 1, pgrp: 4242, tty: 34817, tpgid: 4242, flags: 4194560, start: 987654}
	if p != want {
		t.Fatalf("got %+v\nwant %+v", p, want)
	}
	if !p.foregroundOfTerminal() || p.kernelThread() {
		t.Fatalf("foreground %v kernel thread %v", p.foregroundOfTerminal(), p.kernelThread())
	}
	if _, err := parseStat([]byte("12 (x) S 1"), 12); err == nil {
		t.Fatal("a short stat line was accepted")
	}
}

// A writer on the filesystem is stopped for the hold and runs again after
// it; a writer elsewhere, and a process stillpoint started, are not held.
func TestHoldStopsWritersOfTheFilesystemOnly(t *testing.T) {
	ci.NeedRoot(t)
	mnt := loopfs.Btrfs(t, 128)
	other := loopfs.Tmpfs(t, 8)
	onFS := filepath.Join(mnt, "app.db")
	writer := startDetached(t, onFS)
	elsewhere := startDetached(t, filepath.Join(other, "x"))

	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), "HOLD_TEST_WRITER="+filepath.Join(mnt, "ours"))
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })
	waitRunning(t, child.Process.Pid, filepath.Join(mnt, "ours"), time.Now().Add(5*time.Second))

	h := Start(context.Background(), []string{mnt}, Options{Enabled: true})
	released := false
	defer func() {
		if !released {
			h.Release()
		}
	}()
	if !stopped(writer) {
		t.Fatal("the writer of the filesystem is not stopped during the hold")
	}
	c := counter(t, onFS)
	time.Sleep(50 * time.Millisecond)
	if counter(t, onFS) != c {
		t.Fatal("the held writer wrote during the hold")
	}
	if stopped(elsewhere) {
		t.Fatal("a writer of another filesystem was held")
	}
	if stopped(child.Process.Pid) {
		t.Fatal("a process stillpoint started was held")
	}
	r := h.Release()
	released = true
	waitRunning(t, writer, onFS, time.Now().Add(time.Second))
	if got := heldPids(r); !slices.Equal(got, []int{writer}) {
		t.Fatalf("held %v, want [%d]", got, writer)
	}
	if r.HeldMs <= 0 || r.HeldMs > 1000 {
		t.Fatalf("report %+v", r)
	}
	// our own child went on writing on the filesystem: no point in time
	if r.PointInTime() || !strings.Contains(r.Message, "wrote during the hold") || !strings.Contains(r.Message, strconv.Itoa(child.Process.Pid)) {
		t.Fatalf("a write during the hold went unreported: %+v", r)
	}
	i := slices.IndexFunc(r.Skipped, func(p Process) bool { return p.Pid == child.Process.Pid })
	if i < 0 || !strings.Contains(r.Skipped[i].Reason, "started by stillpoint") {
		t.Fatalf("our own child is not reported as passed over: %+v", r.Skipped)
	}
}

func TestHoldExclude(t *testing.T) {
	ci.NeedRoot(t)
	mnt := loopfs.Btrfs(t, 128)
	writer := startDetached(t, filepath.Join(mnt, "app.db"))
	h := Start(context.Background(), []string{mnt}, Options{Enabled: true, Exclude: []string{filepath.Base(os.Args[0])}})
	isStopped := stopped(writer)
	r := h.Release()
	if isStopped || len(r.Held) > 0 {
		t.Fatalf("an excluded writer was held: %+v", r)
	}
	if len(r.Skipped) != 1 || r.Skipped[0].Pid != writer || !strings.HasPrefix(r.Skipped[0].Reason, "hold-exclude") {
		t.Fatalf("skipped %+v", r.Skipped)
	}
}

// kill -9 of the process that holds: the watchdog resumes the writer
// within a second.
func TestWatchdogResumesWhenStillpointIsKilled(t *testing.T) {
	ci.NeedRoot(t)
	mnt := loopfs.Btrfs(t, 128)
	file := filepath.Join(mnt, "app.db")
	writer := startDetached(t, file)
	holder := exec.Command(os.Args[0], "-test.run=^$")
	holder.Env = append(os.Environ(), "HOLD_TEST_HOLDER="+mnt, testSleepEnv+"=1h")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for !stopped(writer) {
		if time.Now().After(deadline) {
			t.Fatal("the holder never stopped the writer")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if !stopped(writer) {
		t.Fatal("the writer was resumed although the holder still holds")
	}
	killed := time.Now()
	holder.Process.Kill()
	holder.Wait()
	waitRunning(t, writer, file, killed.Add(time.Second))
	t.Logf("running again %v after kill -9", time.Since(killed))
}

// Past its timeout the watchdog resumes the writers even though
// stillpoint lives, and the report says the hold is no point in time.
func TestHoldTimeout(t *testing.T) {
	ci.NeedRoot(t)
	mnt := loopfs.Btrfs(t, 128)
	file := filepath.Join(mnt, "app.db")
	writer := startDetached(t, file)
	t.Setenv(testSleepEnv, "700ms")
	h := Start(context.Background(), []string{mnt}, Options{Enabled: true, Timeout: 200 * time.Millisecond})
	waitRunning(t, writer, file, time.Now().Add(time.Second)) // the watchdog resumed it
	r := h.Release()
	if !r.TimedOut || r.PointInTime() || !strings.Contains(r.Message, "past its timeout") {
		t.Fatalf("report %+v", r)
	}
}

func TestNoHoldWhenDisabledOrNothingToHold(t *testing.T) {
	if h := Start(context.Background(), []string{"/"}, Options{}); h != nil {
		t.Fatal("a disabled hold started")
	}
	if h := Start(context.Background(), nil, Options{Enabled: true}); h != nil {
		t.Fatal("a hold without filesystems started")
	}
	var h *Hold
	if r := h.Release(); r != nil || r.PointInTime() {
		t.Fatal("a nil hold reported something")
	}
	h = Start(context.Background(), []string{"/definitely/not/a/mount"}, Options{Enabled: true})
	if r := h.Release(); r.PointInTime() || !strings.Contains(r.Message, "not a mount point") {
		t.Fatalf("report %+v", r)
	}
}

// A process the scans cannot see (it has nothing open on the filesystem
// when they look) but that writes during the hold makes the snapshot
// crash-consistent; a hold during which nobody wrote is a point in time.
func TestWriteDuringTheHoldIsSeen(t *testing.T) {
	ci.NeedRoot(t)
	mnt := loopfs.Btrfs(t, 128)
	h := Prepare([]string{mnt}, Options{Enabled: true})
	h.Stop(context.Background())
	out, err := exec.Command("sh", "-c", `echo late > "$0/late"`, mnt).CombinedOutput()
	if err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if r := h.Release(); r.PointInTime() || !strings.Contains(r.Message, "wrote during the hold") {
		t.Fatalf("report %+v", r)
	}
	// a write elsewhere on the filesystem than the sources does not count
	src := filepath.Join(mnt, "src")
	os.Mkdir(src, 0o755)
	h = Start(context.Background(), []string{mnt}, Options{Enabled: true, Within: []string{src}})
	if out, err := exec.Command("sh", "-c", `echo other > "$0/other"`, mnt).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	os.WriteFile(filepath.Join(src, "ours"), []byte("stillpoint's own write"), 0o600)
	if r := h.Release(); !r.PointInTime() {
		t.Fatalf("a quiet hold is no point in time: %+v", r)
	}
}

// Inside the hold only processes the full scan before it did not see are
// looked at: a writer started after that scan is found, one the scan saw
// (and Stop held) is not looked at again, and so the writers do not wait
// for a walk over every process's files.
func TestScansInsideTheHoldLookOnlyAtNewProcesses(t *testing.T) {
	ci.NeedRoot(t)
	mnt := loopfs.Btrfs(t, 128)
	h := Prepare([]string{mnt}, Options{Enabled: true})
	defer h.Release()
	old := startDetached(t, filepath.Join(mnt, "old"))
	found, err := h.scan(true)
	if err != nil || len(found) != 1 || found[0].pid != old {
		t.Fatalf("full scan found %v (%v), want [%d]", found, err, old)
	}
	if again, err := h.scanNew(); err != nil || len(again) != 0 {
		t.Fatalf("scanNew looked at a process the full scan saw: %v (%v)", again, err)
	}
	late := startDetached(t, filepath.Join(mnt, "late"))
	if again, err := h.scanNew(); err != nil || len(again) != 1 || again[0].pid != late {
		t.Fatalf("scanNew found %v (%v), want [%d]", again, err, late)
	}
	h.Stop(context.Background())
	if !stopped(old) || !stopped(late) {
		t.Fatal("Stop did not hold both writers")
	}
	if r := h.Release(); !r.PointInTime() || len(r.Held) != 2 {
		t.Fatalf("report %+v", r)
	}
}
