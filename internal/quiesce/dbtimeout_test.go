package quiesce

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// A PostgreSQL or MySQL writer whose time runs out before it could check
// that one snapshot holds the server's files (here: before it connected)
// cannot tell that the snapshot is good, so it fails even with
// on-timeout: snap; with a dump hook (AllowUncoveredFiles) the dump is the
// backup, and the run may go on.
func TestDBTimeoutBeforeCoverageCheck(t *testing.T) {
	for _, c := range []struct {
		name string
		new  func(opts ...DBOption) Writer
	}{
		{"postgres", func(opts ...DBOption) Writer {
			return NewPostgres("host=127.0.0.1 port=1 user=x connect_timeout=30", time.Nanosecond, opts...)
		}},
		{"mysql", func(opts ...DBOption) Writer {
			return NewMySQL("x@tcp(127.0.0.1:1)/?timeout=30s", time.Nanosecond, opts...)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			fr, err := SnapOnTimeout(c.new()).Freeze(context.Background(), FreezeInfo{Covered: map[string]string{"/": "crash"}})
			var te *TimeoutError
			if err == nil || errors.As(err, &te) || !strings.Contains(err.Error(), "on-timeout: snap does not apply") {
				t.Fatalf("freeze: %+v, %v; want a plain error saying snap does not apply", fr, err)
			}
			w := SnapOnTimeout(c.new(AllowUncoveredFiles()))
			fr, err = w.Freeze(context.Background(), FreezeInfo{})
			if err != nil || fr.Timeout == nil || fr.Timeout.CrashConsistent || len(fr.Timeout.NotWhole) != 0 || !strings.Contains(fr.Timeout.Error(), "dump") {
				t.Fatalf("with a dump hook: %+v, %v", fr, err)
			}
			if err := w.Thaw(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Once a PostgreSQL or MySQL writer has checked that one snapshot holds
// the server's files, running out of time (a slow CHECKPOINT, a FLUSH
// TABLES WITH READ LOCK behind a long write) is crash-consistent; the
// run's cancellation is no timeout.
func TestDBTimeoutAfterCoverageCheck(t *testing.T) {
	expired := func() context.Context {
		ctx, cancel := freezeContext(context.Background(), time.Nanosecond)
		t.Cleanup(cancel)
		<-ctx.Done()
		return ctx
	}
	p := NewPostgres("host=127.0.0.1 port=1 user=x", time.Second)
	p.oneVolume = true
	var te *TimeoutError
	if err := p.fail(expired(), "CHECKPOINT", errors.New("canceling statement")); !errors.As(err, &te) || !te.CrashConsistent || !strings.Contains(err.Error(), "replays its WAL") {
		t.Errorf("postgres: %v", err)
	}
	m := NewMySQL("x@tcp(127.0.0.1:1)/", time.Second)
	m.oneVolume = true
	if err := m.fail(expired(), "FLUSH TABLES WITH READ LOCK", errors.New("killed")); !errors.As(err, &te) || !te.CrashConsistent {
		t.Errorf("mysql: %v", err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	ctx, stop := freezeContext(cancelled, time.Hour)
	defer stop()
	if err := p.fail(ctx, "CHECKPOINT", errors.New("canceling statement")); errors.As(err, &te) {
		t.Errorf("a cancelled run is a timeout: %v", err)
	}
}

// A timeout error from the deadline ctx gave a dial is the freeze
// timeout's even when it comes before ctx's own timer fired.
func TestAwaitDeadlineLetsTheContextCatchUp(t *testing.T) {
	ctx, cancel := freezeContext(context.Background(), 300*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	awaitDeadline(ctx, errors.New("connection refused"))
	if ctx.Err() != nil || time.Since(t0) > 100*time.Millisecond {
		t.Fatalf("a plain error waited %s (ctx %v)", time.Since(t0), ctx.Err())
	}
	awaitDeadline(ctx, fmt.Errorf("dial: %w", os.ErrDeadlineExceeded))
	if !freezeTimedOut(ctx) {
		t.Fatalf("after a deadline error: ctx %v, cause %v", ctx.Err(), context.Cause(ctx))
	}
}
