package livefile

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
)

// Strategy is what to do with a file that is open for writing, locked or
// changing while it is read live.
type Strategy uint8

// The strategies. The zero Strategy is not one: a config must choose.
const (
	// StrategyRead reads every file once, without probing locks; one that
	// changed while read is stored anyway and flagged changed.
	StrategyRead Strategy = iota + 1
	// StrategyRetry reads again, with backoff, while the file changes under
	// the read or an exclusive lock is held on it; in the end a changing
	// file is stored flagged changed and a locked one fails.
	StrategyRetry
	// StrategySkip never stores a file that is open for writing, locked or
	// changing: it is deferred to the second pass at the end of the run,
	// and skipped (previous version kept) if it is still busy then.
	StrategySkip
	// StrategyStage copies a file open for writing to a staging directory,
	// with the checks and retries of StrategyRetry, then stores the still
	// copy: the copy is made at disk speed, so the window for a writer is
	// shorter than a read through the whole backup pipeline. Files nobody
	// has open are read as with StrategyRetry (see Config.StageAll).
	StrategyStage
)

var strategyNames = [...]string{StrategyRead: "read", StrategyRetry: "retry", StrategySkip: "skip", StrategyStage: "stage"}

func (s Strategy) String() string {
	if s >= StrategyRead && s <= StrategyStage {
		return strategyNames[s]
	}
	return fmt.Sprintf("strategy(%d)", uint8(s))
}

// ParseStrategy turns a name from a job config or a flag into a Strategy.
func ParseStrategy(name string) (Strategy, error) {
	for s := StrategyRead; s <= StrategyStage; s++ {
		if strategyNames[s] == name {
			return s, nil
		}
	}
	return 0, fmt.Errorf("unknown open-file strategy %q (want read, retry, skip or stage)", name)
}

// MarshalText implements encoding.TextMarshaler.
func (s Strategy) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Strategy) UnmarshalText(b []byte) error {
	v, err := ParseStrategy(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Retry limits.
const (
	DefaultRetries = 3
	MaxRetries     = 10
	// DefaultSecondPassRetries is how often a deferred file is read again
	// in the second pass after its first try there.
	DefaultSecondPassRetries = 1
	DefaultBackoff           = 50 * time.Millisecond
	DefaultMaxBackoff        = 2 * time.Second
)

// ParseRetries reads a retry count from a job config or a flag.
func ParseRetries(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("retries %q is not a number (want 0 to %d)", s, MaxRetries)
	}
	return n, checkRetries(n)
}

func checkRetries(n int) error {
	if n < 0 || n > MaxRetries {
		return fmt.Errorf("retries %d is out of range (want 0 to %d; each retry waits longer, up to %v)", n, MaxRetries, DefaultMaxBackoff)
	}
	return nil
}

// Clock sleeps between retries; tests replace it to run without waiting.
type Clock interface {
	// Sleep waits for d or until ctx is done, and then returns ctx.Err().
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Config configures a Reader.
type Config struct {
	Strategy Strategy
	// Retries is how many times retry and stage read a file again after
	// the first try (0 to MaxRetries; DefaultConfig sets DefaultRetries).
	Retries int
	// Backoff is the wait before the first retry, doubled for each further
	// one up to MaxBackoff (0: DefaultBackoff, DefaultMaxBackoff).
	Backoff    time.Duration
	MaxBackoff time.Duration
	// StagingDir is where stage copies files: a directory outside every
	// source (see CheckStagingDir). Required for StrategyStage. The Reader
	// works in a subdirectory of its own and removes it on Close.
	StagingDir string
	// StageAll makes stage copy every file, not only the ones open for
	// writing. Without an open-file scan (Open nil, or a platform without
	// one) stage copies every file anyway.
	StageAll bool
	// Open is the ScanOpenForWrite result of this run; nil knows of none.
	Open *OpenFiles
	// SecondPassRetries is the retry count of SecondPass (0 or 1; -1 means
	// DefaultSecondPassRetries).
	SecondPassRetries int
	// Clock sleeps between retries; nil means real time.
	Clock Clock
	// Rules are the path rules of the paths given to Read, for the
	// messages (nil: pathmap.Native, C:\data\x on Windows); tests use
	// the Windows rules on any platform.
	Rules *pathmap.Rules
}

// DefaultConfig is the retry strategy with DefaultRetries.
func DefaultConfig() Config {
	return Config{Strategy: StrategyRetry, Retries: DefaultRetries, SecondPassRetries: -1}
}

func (c *Config) check() error {
	if c.Strategy < StrategyRead || c.Strategy > StrategyStage {
		return errors.New("no open-file strategy set (want read, retry, skip or stage)")
	}
	if err := checkRetries(c.Retries); err != nil {
		return err
	}
	if c.SecondPassRetries == -1 {
		c.SecondPassRetries = DefaultSecondPassRetries
	}
	if c.SecondPassRetries < 0 || c.SecondPassRetries > 1 {
		return fmt.Errorf("second-pass retries %d is out of range (want 0 or 1)", c.SecondPassRetries)
	}
	if c.Strategy == StrategyStage && c.StagingDir == "" {
		return errors.New("the stage strategy needs a staging directory outside the sources")
	}
	if c.Backoff <= 0 {
		c.Backoff = DefaultBackoff
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.MaxBackoff < c.Backoff {
		c.MaxBackoff = c.Backoff
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	return nil
}

// backoff is the wait before retry number n (1-based).
func (c *Config) backoff(n int) time.Duration {
	d := c.Backoff
	for i := 1; i < n && d < c.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, c.MaxBackoff)
}
