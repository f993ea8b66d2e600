//go:build !linux

package quiesce

import (
	"context"
	"fmt"
	"runtime"
)

// fanotifyQuiet is Linux only; elsewhere WaitQuiet polls.
func fanotifyQuiet(ctx context.Context, roots []string, tr *quietTracker, res *InactivityResult) (bool, error) {
	return false, fmt.Errorf("fanotify is Linux only, this is %s; polling instead", runtime.GOOS)
}
