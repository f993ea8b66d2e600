package quiesce

import (
	"context"
	"strings"
	"testing"
	"time"
)

// The tracker is driven with made-up times.
func TestQuietTracker(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	tr := &quietTracker{start: t0, last: t0, quiet: 300 * time.Millisecond, maxWait: time.Second}
	if done, next := tr.check(at(100)); done || next != 200*time.Millisecond {
		t.Fatalf("at 100ms: done %v next %s", done, next)
	}
	tr.wrote(at(250))
	tr.wrote(at(200)) // an older event never moves the last write back
	if done, next := tr.check(at(500)); done || next != 50*time.Millisecond {
		t.Fatalf("at 500ms: done %v next %s", done, next)
	}
	if done, _ := tr.check(at(550)); !done || !tr.quietReached {
		t.Fatal("quiet period not reached at 550ms")
	}

	tr = &quietTracker{start: t0, last: t0, quiet: 300 * time.Millisecond, maxWait: time.Second}
	for ms := 0; ms < 1000; ms += 100 {
		tr.wrote(at(ms))
	}
	if done, next := tr.check(at(950)); done || next != 50*time.Millisecond {
		t.Fatalf("at 950ms: done %v next %s (max-wait bounds the next check)", done, next)
	}
	if done, _ := tr.check(at(1000)); !done || tr.quietReached {
		t.Fatal("max-wait not honoured")
	}
	msg := tr.message(InactivityResult{Method: MethodPoll})
	if !strings.Contains(msg, "no quiet period of 300ms within 1s") || !strings.Contains(msg, "crash-consistent") {
		t.Errorf("message %q", msg)
	}
}

func TestWaitQuietArguments(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	if _, err := WaitQuiet(ctx, []string{dir}, 3*time.Second, time.Second, InactivityOptions{}); err == nil || !strings.Contains(err.Error(), "raise max-wait") {
		t.Errorf("max-wait < inactivity: %v", err)
	}
	if _, err := WaitQuiet(ctx, []string{dir + "/missing"}, time.Second, 0, InactivityOptions{}); err == nil {
		t.Error("a missing source was accepted")
	}
	if res, err := WaitQuiet(ctx, []string{dir}, 0, 0, InactivityOptions{}); err != nil || !res.Quiet {
		t.Errorf("zero inactivity: %+v %v", res, err)
	}
	// Nothing writes: polling returns after the quiet period.
	t0 := time.Now()
	res, err := WaitQuiet(ctx, []string{dir}, 100*time.Millisecond, time.Second, InactivityOptions{ForcePoll: true})
	if err != nil || !res.Quiet || res.Method != MethodPoll || time.Since(t0) > 600*time.Millisecond {
		t.Errorf("idle poll: %+v %v after %s", res, err, time.Since(t0))
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := WaitQuiet(cctx, []string{dir}, time.Second, 0, InactivityOptions{ForcePoll: true}); err == nil {
		t.Error("a cancelled context did not end the wait")
	}
}
