package livefile

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/view"
)

func writeFile(t *testing.T, path string, size int) {
	t.Helper()
	if err := os.WriteFile(path, bytes.Repeat([]byte("x"), size), 0o644); err != nil {
		t.Fatal(err)
	}
}

func statKey(t *testing.T, path string) (uint64, uint64) {
	t.Helper()
	st, err := (&view.Live{}).Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Dev, st.Ino
}

func scan(t *testing.T) *OpenFiles {
	t.Helper()
	of, err := ScanOpenForWrite()
	if err != nil {
		t.Fatal(err)
	}
	return of
}

func TestScanOpenForWriteFindsWriterNotReader(t *testing.T) {
	dir := t.TempDir()
	written, readOnly, ours := filepath.Join(dir, "written"), filepath.Join(dir, "read-only"), filepath.Join(dir, "ours")
	writeFile(t, written, 10)
	writeFile(t, readOnly, 10)
	writer := startHelper(t, "hold-write", written)
	startHelper(t, "hold-read", readOnly)
	// our own descriptors never count: the archiver's files are not sources
	f, err := os.OpenFile(ours, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	of := scan(t)
	hs := of.Holders(statKey(t, written))
	if len(hs) != 1 || hs[0].Pid != writer.Pid || hs[0].Comm != helperComm("hold-write") {
		t.Fatalf("holders of %s = %+v, want pid %d comm %q", written, hs, writer.Pid, helperComm("hold-write"))
	}
	if hs := of.Holders(statKey(t, readOnly)); hs != nil {
		t.Errorf("file open read-only reported as open for writing by %+v", hs)
	}
	if hs := of.Holders(statKey(t, ours)); hs != nil {
		t.Errorf("our own open file reported as open for writing by %+v", hs)
	}
	if os.Getuid() == 0 && of.Note() != "" {
		t.Errorf("scan as root has a note: %s", of.Note())
	}
}

func TestFdinfoFlags(t *testing.T) {
	for _, tc := range []struct {
		in    string
		flags int
		ok    bool
	}{
		{"pos:\t0\nflags:\t0100002\nmnt_id:\t24\n", 0o100002, true},
		{"pos:\t0\nflags:\t02100001\n", 0o2100001, true},
		{"pos:\t0\n", 0, false},
		{"flags:\tzz\n", 0, false},
	} {
		got, ok := fdinfoFlags([]byte(tc.in))
		if got != tc.flags || ok != tc.ok {
			t.Errorf("fdinfoFlags(%q) = %o, %v; want %o, %v", tc.in, got, ok, tc.flags, tc.ok)
		}
	}
}

func TestLockedByFindsEachLockKind(t *testing.T) {
	for _, tc := range []struct {
		role      string
		kind      LockKind
		exclusive bool
	}{
		{"posix-lock", LockPOSIX, true},
		{"ofd-lock", LockOFD, true},
		{"flock-ex", LockFlock, true},
		{"posix-rdlock", LockPOSIX, false},
	} {
		t.Run(tc.role, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "locked")
			writeFile(t, path, 100)
			c := startHelper(t, tc.role, path)
			st, err := (&view.Live{}).Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			h, err := LockedBy(path, st)
			if err != nil {
				t.Fatal(err)
			}
			if h == nil {
				t.Fatalf("lock of %s not detected", tc.role)
			}
			want := Holder{Pid: c.Pid, Comm: helperComm(tc.role), Lock: tc.kind, Exclusive: tc.exclusive}
			if *h != want {
				t.Fatalf("LockedBy = %+v, want %+v", *h, want)
			}
		})
	}
	t.Run("unlocked", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "free")
		writeFile(t, path, 100)
		startHelper(t, "hold-write", path) // open, but not locked
		h, err := LockedBy(path, nil)
		if err != nil || h != nil {
			t.Fatalf("LockedBy(unlocked) = %v, %v; want nil, nil", h, err)
		}
	})
	t.Run("replaced", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "f")
		writeFile(t, path, 1)
		st, _ := (&view.Live{}).Lstat(path)
		os.Rename(path, path+".old") // keeps the inode busy so the new file gets another
		writeFile(t, path, 1)
		if _, err := LockedBy(path, st); err == nil || !strings.Contains(err.Error(), path) {
			t.Fatalf("LockedBy on a replaced file: %v, want an error naming the path", err)
		}
	})
}

// sleepRecorder sleeps for real (the helpers need the time to act) and
// records the waits.
type sleepRecorder struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (s *sleepRecorder) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.mu.Unlock()
	return realClock{}.Sleep(ctx, d)
}

// consumeUntilChanged reads the file whole, then waits (up to 20 s) until
// the file on disk differs from st, so a read under a running writer is
// certain to be caught changing, however the scheduler runs us.
func consumeUntilChanged(t *testing.T, path string, f view.File, st *view.Stat) error {
	if _, err := io.Copy(io.Discard, f); err != nil {
		return err
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		now, err := (&view.Live{}).Lstat(path)
		if err != nil {
			return err
		}
		if now.Size != st.Size || !now.Mtime.Equal(st.Mtime) {
			return nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Errorf("the writer did not change %s within 20 s", path)
	return nil
}

func TestReadStrategyStoresChangedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "growing")
	writeFile(t, path, 64<<10)
	startHelper(t, "writer", path)
	r, err := NewReader(Config{Strategy: StrategyRead, Open: scan(t)})
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	res := r.Read(context.Background(), &view.Live{}, path, func(f view.File, st *view.Stat) error {
		calls++
		return consumeUntilChanged(t, path, f, st)
	})
	if res.Outcome != outcome.Changed || !res.Stored || res.Attempts != 1 || calls != 1 || res.Err != nil {
		t.Fatalf("read under a writer: %+v (calls %d), want changed, stored, 1 attempt", res, calls)
	}
	if res.Holder == nil || res.Holder.Comm != helperComm("writer") {
		t.Errorf("holder = %v, want the writer", res.Holder)
	}
	t.Logf("detail: %s", res.Detail)
}

func TestRetryStrategyGetsWholeFileOnceWriterStops(t *testing.T) {
	path := filepath.Join(t.TempDir(), "busy")
	writeFile(t, path, 64<<10)
	w := startHelper(t, "writer", path)
	clock := &sleepRecorder{}
	r, err := NewReader(Config{Strategy: StrategyRetry, Retries: 5, Open: scan(t), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	res := r.Read(context.Background(), &view.Live{}, path, func(f view.File, st *view.Stat) error {
		calls++
		if calls == 1 {
			// first read is caught changing; then the writer stops (and
			// keeps the file open, idle)
			err := consumeUntilChanged(t, path, f, st)
			w.send(t, "stop")
			w.expect(t, "stopped")
			return err
		}
		_, err := io.Copy(io.Discard, f)
		return err
	})
	if res.Outcome != outcome.OK || !res.Stored || res.Attempts != 2 || calls != 2 {
		t.Fatalf("retry after the writer stopped: %+v (calls %d), want ok, stored, 2 attempts", res, calls)
	}
	if len(clock.waits) != 1 || clock.waits[0] != DefaultBackoff {
		t.Errorf("waits %v, want one of %v", clock.waits, DefaultBackoff)
	}
}

func TestRetryStrategyFailsLockedFileWithHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "locked")
	writeFile(t, path, 100)
	c := startHelper(t, "posix-lock", path)
	clock := &sleepRecorder{}
	r, err := NewReader(Config{Strategy: StrategyRetry, Retries: 3, Backoff: time.Millisecond, Open: scan(t), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	res := r.Read(context.Background(), &view.Live{}, path, func(view.File, *view.Stat) error { calls++; return nil })
	if res.Outcome != outcome.Failed || res.Reason != outcome.ReasonLocked || res.Stored || res.Attempts != 4 || calls != 0 {
		t.Fatalf("locked file under retry: %+v (calls %d), want failed/locked, 4 attempts, never read", res, calls)
	}
	if res.Holder == nil || res.Holder.Pid != c.Pid || res.Holder.Comm != helperComm("posix-lock") {
		t.Fatalf("holder %v, want pid %d", res.Holder, c.Pid)
	}
	if res.Err == nil || !strings.Contains(res.Err.Error(), path) || !strings.Contains(res.Err.Error(), pidString(c.Pid)) {
		t.Errorf("error %v should name the path and the holder", res.Err)
	}
	want := []time.Duration{time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond}
	if len(clock.waits) != len(want) {
		t.Fatalf("waits %v, want %v", clock.waits, want)
	}
	for i := range want {
		if clock.waits[i] != want[i] {
			t.Fatalf("waits %v, want %v", clock.waits, want)
		}
	}
}

func TestSkipStrategyDefersOpenFileThenSecondPass(t *testing.T) {
	dir := t.TempDir()
	open, free := filepath.Join(dir, "open"), filepath.Join(dir, "free")
	writeFile(t, open, 100)
	writeFile(t, free, 100)
	c := startHelper(t, "hold-write", open)
	r, err := NewReader(Config{Strategy: StrategySkip, Open: scan(t), SecondPassRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	consume := func(f view.File, st *view.Stat) error { calls++; _, err := io.Copy(io.Discard, f); return err }
	res := r.Read(context.Background(), &view.Live{}, open, consume)
	if res.Outcome != outcome.SkippedOpen || res.Reason != outcome.ReasonOpen || !res.Deferred || res.Stored || res.Attempts != 1 || calls != 0 {
		t.Fatalf("skip of an open file: %+v (calls %d), want skipped-open, deferred, not read", res, calls)
	}
	if res.Holder == nil || res.Holder.Pid != c.Pid {
		t.Fatalf("holder %v, want pid %d", res.Holder, c.Pid)
	}
	if res := r.Read(context.Background(), &view.Live{}, free, consume); res.Outcome != outcome.OK || !res.Stored || calls != 1 {
		t.Fatalf("skip of a free file: %+v, want ok", res)
	}

	// the writer is gone at the end of the run: the second pass reads it
	c.stop()
	second := r.SecondPass(scan(t))
	res = second.Read(context.Background(), &view.Live{}, open, consume)
	if res.Outcome != outcome.OK || !res.Stored || res.Deferred || res.Attempts != 1 || calls != 2 {
		t.Fatalf("second pass: %+v (calls %d), want ok in 1 attempt", res, calls)
	}
}

func TestSkipSecondPassKeepsLockedFileSkipped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "locked")
	writeFile(t, path, 100)
	startHelper(t, "flock-ex", path)
	r, err := NewReader(Config{Strategy: StrategySkip, SecondPassRetries: 1, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	consume := func(f view.File, st *view.Stat) error { t.Error("a locked file was read"); return nil }
	res := r.Read(context.Background(), &view.Live{}, path, consume)
	if res.Outcome != outcome.SkippedOpen || res.Reason != outcome.ReasonLocked || !res.Deferred {
		t.Fatalf("first pass: %+v, want skipped-open/locked, deferred", res)
	}
	res = r.SecondPass(nil).Read(context.Background(), &view.Live{}, path, consume)
	if res.Outcome != outcome.SkippedOpen || res.Reason != outcome.ReasonLocked || res.Deferred || res.Stored || res.Attempts != 2 {
		t.Fatalf("second pass: %+v, want skipped-open/locked after 2 attempts, not deferred again", res)
	}
}

func TestStageStrategyReadsCopyOutsideSources(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	staging := filepath.Join(t.TempDir(), "staging")
	path := filepath.Join(src, "deep", "dir", "file")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	content := bytes.Repeat([]byte("stage me "), 10000)
	if err := os.WriteFile(path, content, 0o640); err != nil {
		t.Fatal(err)
	}
	// written long ago: a file open for writing and modified within
	// timestampSlack would (rightly) need a second copy
	longAgo := time.Now().Add(-time.Hour)
	os.Chtimes(path, longAgo, longAgo)
	if err := CheckStagingDir(staging, []string{src}); err != nil {
		t.Fatal(err)
	}
	startHelper(t, "hold-write", path)
	r, err := NewReader(Config{Strategy: StrategyStage, Retries: 2, StagingDir: staging, Open: scan(t)})
	if err != nil {
		t.Fatal(err)
	}
	orig, _ := (&view.Live{}).Lstat(path)
	var stagedName string
	res := r.Read(context.Background(), &view.Live{}, path, func(f view.File, st *view.Stat) error {
		stagedName = f.(interface{ Name() string }).Name()
		if st.Ino != orig.Ino || st.Mode != orig.Mode || st.Size != orig.Size {
			t.Errorf("attempt got metadata %+v, want the original's %+v", st, orig)
		}
		if fst, _ := f.Stat(); fst.Ino != orig.Ino {
			t.Errorf("staged file's Stat says inode %d, want the original's %d", fst.Ino, orig.Ino)
		}
		got, err := io.ReadAll(f)
		if !bytes.Equal(got, content) {
			t.Errorf("staged copy has %d bytes, want the %d of the original", len(got), len(content))
		}
		return err
	})
	if res.Outcome != outcome.OK || !res.Stored || res.Attempts != 1 {
		t.Fatalf("stage: %+v, want ok in 1 attempt", res)
	}
	if !within(stagedName, staging) || within(stagedName, src) {
		t.Fatalf("staged copy %s is not in the staging directory %s", stagedName, staging)
	}
	if !strings.HasSuffix(stagedName, filepath.Join("files", path)) {
		t.Errorf("staged copy %s does not keep the path structure of %s", stagedName, path)
	}
	if _, err := os.Stat(stagedName); !os.IsNotExist(err) {
		t.Errorf("staged copy still there after its read: %v", err)
	}
	entries, _ := os.ReadDir(staging)
	if len(entries) != 1 {
		t.Fatalf("staging dir holds %d entries, want the reader's own directory", len(entries))
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(staging); len(entries) != 0 {
		t.Fatalf("staging dir not cleaned at Close: %v", entries)
	}
}

func TestStageStrategyFlagsChangingCopy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "busy")
	writeFile(t, path, 64<<10)
	startHelper(t, "writer", path)
	r, err := NewReader(Config{Strategy: StrategyStage, Retries: 1, Backoff: time.Millisecond, StagingDir: t.TempDir(), Open: scan(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// a view whose reads are slow enough that the writer (every ms) always
	// gets in while the copy is made
	v := slowView{&view.Live{}}
	calls := 0
	res := r.Read(context.Background(), v, path, func(f view.File, st *view.Stat) error {
		calls++
		_, err := io.Copy(io.Discard, f)
		return err
	})
	if res.Outcome != outcome.Changed || !res.Stored || res.Attempts != 2 || calls != 1 {
		t.Fatalf("stage under a writer: %+v (calls %d), want changed, stored, 2 copies, 1 store", res, calls)
	}
}

type slowView struct{ *view.Live }

func (v slowView) Open(p string) (view.File, error) {
	f, err := v.Live.Open(p)
	if err != nil {
		return nil, err
	}
	return slowFile{f}, nil
}

type slowFile struct{ view.File }

func (f slowFile) Read(p []byte) (int, error) {
	time.Sleep(5 * time.Millisecond)
	return f.File.Read(p[:min(len(p), 4096)])
}

func TestVanishedFile(t *testing.T) {
	r, _ := NewReader(DefaultConfig())
	res := r.Read(context.Background(), &view.Live{}, filepath.Join(t.TempDir(), "gone"), func(view.File, *view.Stat) error { return nil })
	if res.Outcome != outcome.Failed || res.Reason != outcome.ReasonVanished || res.Err == nil {
		t.Fatalf("missing file: %+v, want failed/vanished", res)
	}
}

func TestPurgeStaging(t *testing.T) {
	dir := t.TempDir()
	// a pid that surely no longer runs: a child we started and reaped
	c := startHelper(t, "hold-read", os.Args[0])
	dead := c.Pid
	c.stop()
	mk := func(name, marker string) string {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Join(p, "files", "x"), 0o700)
		if marker != "" {
			os.WriteFile(filepath.Join(p, stagingMarker), []byte(marker), 0o600)
		}
		return p
	}
	crashed := mk(stagingPrefix+"crashed", "pid "+pidString(dead)+"\n")
	live := mk(stagingPrefix+"live", "pid "+pidString(os.Getpid())+"\n")
	foreign := mk(stagingPrefix+"foreign", "")
	other := mk("unrelated", "pid "+pidString(dead)+"\n")
	removed, err := PurgeStaging(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != crashed {
		t.Fatalf("removed %v, want only %s", removed, crashed)
	}
	for _, keep := range []string{live, foreign, other} {
		if _, err := os.Stat(keep); err != nil {
			t.Errorf("%s should be kept: %v", keep, err)
		}
	}
	if removed, err := PurgeStaging(filepath.Join(dir, "missing")); err != nil || removed != nil {
		t.Errorf("purging a missing dir: %v, %v", removed, err)
	}
}

func TestStageCopiesOnlyBusyFilesUnlessStageAll(t *testing.T) {
	path := filepath.Join(t.TempDir(), "idle")
	writeFile(t, path, 1000)
	for _, all := range []bool{false, true} {
		staging := t.TempDir()
		r, err := NewReader(Config{Strategy: StrategyStage, StagingDir: staging, StageAll: all, Open: scan(t)})
		if err != nil {
			t.Fatal(err)
		}
		var name string
		res := r.Read(context.Background(), &view.Live{}, path, func(f view.File, st *view.Stat) error {
			if n, ok := f.(interface{ Name() string }); ok {
				name = n.Name()
			}
			_, err := io.Copy(io.Discard, f)
			return err
		})
		r.Close()
		if res.Outcome != outcome.OK || !res.Stored {
			t.Fatalf("StageAll=%v: %+v, want ok", all, res)
		}
		if staged := within(name, staging); staged != all {
			t.Errorf("StageAll=%v: idle file read from %q (staged: %v)", all, name, staged)
		}
	}
}
