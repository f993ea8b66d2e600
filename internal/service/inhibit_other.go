//go:build !linux && !darwin && !windows

package service

import "errors"

// SleepInhibitor has nothing to hold on this platform.
func SleepInhibitor() Inhibitor { return noInhibitor{} }

type noInhibitor struct{}

func (noInhibitor) Inhibit(string) (func(), error) {
	return nil, errors.New("keeping the machine awake is not supported on this platform")
}
