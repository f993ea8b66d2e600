package livefile

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/view"
)

// lstatCounter is the live view that counts its Lstat calls.
type lstatCounter struct {
	view.Live
	n atomic.Int32
}

func (c *lstatCounter) Lstat(p string) (*view.Stat, error) {
	c.n.Add(1)
	return c.Live.Lstat(p)
}

// readLikeArchiver reads as the archiver reads a small file: one buffer of
// the size plus one, until EOF.
func readLikeArchiver(f view.File, st *view.Stat) error {
	buf := make([]byte, st.Size+1)
	_, err := io.ReadFull(f, buf)
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return nil
	}
	if err == nil {
		_, err = io.Copy(io.Discard, f)
	}
	return err
}

// With the walk's lstat the first try takes none of its own, and a file
// that grows after the read that ended it (one short read at its size, no
// read of 0 bytes to see the end) is still caught changed by the fstat
// after the read.
func TestReadListedSavesLstatAndCatchesGrowth(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	writeFile(t, p, 5)
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	v := &lstatCounter{}
	listed, err := v.Live.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []Strategy{StrategyRead, StrategyRetry, StrategySkip} {
		r, err := NewReader(Config{Strategy: s, Retries: 0, Clock: &fakeClock{}})
		if err != nil {
			t.Fatal(err)
		}
		v.n.Store(0)
		res := r.ReadListed(context.Background(), v, p, listed, readLikeArchiver)
		if res.Outcome != outcome.OK || !res.Stored || v.n.Load() != 0 {
			t.Fatalf("%v, unchanged file: %+v with %d lstats, want ok and no lstat", s, res, v.n.Load())
		}
	}

	r, err := NewReader(Config{Strategy: StrategyRead})
	if err != nil {
		t.Fatal(err)
	}
	res := r.ReadListed(context.Background(), v, p, listed, func(f view.File, st *view.Stat) error {
		if err := readLikeArchiver(f, st); err != nil {
			return err
		}
		w, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		defer w.Close()
		_, err = w.WriteString(" and more")
		return err
	})
	if res.Outcome != outcome.Changed || !res.Stored || !strings.Contains(res.Detail, "size 5 → 14") {
		t.Fatalf("file grown after its read: %+v, want changed with size 5 → 14", res)
	}
}

// A path that became a FIFO after the walk listed it is not waited on nor
// read: it is no longer the regular file that was listed.
func TestReadListedFileReplacedByFIFO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	writeFile(t, p, 5)
	listed, err := (&view.Live{}).Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(Config{Strategy: StrategyRead})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan Result, 1)
	go func() {
		done <- r.ReadListed(context.Background(), &view.Live{}, p, listed, func(view.File, *view.Stat) error {
			return errors.New("read a FIFO")
		})
	}()
	select {
	case res := <-done:
		if res.Outcome != outcome.Failed || res.Reason != outcome.ReasonVanished || res.Err == nil {
			t.Fatalf("file replaced by a FIFO: %+v, want failed/vanished", res)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the read waits on a FIFO")
	}
}
