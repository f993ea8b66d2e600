//go:build unix

package quiesce

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var _ Writer = (*CommandWriter)(nil)

func TestCommandWriterFreezeThaw(t *testing.T) {
	dir := t.TempDir()
	w := NewCommandWriter("echo $STILLPOINT_PHASE $STILLPOINT_RUN_ID > "+dir+"/paused", "rm "+dir+"/paused", time.Second)
	if _, err := w.Freeze(context.Background(), FreezeInfo{RunID: "run-9"}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "paused"))
	if err != nil || string(b) != "freeze run-9\n" {
		t.Fatalf("freeze did not run as expected: %q %v", b, err)
	}
	if err := w.Thaw(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "paused")); !os.IsNotExist(err) {
		t.Fatal("thaw did not run")
	}
	if !strings.Contains(w.Name(), "app") && !strings.Contains(w.Name(), "paused") {
		t.Errorf("name %q", w.Name())
	}
}

// A freeze command that fails or hangs is an error, and thaw still runs
// afterwards, also with a cancelled context.
func TestCommandWriterThawAfterFailedFreeze(t *testing.T) {
	for _, c := range []struct{ name, freeze, want string }{
		{"fails", "echo cannot pause; exit 2", "cannot pause"},
		{"hangs", "sleep 1000 & sleep 1000", "timed out after 300ms"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			w := NewCommandWriter(c.freeze, "touch "+dir+"/thawed", 300*time.Millisecond)
			t0 := time.Now()
			_, err := w.Freeze(context.Background(), FreezeInfo{})
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "freeze command") {
				t.Fatalf("freeze: want an error with %q, got %v", c.want, err)
			}
			if took := time.Since(t0); took > 4*time.Second {
				t.Errorf("freeze took %s", took)
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if err := w.Thaw(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(dir, "thawed")); err != nil {
				t.Fatal("thaw did not run after a failed freeze")
			}
			if w.Results[0].Pid > 0 {
				waitGroupGone(t, w.Results[0].Pid)
			}
		})
	}
}

func TestCommandWriterThawFailureSaysAppMayBePaused(t *testing.T) {
	w := NewCommandWriter("true", "exit 3", time.Second)
	err := w.Thaw(context.Background())
	if err == nil || !strings.Contains(err.Error(), "may still be paused") {
		t.Fatalf("got %v", err)
	}
}

// A freeze command killed at its timeout is a *TimeoutError (the writer
// knows no files); SnapOnTimeout lets the run go on, and thaw still runs.
// A freeze command that fails is an error either way.
func TestCommandWriterTimeout(t *testing.T) {
	dir := t.TempDir()
	w := NewCommandWriter("sleep 1000", "touch "+dir+"/thawed", 300*time.Millisecond)
	_, err := w.Freeze(context.Background(), FreezeInfo{})
	var te *TimeoutError
	if !errors.As(err, &te) || te.CrashConsistent || len(te.NotWhole) != 0 || !strings.Contains(err.Error(), "timed out after 300ms") || !strings.Contains(err.Error(), "not paused") {
		t.Fatalf("freeze: %v, want a *TimeoutError", err)
	}
	sw := SnapOnTimeout(w)
	fr, err := sw.Freeze(context.Background(), FreezeInfo{})
	if err != nil || fr.Timeout == nil {
		t.Fatalf("on-timeout snap: %+v, %v", fr, err)
	}
	if err := sw.Thaw(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "thawed")); err != nil {
		t.Fatal("thaw did not run after a timed-out freeze")
	}
	if _, err := SnapOnTimeout(NewCommandWriter("exit 2", "true", time.Second)).Freeze(context.Background(), FreezeInfo{}); err == nil || errors.As(err, &te) {
		t.Fatalf("a failing freeze command with on-timeout snap: %v, want a plain error", err)
	}
}
