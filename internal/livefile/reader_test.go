package livefile

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
	"github.com/stillpoint-backup/stillpoint/internal/view"
)

// fakeView serves one file from memory and can make it change under a
// read, fail, or lie about its size, without any timing involved.
type fakeView struct {
	mu      sync.Mutex
	data    []byte
	st      view.Stat
	opens   int
	changes int   // the first `changes` reads see the file modified while read
	lstat   error // returned by Lstat
	open    error // returned by Open
	read    error // returned by Read after the data
	short   int   // Read serves this many bytes fewer than the size, then EOF
}

func newFakeView(size int) *fakeView {
	return &fakeView{data: bytes.Repeat([]byte{'a'}, size),
		st: view.Stat{Type: view.TypeRegular, Size: int64(size), Mtime: time.Unix(1000, 0), Ctime: time.Unix(1000, 0), Ino: 7, Dev: 1}}
}

func (v *fakeView) Lstat(p string) (*view.Stat, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.lstat != nil {
		return nil, &fs.PathError{Op: "lstat", Path: p, Err: v.lstat}
	}
	st := v.st
	return &st, nil
}
func (v *fakeView) ReadDir(string) ([]string, error)    { return nil, nil }
func (v *fakeView) Readlink(string) (string, error)     { return "", nil }
func (v *fakeView) Xattrs(string) ([]view.Xattr, error) { return nil, nil }
func (v *fakeView) Open(p string) (view.File, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.open != nil {
		return nil, &fs.PathError{Op: "open", Path: p, Err: v.open}
	}
	v.opens++
	return &fakeFile{v: v, r: bytes.NewReader(v.data[:len(v.data)-v.short]), change: v.opens <= v.changes}, nil
}

type fakeFile struct {
	v      *fakeView
	r      *bytes.Reader
	change bool
}

func (f *fakeFile) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		if f.v.read != nil {
			return n, f.v.read
		}
		if f.change {
			f.change = false
			f.v.mu.Lock()
			f.v.st.Mtime = f.v.st.Mtime.Add(time.Second)
			f.v.mu.Unlock()
		}
	}
	return n, err
}
func (f *fakeFile) Close() error { return nil }
func (f *fakeFile) Stat() (*view.Stat, error) {
	f.v.mu.Lock()
	defer f.v.mu.Unlock()
	st := f.v.st
	return &st, nil
}

// fakeClock records the waits and never sleeps.
type fakeClock struct{ waits []time.Duration }

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.waits = append(c.waits, d)
	return ctx.Err()
}

func readAll(calls *int) Attempt {
	return func(f view.File, st *view.Stat) error {
		*calls++
		_, err := io.Copy(io.Discard, f)
		return err
	}
}

func newReader(t *testing.T, cfg Config) *Reader {
	t.Helper()
	r, err := NewReader(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRetryAttemptsAndBackoff(t *testing.T) {
	for _, tc := range []struct {
		name     string
		retries  int
		changes  int
		want     outcome.Outcome
		attempts int
		waits    []time.Duration
	}{
		{"unchanged", 3, 0, outcome.OK, 1, nil},
		{"settles", 3, 2, outcome.OK, 3, []time.Duration{50, 100}},
		{"keeps changing", 3, 99, outcome.Changed, 4, []time.Duration{50, 100, 200}},
		{"capped", 6, 99, outcome.Changed, 7, []time.Duration{50, 100, 200, 400, 400, 400}},
		{"no retries", 0, 99, outcome.Changed, 1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newFakeView(1000)
			v.changes = tc.changes
			clock := &fakeClock{}
			r := newReader(t, Config{Strategy: StrategyRetry, Retries: tc.retries, Backoff: 50 * time.Millisecond, MaxBackoff: 400 * time.Millisecond, Clock: clock})
			calls := 0
			res := r.Read(context.Background(), v, "/f", readAll(&calls))
			if res.Outcome != tc.want || !res.Stored || res.Attempts != tc.attempts || calls != tc.attempts {
				t.Fatalf("%+v (calls %d), want %v after %d attempts", res, calls, tc.want, tc.attempts)
			}
			for i := range tc.waits {
				tc.waits[i] *= time.Millisecond
			}
			if len(clock.waits) != len(tc.waits) || (len(tc.waits) > 0 && !equalDurations(clock.waits, tc.waits)) {
				t.Fatalf("waits %v, want %v", clock.waits, tc.waits)
			}
		})
	}
}

func equalDurations(a, b []time.Duration) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

func TestReadStrategyNeverRetries(t *testing.T) {
	v := newFakeView(10)
	v.changes = 1
	calls := 0
	res := newReader(t, Config{Strategy: StrategyRead, Clock: &fakeClock{}}).Read(context.Background(), v, "/f", readAll(&calls))
	if res.Outcome != outcome.Changed || !res.Stored || res.Attempts != 1 || calls != 1 || res.Detail == "" {
		t.Fatalf("%+v, want changed and stored after 1 attempt, with a detail", res)
	}
}

func TestSkipStrategyDropsChangingRead(t *testing.T) {
	v := newFakeView(10)
	v.changes = 1
	calls := 0
	res := newReader(t, Config{Strategy: StrategySkip}).Read(context.Background(), v, "/f", readAll(&calls))
	if res.Outcome != outcome.SkippedOpen || res.Stored || !res.Deferred || calls != 1 {
		t.Fatalf("%+v, want skipped-open, not stored, deferred", res)
	}
}

func TestShortReadWithEOFIsChanged(t *testing.T) {
	// the size stayed, the timestamps stayed, yet the read ended early: a
	// truncate and rewrite within one timestamp tick
	v := newFakeView(100)
	v.short = 10
	calls := 0
	res := newReader(t, Config{Strategy: StrategyRead}).Read(context.Background(), v, "/f", readAll(&calls))
	if res.Outcome != outcome.Changed || !strings.Contains(res.Detail, "90 bytes of 100") {
		t.Fatalf("%+v, want changed: read 90 of 100", res)
	}
}

func TestAttemptStoppingEarlyIsAnError(t *testing.T) {
	v := newFakeView(100)
	res := newReader(t, Config{Strategy: StrategyRead}).Read(context.Background(), v, "/f", func(f view.File, st *view.Stat) error {
		_, err := f.Read(make([]byte, 10))
		return err
	})
	// named as shown: /f, or on Windows the drive F:\ that /f stands for
	if res.Outcome != outcome.Failed || res.Reason != "" || res.Err == nil || !strings.Contains(res.Err.Error(), pathmap.Native.Display("/f")) {
		t.Fatalf("%+v, want failed with an error naming the file", res)
	}
}

func TestErrorsMapToReasons(t *testing.T) {
	boom := errors.New("repository full")
	for _, tc := range []struct {
		name    string
		setup   func(*fakeView)
		attempt error
		reason  string
	}{
		{"permission", func(v *fakeView) { v.open = fs.ErrPermission }, nil, outcome.ReasonPermission},
		{"eacces", func(v *fakeView) { v.open = syscall.EACCES }, nil, outcome.ReasonPermission},
		{"vanished before open", func(v *fakeView) { v.lstat = syscall.ENOENT }, nil, outcome.ReasonVanished},
		{"vanished at open", func(v *fakeView) { v.open = syscall.ENOENT }, nil, outcome.ReasonVanished},
		{"vanished during read", func(v *fakeView) { v.read = syscall.ENOENT }, nil, outcome.ReasonVanished},
		{"io", func(v *fakeView) { v.read = syscall.EIO }, nil, outcome.ReasonIO},
		{"attempt's own error", func(v *fakeView) {}, boom, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newFakeView(100)
			tc.setup(v)
			res := newReader(t, Config{Strategy: StrategyRetry, Retries: 3, Clock: &fakeClock{}}).Read(context.Background(), v, "/data/f", func(f view.File, st *view.Stat) error {
				if _, err := io.Copy(io.Discard, f); err != nil {
					return err
				}
				return tc.attempt
			})
			if res.Outcome != outcome.Failed || res.Reason != tc.reason || res.Stored || res.Attempts != 1 {
				t.Fatalf("%+v, want failed/%q after 1 attempt", res, tc.reason)
			}
			if res.Err == nil || !strings.Contains(res.Err.Error(), "/data/f") {
				t.Errorf("error %v does not name the path", res.Err)
			}
			if tc.attempt != nil && !errors.Is(res.Err, tc.attempt) {
				t.Errorf("error %v does not wrap attempt's", res.Err)
			}
		})
	}
}

func TestNotRegularAnyMore(t *testing.T) {
	v := newFakeView(1)
	v.st.Type = view.TypeFIFO // must not be opened: a FIFO open would block
	res := newReader(t, DefaultConfig()).Read(context.Background(), v, "/f", readAll(new(int)))
	if res.Outcome != outcome.Failed || res.Reason != outcome.ReasonVanished || v.opens != 0 {
		t.Fatalf("%+v (opens %d), want failed/vanished without an open", res, v.opens)
	}
}

func TestCanceledWhileWaiting(t *testing.T) {
	v := newFakeView(1)
	v.changes = 99
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := newReader(t, Config{Strategy: StrategyRetry, Retries: 3, Clock: &fakeClock{}}).Read(ctx, v, "/f", readAll(new(int)))
	if res.Outcome != outcome.Failed || !errors.Is(res.Err, context.Canceled) || res.Stored {
		t.Fatalf("%+v, want failed with the context's error", res)
	}
}

func TestParseStrategyAndRetries(t *testing.T) {
	for _, s := range []Strategy{StrategyRead, StrategyRetry, StrategySkip, StrategyStage} {
		got, err := ParseStrategy(s.String())
		if err != nil || got != s {
			t.Errorf("ParseStrategy(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ParseStrategy("snapshot"); err == nil || !strings.Contains(err.Error(), "read, retry, skip or stage") {
		t.Errorf("bad strategy error: %v", err)
	}
	var s Strategy
	if err := s.UnmarshalText([]byte("stage")); err != nil || s != StrategyStage {
		t.Errorf("UnmarshalText: %v %v", s, err)
	}
	for in, want := range map[string]int{"0": 0, "3": 3, "10": 10} {
		if n, err := ParseRetries(in); err != nil || n != want {
			t.Errorf("ParseRetries(%s) = %d, %v", in, n, err)
		}
	}
	for _, bad := range []string{"11", "-1", "many"} {
		if _, err := ParseRetries(bad); err == nil {
			t.Errorf("ParseRetries(%s) accepted", bad)
		}
	}
}

func TestConfigChecks(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no strategy":       {},
		"too many retries":  {Strategy: StrategyRetry, Retries: 11},
		"stage without dir": {Strategy: StrategyStage},
		"second pass 2":     {Strategy: StrategySkip, SecondPassRetries: 2},
	} {
		if _, err := NewReader(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if DefaultConfig().Retries != 3 || DefaultConfig().Strategy != StrategyRetry {
		t.Errorf("DefaultConfig = %+v", DefaultConfig())
	}
}

func TestStagingPathsAndPlacement(t *testing.T) {
	s := &stagingArea{dir: filepath.FromSlash("/stage/stillpoint-stage-1")}
	p, err := s.path("/srv/data/../x/file")
	if err != nil || p != filepath.FromSlash("/stage/stillpoint-stage-1/files/srv/x/file") {
		t.Errorf("staged path %q, %v", p, err)
	}
	if _, err := s.path("/"); err == nil {
		t.Error("staging the root accepted")
	}
	if runtime.GOOS == "windows" {
		for orig, want := range map[string]string{
			`\srv\data\..\x`:             `\stage\stillpoint-stage-1\files\srv\x`,
			`\\srv\data\..\x`:            `\stage\stillpoint-stage-1\files\srv\data\x`, // the share \\srv\data
			`C:\data\..\..\x`:            `\stage\stillpoint-stage-1\files\C\x`,
			`/C/data/../x`:               `\stage\stillpoint-stage-1\files\C\x`,
			`\\server\share\dir\..\..\f`: `\stage\stillpoint-stage-1\files\server\share\f`,
		} {
			if p, err := s.path(orig); err != nil || p != want {
				t.Errorf("staged path of %s: %q, %v; want %s", orig, p, err, want)
			}
		}
		return
	}
	root := t.TempDir()
	src := filepath.Join(root, "src")
	for _, tc := range []struct {
		staging string
		ok      bool
	}{
		{filepath.Join(root, "staging"), true},
		{filepath.Join(src, "not-yet", "staging"), false},
		{root, false},
		{src + "-staging", true},
	} {
		err := CheckStagingDir(tc.staging, []string{src})
		if (err == nil) != tc.ok {
			t.Errorf("CheckStagingDir(%s) = %v, want ok=%v", tc.staging, err, tc.ok)
		}
	}
}

func TestOpenFileModifiedJustBeforeReadIsNotProvenWhole(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mtime  time.Time
		holder bool
		want   outcome.Outcome
	}{
		// a write in the same timestamp tick as the read would not show
		{"open, modified now", time.Now().Add(time.Hour), true, outcome.Changed},
		{"open, modified long ago", time.Now().Add(-time.Hour), true, outcome.OK},
		{"not open, modified now", time.Now().Add(time.Hour), false, outcome.OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newFakeView(10)
			v.st.Mtime = tc.mtime
			open := &OpenFiles{}
			if tc.holder {
				open.add(fileKey{v.st.Dev, v.st.Ino}, Holder{Pid: 42, Comm: "db"})
			}
			res := newReader(t, Config{Strategy: StrategyRetry, Retries: 1, Open: open, Clock: &fakeClock{}}).Read(context.Background(), v, "/f", readAll(new(int)))
			if res.Outcome != tc.want {
				t.Fatalf("%+v, want %v", res, tc.want)
			}
			if tc.holder && (res.Holder == nil || res.Holder.Pid != 42) {
				t.Errorf("holder %v, want pid 42", res.Holder)
			}
		})
	}
}

func TestModifiedTooRecently(t *testing.T) {
	start := time.Date(2026, 1, 1, 12, 0, 10, 500_000_000, time.UTC)
	for _, tc := range []struct {
		mtime time.Time
		want  bool
	}{
		{start.Add(-10 * time.Millisecond), true},
		{start.Add(-time.Second), false},
		{start.Add(time.Hour), true},                         // a clock in the future proves nothing
		{time.Date(2026, 1, 1, 12, 0, 9, 0, time.UTC), true}, // whole seconds: 1.5 s is too recent
		{time.Date(2026, 1, 1, 12, 0, 5, 0, time.UTC), false},
	} {
		if got := modifiedTooRecently(start, tc.mtime); got != tc.want {
			t.Errorf("modifiedTooRecently(%v) = %v, want %v", tc.mtime, got, tc.want)
		}
	}
}
