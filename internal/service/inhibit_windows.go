package service

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/windows"
)

var setThreadExecutionState = windows.NewLazySystemDLL("kernel32.dll").NewProc("SetThreadExecutionState")

const (
	esContinuous     = 0x80000000
	esSystemRequired = 0x00000001
)

// SleepInhibitor keeps Windows from sleeping with SetThreadExecutionState,
// which holds for the thread that called it: one locked thread holds it
// until release.
func SleepInhibitor() Inhibitor { return threadInhibitor{} }

type threadInhibitor struct{}

func (threadInhibitor) Inhibit(string) (func(), error) {
	if err := setThreadExecutionState.Find(); err != nil {
		return nil, fmt.Errorf("keep the machine awake: %w", err)
	}
	taken := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if r, _, err := setThreadExecutionState.Call(esContinuous | esSystemRequired); r == 0 {
			taken <- fmt.Errorf("keep the machine awake: SetThreadExecutionState: %w", err)
			return
		}
		taken <- nil
		<-done
		setThreadExecutionState.Call(esContinuous)
	}()
	if err := <-taken; err != nil {
		return nil, err
	}
	return func() { close(done) }, nil
}
