package vss

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Error is a failed step of the requester.
type Error struct {
	// Phase is the VSS call that failed, e.g. "DoSnapshotSet".
	Phase string
	// Code is the failure HRESULT; 0 for a timeout or a cancelled run.
	Code HRESULT
	// Volume is the volume the call was about, when it was about one.
	Volume string
	// Writer names the writer whose failure this is, with its state.
	Writer      string
	WriterState WriterState
	// Timeout is the limit that passed, TimeoutKey the job key setting it.
	Timeout    time.Duration
	TimeoutKey string
	// Err is a cause that is no HRESULT (the run's context).
	Err error
	// Attempts is how many times the set was tried.
	Attempts int
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("VSS " + e.Phase)
	if e.Volume != "" {
		b.WriteString(" of " + e.Volume)
	}
	switch {
	case e.Timeout > 0:
		fmt.Fprintf(&b, " did not finish within %s (%s): cancelled and aborted; a writer or the provider hangs: "+
			"`vssadmin list writers` shows their states; raise %s if it is only slow", e.Timeout, e.TimeoutKey, e.TimeoutKey)
	case e.Writer != "":
		fmt.Fprintf(&b, ": writer %q is in state %s", e.Writer, e.WriterState)
		if e.Code != 0 {
			fmt.Fprintf(&b, ": %s: %s", e.Code, e.Code.Advice())
		}
	case e.Code != 0:
		fmt.Fprintf(&b, ": %s: %s", e.Code, e.Code.Advice())
	case e.Err != nil:
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " (after %d attempts)", e.Attempts)
	}
	return b.String()
}

// Unwrap returns the HRESULT or the context's error.
func (e *Error) Unwrap() error {
	if e.Err != nil {
		return e.Err
	}
	if e.Code != 0 {
		return e.Code
	}
	return nil
}

// Code returns the HRESULT in err's chain, or 0.
func Code(err error) HRESULT {
	var h HRESULT
	if errors.As(err, &h) {
		return h
	}
	return 0
}

// asError makes err from a VSS call an *Error of phase.
func asError(phase string, err error) *Error {
	var ve *Error
	if errors.As(err, &ve) {
		return ve
	}
	var h HRESULT
	if errors.As(err, &h) {
		return &Error{Phase: phase, Code: h}
	}
	return &Error{Phase: phase, Err: err}
}
