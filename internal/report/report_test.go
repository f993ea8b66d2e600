package report

import (
	"bytes"
	"testing"
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
