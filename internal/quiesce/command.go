package quiesce

import (
	"context"
	"fmt"
	"os"
	"time"
)

// DefaultCommandTimeout is the time a freeze or thaw command may take when
// the job does not say.
const DefaultCommandTimeout = 30 * time.Second

// CommandWriter is a Writer that runs a command to freeze an application
// (e.g. "app-ctl pause") and another to thaw it ("app-ctl resume"). The
// commands run like hooks: in their own process group, killed as a group on
// timeout, with STILLPOINT_PHASE set to "freeze" or "thaw".
type CommandWriter struct {
	FreezeCmd, ThawCmd Hook
	// Timeout applies to each command whose own Timeout is 0; 0 means
	// DefaultCommandTimeout.
	Timeout time.Duration
	// Env is the environment the STILLPOINT_* variables are added to; nil
	// means the environment of this process.
	Env []string

	runID   string
	frozeAt time.Time
	// Results holds the report of each command run so far.
	Results []HookResult
}

// NewCommandWriter returns a writer running the shell command lines freeze
// and thaw.
func NewCommandWriter(freeze, thaw string, timeout time.Duration) *CommandWriter {
	return &CommandWriter{FreezeCmd: Hook{Run: freeze}, ThawCmd: Hook{Run: thaw}, Timeout: timeout}
}

// Name implements Writer.
func (w *CommandWriter) Name() string {
	return fmt.Sprintf("command freeze=%q thaw=%q", w.FreezeCmd.String(), w.ThawCmd.String())
}

// Freeze runs the freeze command; a failure or a timeout is an error (and
// the run still calls Thaw). A command killed at its own timeout is a
// *TimeoutError: the writer knows nothing of the application's files, so
// the snapshot then holds them as it finds them.
func (w *CommandWriter) Freeze(ctx context.Context, info FreezeInfo) (*Frozen, error) {
	w.runID, w.frozeAt = info.RunID, time.Now()
	res := w.run(ctx, "freeze", w.FreezeCmd)
	if !res.OK() {
		err := fmt.Errorf("freeze command %q: %s%s", res.Command, res.Error, outputHint(res))
		if res.TimedOut && ctx.Err() == nil {
			return nil, &TimeoutError{Writer: w.Name(), Err: err,
				Consequence: "the application was not paused for the snapshot, which holds its files as they were (the thaw command still runs)"}
		}
		return nil, err
	}
	fr := &Frozen{}
	if res.Note != "" {
		fr.Notes = append(fr.Notes, res.Note)
	}
	return fr, nil
}

// Thaw runs the thaw command, whatever became of Freeze: a freeze command
// that failed or was killed half-way may still have paused the
// application. It runs even when ctx is cancelled, within its timeout, so
// the thaw command must be safe to run when nothing is paused.
func (w *CommandWriter) Thaw(ctx context.Context) error {
	ctx = context.WithoutCancel(ctx)
	res := w.run(ctx, "thaw", w.ThawCmd)
	if !res.OK() {
		return fmt.Errorf("thaw command %q: %s%s; the application may still be paused", res.Command, res.Error, outputHint(res))
	}
	return nil
}

func (w *CommandWriter) run(ctx context.Context, phase string, h Hook) HookResult {
	if h.String() == "" {
		return HookResult{Command: "", Note: "no " + phase + " command"}
	}
	if h.Timeout <= 0 {
		h.Timeout = w.Timeout
		if h.Timeout <= 0 {
			h.Timeout = DefaultCommandTimeout
		}
	}
	base := w.Env
	if base == nil {
		base = os.Environ()
	}
	env := append(append([]string(nil), base...), "STILLPOINT_PHASE="+phase, "STILLPOINT_RUN_ID="+w.runID)
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < h.Timeout {
		h.Timeout = max(time.Until(deadline), time.Millisecond)
	}
	res := runProcess(ctx, procSpec{hook: h, env: env})
	res.Point = Point(phase)
	w.Results = append(w.Results, res)
	return res
}

func outputHint(r HookResult) string {
	if l := lastLine(r.Output); l != "" {
		return " (last output: " + l + ")"
	}
	return ""
}
