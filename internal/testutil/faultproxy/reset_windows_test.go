package faultproxy_test

import (
	"errors"
	"io"

	"golang.org/x/sys/windows"
)

// isReset: under Wine 8 a reset in the middle of a response body reaches
// the client as the body's early end.
func isReset(err error) bool {
	return errors.Is(err, windows.WSAECONNRESET) || errors.Is(err, io.ErrUnexpectedEOF)
}
