package quiesce

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Point is a moment of the run at which hooks run.
type Point string

// The hook points, in the order a run reaches them.
const (
	BeforeBackup   Point = "before-backup"
	BeforeSnapshot Point = "before-snapshot"
	AfterSnapshot  Point = "after-snapshot"
	AfterBackup    Point = "after-backup"
	OnError        Point = "on-error"
)

// Points lists every hook point in run order.
var Points = []Point{BeforeBackup, BeforeSnapshot, AfterSnapshot, AfterBackup, OnError}

// Valid tells whether p is one of Points.
func (p Point) Valid() bool {
	for _, q := range Points {
		if p == q {
			return true
		}
	}
	return false
}

// cleanup tells whether the point undoes or reports on an earlier one: its
// hooks all run even after one failed, and even when the run's context is
// cancelled.
func (p Point) cleanup() bool { return p == AfterSnapshot || p == AfterBackup || p == OnError }

// Hook limits.
const (
	DefaultHookTimeout = 5 * time.Minute
	// DefaultKillGrace is how long a hook's process group has between
	// SIGTERM and SIGKILL.
	DefaultKillGrace = 2 * time.Second
	// DefaultOutputLimit bounds the output kept per hook (its tail).
	DefaultOutputLimit = 64 << 10
	// pipeDelay bounds the wait for a background process of a hook that
	// keeps the hook's output open after the hook itself exited (a daemon
	// started without closing its descriptors).
	pipeDelay = time.Second
)

// Hook is one command run at a Point. Exactly one of Run and Argv is set.
type Hook struct {
	// Run is a shell command line (/bin/sh -c on Unix, cmd /C on Windows).
	Run string `json:"run,omitempty" yaml:"run,omitempty"`
	// Argv is a program and its arguments, run without a shell.
	Argv []string `json:"argv,omitempty" yaml:"argv,omitempty"`
	// Timeout is the time the hook may take; 0 means DefaultHookTimeout.
	Timeout time.Duration `json:"timeout,omitempty" yaml:"timeout,omitempty"`
	// Essential hooks abort the run when they fail; optional ones (the
	// default) only produce a warning.
	Essential bool `json:"essential,omitempty" yaml:"essential,omitempty"`
}

// String is the hook's command as the user wrote it, for reports.
func (h Hook) String() string {
	if h.Run != "" {
		return h.Run
	}
	return strings.Join(h.Argv, " ")
}

func (h Hook) timeout() time.Duration {
	if h.Timeout > 0 {
		return h.Timeout
	}
	return DefaultHookTimeout
}

// Hooks holds the hooks of each point, run in list order.
type Hooks map[Point][]Hook

// Outcome is what a run reports to after-backup and on-error hooks.
type Outcome struct {
	FilesOK       int
	FilesSnapshot int // read from a snapshot or clone
	FilesChanged  int
	FilesSkipped  int
	FilesFailed   int
	SnapshotID    string
	// ExitCode is the run's exit code (0 whole, 3 flagged files, 1 fatal).
	ExitCode int
}

// HookEnv is what hooks are told through STILLPOINT_* environment variables.
type HookEnv struct {
	RunID   string
	Sources []string
	// SnapshotPaths are where the snapshots of the run are mounted, once
	// they exist.
	SnapshotPaths []string
	// Outcome is set for after-backup and on-error.
	Outcome *Outcome
	// Err is the run's failure, for on-error (and after-backup of a failed
	// run).
	Err error
}

// Vars returns the STILLPOINT_* variables for point. Lists are separated by
// newlines, which unlike colons cannot occur in a path by accident.
func (e HookEnv) Vars(point Point) []string {
	v := []string{
		"STILLPOINT_PHASE=" + string(point),
		"STILLPOINT_RUN_ID=" + e.RunID,
		"STILLPOINT_SOURCES=" + strings.Join(e.Sources, "\n"),
		"STILLPOINT_SNAPSHOT_PATHS=" + strings.Join(e.SnapshotPaths, "\n"),
	}
	if o := e.Outcome; o != nil {
		v = append(v,
			"STILLPOINT_FILES_OK="+strconv.Itoa(o.FilesOK),
			"STILLPOINT_FILES_SNAPSHOT="+strconv.Itoa(o.FilesSnapshot),
			"STILLPOINT_FILES_CHANGED="+strconv.Itoa(o.FilesChanged),
			"STILLPOINT_FILES_SKIPPED="+strconv.Itoa(o.FilesSkipped),
			"STILLPOINT_FILES_FAILED="+strconv.Itoa(o.FilesFailed),
			"STILLPOINT_SNAPSHOT_ID="+o.SnapshotID,
			"STILLPOINT_EXIT_CODE="+strconv.Itoa(o.ExitCode),
		)
	}
	if e.Err != nil {
		v = append(v, "STILLPOINT_ERROR="+e.Err.Error())
	}
	return v
}

// HookResult is the report of one hook's execution.
type HookResult struct {
	Point     Point         `json:"point"`
	Command   string        `json:"command"`
	Essential bool          `json:"essential"`
	Pid       int           `json:"pid,omitempty"`
	Started   time.Time     `json:"started"`
	Duration  time.Duration `json:"duration_ns"`
	ExitCode  int           `json:"exit_code"` // -1 when killed or not started
	TimedOut  bool          `json:"timed_out,omitempty"`
	Cancelled bool          `json:"cancelled,omitempty"`
	// Error is "" when the hook succeeded.
	Error string `json:"error,omitempty"`
	// Output is the tail of stdout and stderr, interleaved.
	Output    string `json:"output,omitempty"`
	Truncated bool   `json:"truncated,omitempty"`
	// Note tells about something odd that was not a failure.
	Note string `json:"note,omitempty"`
}

// OK tells whether the hook succeeded.
func (r HookResult) OK() bool { return r.Error == "" }

// HookError is returned when an essential hook failed.
type HookError struct{ Result HookResult }

func (e *HookError) Error() string {
	r := e.Result
	msg := fmt.Sprintf("essential %s hook %q failed: %s", r.Point, r.Command, r.Error)
	if out := lastLine(r.Output); out != "" {
		msg += " (last output: " + out + ")"
	}
	return msg
}

// HookRunner runs hooks as child processes.
type HookRunner struct {
	Hooks Hooks
	// Env is the environment the STILLPOINT_* variables are added to; nil
	// means the environment of this process.
	Env []string
	// Dir is the hooks' working directory; "" means ours.
	Dir string
	// KillGrace is the time between SIGTERM and SIGKILL on a timeout; 0
	// means DefaultKillGrace.
	KillGrace time.Duration
	// OutputLimit is the number of output bytes kept per hook; 0 means
	// DefaultOutputLimit.
	OutputLimit int
	// Log, when set, is told each result as soon as the hook ends.
	Log func(HookResult)
}

// Run runs the hooks of point in order and returns their results. The
// error is a *HookError, and only non-nil, when an essential hook failed.
// At before-backup and before-snapshot the first essential failure stops
// the point's remaining hooks; at after-snapshot, after-backup and on-error
// every hook runs regardless, and they run even when ctx is already
// cancelled (each still within its own timeout): they undo what the
// earlier hooks did.
func (r *HookRunner) Run(ctx context.Context, point Point, env HookEnv) ([]HookResult, error) {
	if point.cleanup() {
		ctx = context.WithoutCancel(ctx)
	}
	var results []HookResult
	var firstErr error
	for _, h := range r.Hooks[point] {
		if firstErr != nil && !point.cleanup() {
			break
		}
		res := r.runOne(ctx, point, h, env)
		if r.Log != nil {
			r.Log(res)
		}
		results = append(results, res)
		if !res.OK() && h.Essential && firstErr == nil {
			firstErr = &HookError{Result: res}
		}
	}
	return results, firstErr
}

func (r *HookRunner) runOne(ctx context.Context, point Point, h Hook, env HookEnv) HookResult {
	base := r.Env
	if base == nil {
		base = os.Environ()
	}
	spec := procSpec{
		hook:  h,
		env:   append(append([]string(nil), base...), env.Vars(point)...),
		dir:   r.Dir,
		grace: r.KillGrace,
		limit: r.OutputLimit,
	}
	res := runProcess(ctx, spec)
	res.Point = point
	return res
}

// procSpec is one process to run with a timeout and a bounded output.
type procSpec struct {
	hook  Hook
	env   []string
	dir   string
	grace time.Duration
	limit int
}

// runProcess starts the hook's command in its own process group and waits
// for it; on timeout or cancellation the whole group is terminated, so
// children a shell started do not outlive the hook.
func runProcess(ctx context.Context, s procSpec) HookResult {
	h := s.hook
	res := HookResult{Command: h.String(), Essential: h.Essential, ExitCode: -1, Started: time.Now()}
	defer func() { res.Duration = time.Since(res.Started) }()
	argv := h.Argv
	if h.Run != "" {
		argv = shellArgv(h.Run)
	}
	if len(argv) == 0 || argv[0] == "" {
		res.Error = "empty command"
		return res
	}
	if s.grace <= 0 {
		s.grace = DefaultKillGrace
	}
	if s.limit <= 0 {
		s.limit = DefaultOutputLimit
	}
	out := &tailBuffer{limit: s.limit}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env, cmd.Dir = s.env, s.dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = pipeDelay
	setProcessGroup(cmd)
	if ctx.Err() != nil { // do not start what would be killed at once
		res.Cancelled = true
		res.Error = "not started: " + context.Cause(ctx).Error()
		return res
	}
	if err := cmd.Start(); err != nil {
		res.Error = err.Error()
		return res
	}
	res.Pid = cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timer := time.NewTimer(h.timeout())
	defer timer.Stop()
	var err error
	select {
	case err = <-done:
	case <-timer.C:
		res.TimedOut = true
		err = killGroup(cmd, done, s.grace)
	case <-ctx.Done():
		res.Cancelled = true
		err = killGroup(cmd, done, s.grace)
	}
	res.Output, res.Truncated = out.String()
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	switch {
	case res.TimedOut:
		res.Error = fmt.Sprintf("timed out after %s; its process group was killed", h.timeout())
	case res.Cancelled:
		res.Error = "cancelled (" + context.Cause(ctx).Error() + "); its process group was killed"
	case errors.Is(err, exec.ErrWaitDelay) && res.ExitCode == 0:
		// The hook succeeded but left a background process holding its
		// output: not a failure (a start script may do that).
		res.Note = "a background process of the hook kept its output open; the rest of its output is not captured"
	case err != nil:
		res.Error = err.Error()
	}
	return res
}

// tailBuffer keeps the last limit bytes written to it.
type tailBuffer struct {
	mu        sync.Mutex
	limit     int
	buf       []byte
	truncated bool
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(p)
	if len(p) >= b.limit {
		p = p[len(p)-b.limit:]
		b.buf = b.buf[:0]
		b.truncated = true
	} else if over := len(b.buf) + len(p) - b.limit; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
		b.truncated = true
	}
	b.buf = append(b.buf, p...)
	return n, nil
}

func (b *tailBuffer) String() (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf), b.truncated
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
