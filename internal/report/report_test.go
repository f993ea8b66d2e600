package report

import (
	"bytes"
	"testing"
	"time"
)

// Step writes a phase on Err before it returns, in human mode only, so a
// verdict printed after it comes after it.
func TestStep(t *testing.T) {
	for _, c := range []struct {
		mode Mode
		want string
	}{{Human, "loading index\n"}, {JSON, ""}, {Quiet, ""}} {
		var out bytes.Buffer
		r := &Reporter{Mode: c.mode, Out: &out, Err: &out}
		r.Step("loading index")
		r.Printf("no errors\n")
		want := c.want
		if c.mode == Human {
			want += "no errors\n"
		}
		if out.String() != want {
			t.Errorf("mode %d: %q, want %q", c.mode, out.String(), want)
		}
	}
}

// A status event of a phase that counts something other than files says
// what it counts; a backup's does not change.
func TestStatusEventUnit(t *testing.T) {
	ev := statusEvent("walking trees", Status{FilesDone: 7, Unit: "trees"}, time.Second)
	if ev["unit"] != "trees" || ev["files_done"] != int64(7) {
		t.Fatalf("event %v", ev)
	}
	if _, ok := statusEvent("backup", Status{FilesDone: 7}, time.Second)["unit"]; ok {
		t.Fatal("a backup's status names a unit")
	}
}

func TestCount(t *testing.T) {
	for n, want := range map[int]string{0: "0 snapshots", 1: "1 snapshot", 2: "2 snapshots"} {
		if got := Count(n, "snapshot"); got != want {
			t.Errorf("Count(%d) = %q, want %q", n, got, want)
		}
	}
}
