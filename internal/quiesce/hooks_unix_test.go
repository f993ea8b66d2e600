//go:build unix

package quiesce

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestHookEnvAndArgv(t *testing.T) {
	r := &HookRunner{Hooks: Hooks{
		AfterBackup: {
			{Run: `printf '%s|%s|%s|%s|%s|%s\n' "$STILLPOINT_PHASE" "$STILLPOINT_RUN_ID" "$STILLPOINT_SOURCES" "$STILLPOINT_FILES_OK" "$STILLPOINT_EXIT_CODE" "$STILLPOINT_ERROR"`},
			{Argv: []string{"/bin/echo", "no shell; $HOME stays"}},
		},
	}}
	env := HookEnv{RunID: "r1", Sources: []string{"/a", "/b"}, Outcome: &Outcome{FilesOK: 7, ExitCode: 3}, Err: errors.New("boom")}
	res, err := r.Run(context.Background(), AfterBackup, env)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 {
		t.Fatalf("want 2 results, got %d", len(res))
	}
	if got, want := res[0].Output, "after-backup|r1|/a\n/b|7|3|boom\n"; got != want {
		t.Errorf("env output %q, want %q", got, want)
	}
	if got := res[1].Output; got != "no shell; $HOME stays\n" {
		t.Errorf("argv output %q", got)
	}
	for _, r := range res {
		if !r.OK() || r.ExitCode != 0 || r.Point != AfterBackup {
			t.Errorf("result %+v", r)
		}
	}
}

func TestHookEssentialAndOptionalFailures(t *testing.T) {
	dir := t.TempDir()
	mark := func(name string) string { return "touch " + filepath.Join(dir, name) }
	r := &HookRunner{Hooks: Hooks{
		BeforeBackup: {
			{Run: "echo optional broke; exit 4"},
			{Run: "echo essential broke >&2; exit 5", Essential: true},
			{Run: mark("after-essential")}, // must not run: the point is aborted
		},
		AfterBackup: {
			{Run: "exit 6", Essential: true},
			{Run: mark("cleanup-2")}, // must run: cleanup goes on
		},
	}}
	res, err := r.Run(context.Background(), BeforeBackup, HookEnv{})
	var he *HookError
	if !errors.As(err, &he) {
		t.Fatalf("want a HookError, got %v", err)
	}
	if len(res) != 2 || res[0].OK() || res[0].ExitCode != 4 || res[1].ExitCode != 5 {
		t.Fatalf("results %+v", res)
	}
	for _, want := range []string{"essential before-backup hook", "exit status 5", "essential broke"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "after-essential")); err == nil {
		t.Error("a hook after a failed essential before-backup hook ran")
	}
	res, err = r.Run(context.Background(), AfterBackup, HookEnv{})
	if err == nil || len(res) != 2 {
		t.Fatalf("after-backup: err %v, %d results", err, len(res))
	}
	if _, err := os.Stat(filepath.Join(dir, "cleanup-2")); err != nil {
		t.Error("the cleanup hook after a failed essential one did not run")
	}
}

// groupMembers lists the live (non-zombie) processes of process group pgid.
func groupMembers(t *testing.T, pgid int) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Skip("no /proc")
	}
	var found []string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]) // state ppid pgrp ...
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" {
			found = append(found, e.Name()+" "+s[:strings.LastIndexByte(s, ')')+1])
		}
	}
	return found
}

func waitGroupGone(t *testing.T, pgid int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		left := groupMembers(t, pgid)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes of the hook's group %d survived: %v", pgid, left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A hung hook with children, one of which ignores SIGTERM, is gone
// entirely after its timeout.
func TestHookTimeoutKillsWholeGroup(t *testing.T) {
	r := &HookRunner{KillGrace: 200 * time.Millisecond, Hooks: Hooks{BeforeSnapshot: {{
		Run:       `echo started; (sleep 1000; echo never) & (trap '' TERM; sleep 1000) & sleep 1000`,
		Timeout:   300 * time.Millisecond,
		Essential: true,
	}}}}
	t0 := time.Now()
	res, err := r.Run(context.Background(), BeforeSnapshot, HookEnv{})
	if took := time.Since(t0); took > 3*time.Second {
		t.Errorf("Run took %s for a 300ms timeout", took)
	}
	if err == nil || !strings.Contains(err.Error(), "timed out after 300ms") {
		t.Fatalf("want a timeout error, got %v", err)
	}
	if !res[0].TimedOut || res[0].Output != "started\n" {
		t.Errorf("result %+v", res[0])
	}
	waitGroupGone(t, res[0].Pid)
}

func TestHookCancelKillsGroupButCleanupStillRuns(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &HookRunner{KillGrace: 100 * time.Millisecond, Hooks: Hooks{
		BeforeBackup: {{Run: "sleep 1000 & sleep 1000"}},
		AfterBackup:  {{Run: "echo cleaned"}},
	}}
	time.AfterFunc(200*time.Millisecond, cancel)
	res, err := r.Run(ctx, BeforeBackup, HookEnv{})
	if err != nil { // optional hook: not an error
		t.Fatal(err)
	}
	if !res[0].Cancelled || !strings.Contains(res[0].Error, "cancelled") {
		t.Fatalf("result %+v", res[0])
	}
	waitGroupGone(t, res[0].Pid)
	res, err = r.Run(ctx, AfterBackup, HookEnv{}) // ctx is cancelled by now
	if err != nil || res[0].Output != "cleaned\n" {
		t.Fatalf("after-backup with a cancelled ctx: %v %+v", err, res)
	}
}

func TestHookOutputIsBounded(t *testing.T) {
	r := &HookRunner{OutputLimit: 1000, Hooks: Hooks{AfterBackup: {{Run: `i=0; while [ $i -lt 500 ]; do echo line$i; i=$((i+1)); done`}}}}
	res, _ := r.Run(context.Background(), AfterBackup, HookEnv{})
	if len(res[0].Output) != 1000 || !res[0].Truncated || !strings.HasSuffix(res[0].Output, "line499\n") {
		t.Fatalf("output len %d truncated %v tail %q", len(res[0].Output), res[0].Truncated, lastLine(res[0].Output))
	}
}

// A hook that starts a daemon keeping the hook's output open succeeds
// without waiting for the daemon.
func TestHookBackgroundProcessDoesNotBlock(t *testing.T) {
	r := &HookRunner{Hooks: Hooks{AfterSnapshot: {{Run: "sleep 30 & echo started"}}}}
	t0 := time.Now()
	res, err := r.Run(context.Background(), AfterSnapshot, HookEnv{})
	if err != nil || !res[0].OK() {
		t.Fatalf("%v %+v", err, res)
	}
	if took := time.Since(t0); took > 5*time.Second {
		t.Errorf("took %s", took)
	}
	if res[0].Note == "" {
		t.Errorf("no note about the background process: %+v", res[0])
	}
	// Not ours to kill in real life; in the test, clean up.
	_ = killPgid(res[0].Pid)
}

func TestHookMissingProgram(t *testing.T) {
	r := &HookRunner{Hooks: Hooks{BeforeBackup: {{Argv: []string{"/nonexistent/stillpoint-hook"}, Essential: true}}}}
	_, err := r.Run(context.Background(), BeforeBackup, HookEnv{})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/stillpoint-hook") {
		t.Fatalf("got %v", err)
	}
}

// phaseLog records the order of hooks and phases in a file.
type phaseLog struct{ path string }

func (l phaseLog) hook(extra string) Hook {
	return Hook{Run: `echo "$STILLPOINT_PHASE` + extra + `" >> ` + l.path}
}

func (l phaseLog) add(t *testing.T, s string) {
	f, err := os.OpenFile(l.path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString(s + "\n")
}

func (l phaseLog) read(t *testing.T) string {
	b, _ := os.ReadFile(l.path)
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\n", " "))
}

func TestSequence(t *testing.T) {
	type step struct {
		beforeBackupFails, snapshotFails, backupFails, backupPanics, cancel bool
	}
	cases := []struct {
		name     string
		s        step
		want     string
		failedAt string
		exit     int
	}{
		{"success", step{}, "before-backup before-snapshot SNAPSHOT after-snapshot BACKUP RELEASE after-backup:0:", "", 0},
		{"before-backup fails", step{beforeBackupFails: true}, "before-backup after-snapshot after-backup:1:essential on-error:1:essential", "before-backup", 1},
		{"snapshot fails", step{snapshotFails: true}, "before-backup before-snapshot SNAPSHOT after-snapshot RELEASE after-backup:1:snapshot on-error:1:snapshot", "snapshot", 1},
		{"backup fails", step{backupFails: true}, "before-backup before-snapshot SNAPSHOT after-snapshot BACKUP RELEASE after-backup:1:backup on-error:1:backup", "backup", 1},
		{"cancelled during backup", step{cancel: true}, "before-backup before-snapshot SNAPSHOT after-snapshot BACKUP RELEASE after-backup:1:backup on-error:1:backup", "backup", 1},
		{"backup panics", step{backupPanics: true}, "before-backup before-snapshot SNAPSHOT after-snapshot BACKUP RELEASE after-backup:1:backup on-error:1:backup", "backup", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := phaseLog{filepath.Join(t.TempDir(), "log")}
			bb := l.hook("")
			if c.s.beforeBackupFails {
				bb = Hook{Run: l.hook("").Run + "; exit 1", Essential: true}
			}
			outcomeHook := l.hook(`:$STILLPOINT_EXIT_CODE:$(echo "$STILLPOINT_ERROR" | grep -o 'essential\|snapshot\|backup' | head -1)`)
			r := &HookRunner{Hooks: Hooks{
				BeforeBackup: {bb}, BeforeSnapshot: {l.hook("")}, AfterSnapshot: {l.hook("")},
				AfterBackup: {outcomeHook}, OnError: {outcomeHook},
			}}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ph := Phases{
				Snapshot: func(ctx context.Context) ([]string, error) {
					l.add(t, "SNAPSHOT")
					if c.s.snapshotFails {
						return nil, errors.New("no snapshot today")
					}
					return []string{"/snap/1"}, nil
				},
				Backup: func(ctx context.Context, paths []string) (Outcome, error) {
					l.add(t, "BACKUP")
					if len(paths) != 1 {
						t.Errorf("backup got snapshot paths %v", paths)
					}
					switch {
					case c.s.backupFails:
						return Outcome{FilesFailed: 1}, errors.New("disk full")
					case c.s.backupPanics:
						panic("bug")
					case c.s.cancel:
						cancel()
						return Outcome{}, ctx.Err()
					}
					return Outcome{FilesOK: 3}, nil
				},
				Release: func(ctx context.Context) error {
					if ctx.Err() != nil {
						t.Error("release got a cancelled context")
					}
					l.add(t, "RELEASE")
					return nil
				},
			}
			var rep *SequenceReport
			var err error
			func() {
				defer func() {
					if p := recover(); p != nil && !c.s.backupPanics {
						t.Fatalf("unexpected panic %v", p)
					} else if p == nil && c.s.backupPanics {
						t.Error("the panic was swallowed")
					}
				}()
				rep, err = r.Sequence(ctx, HookEnv{RunID: "x"}, ph)
			}()
			if got := l.read(t); got != c.want {
				t.Errorf("order\n got %s\nwant %s", got, c.want)
			}
			if c.s.backupPanics {
				return
			}
			if (err != nil) != (c.failedAt != "") || rep.FailedAt != c.failedAt || rep.Outcome.ExitCode != c.exit {
				t.Errorf("err %v failedAt %q exit %d", err, rep.FailedAt, rep.Outcome.ExitCode)
			}
		})
	}
}

// A run cancelled before it starts runs no before-* hook and no phase, but
// still its cleanup hooks.
func TestSequenceCancelledBeforeStart(t *testing.T) {
	l := phaseLog{filepath.Join(t.TempDir(), "log")}
	r := &HookRunner{Hooks: Hooks{BeforeBackup: {l.hook("")}, AfterSnapshot: {l.hook("")}, AfterBackup: {l.hook("")}, OnError: {l.hook("")}}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep, err := r.Sequence(ctx, HookEnv{}, Phases{Snapshot: func(context.Context) ([]string, error) {
		t.Error("snapshot ran in a cancelled run")
		return nil, nil
	}})
	if err == nil || rep.FailedAt != "before-backup" || !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v failedAt %q", err, rep.FailedAt)
	}
	if got := l.read(t); got != "after-snapshot after-backup on-error" {
		t.Errorf("order %q", got)
	}
}
