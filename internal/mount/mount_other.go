//go:build !linux

package mount

import (
	"context"
	"errors"
	"runtime"
)

// ErrUnsupported: the mount is for Linux only so far.
var ErrUnsupported = errors.New("stillpoint mount works on Linux only (FUSE) so far; on " + runtime.GOOS + " use `stillpoint restore` or `stillpoint dump`")

// Available tells why FUSE cannot be used here.
func Available() error { return ErrUnsupported }

// Serve fails: there is no mount on this platform yet.
func Serve(ctx context.Context, r Repo, dir string, opts Options) error { return ErrUnsupported }
