//go:build !windows

package service

import "context"

// RunUnderManager reports false: only Windows starts the daemon through an
// API of its own; systemd and launchd start it as a plain process.
func RunUnderManager(func(ctx context.Context) error) (bool, error) { return false, nil }
