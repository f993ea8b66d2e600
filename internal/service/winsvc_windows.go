package service

import (
	"context"

	"golang.org/x/sys/windows/svc"
)

// RunUnderManager runs the daemon as a Windows service when the service
// control manager started the process: run gets a context that is
// cancelled on Stop or Shutdown. It reports false when the process was
// started otherwise, and the caller runs the daemon itself.
func RunUnderManager(run func(ctx context.Context) error) (bool, error) {
	isService, err := svc.IsWindowsService()
	if err != nil || !isService {
		return false, err
	}
	h := &handler{run: run}
	if err := svc.Run(Name, h); err != nil {
		return true, err
	}
	return true, h.err
}

type handler struct {
	run func(ctx context.Context) error
	err error
}

func (h *handler) Execute(_ []string, requests <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	status <- svc.Status{State: svc.StartPending}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.run(ctx) }()
	status <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	for {
		select {
		case h.err = <-done:
			status <- svc.Status{State: svc.StopPending}
			if h.err != nil {
				return true, 1
			}
			return false, 0
		case r := <-requests:
			switch r.Cmd {
			case svc.Interrogate:
				status <- r.CurrentStatus
			case svc.Stop, svc.Shutdown:
				// the run in progress aborts and releases its shadow copies
				status <- svc.Status{State: svc.StopPending, WaitHint: 300000}
				cancel()
			}
		}
	}
}
