package service

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/mgr"
)

func installWindows(c Config) (*Installed, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	m, err := mgr.Connect()
	if err != nil {
		return nil, fmt.Errorf("connect to the service control manager (run as Administrator): %w", err)
	}
	defer m.Disconnect()
	if s, err := m.OpenService(Name); err == nil {
		s.Close()
		return nil, fmt.Errorf("the service %q is installed already: `stillpoint service uninstall` first", Name)
	}
	s, err := m.CreateService(Name, c.Binary, mgr.Config{
		DisplayName:      "stillpoint backup",
		Description:      "stillpoint backup service: schedules, retries of locked files, status page",
		StartType:        mgr.StartAutomatic,
		DelayedAutoStart: true,
	}, c.DaemonArgs()...)
	if err != nil {
		return nil, fmt.Errorf("create the service: %w", err)
	}
	defer s.Close()
	// restarted after a crash, 30 s later, as the systemd unit does
	_ = s.SetRecoveryActions([]mgr.RecoveryAction{
		{Type: mgr.ServiceRestart, Delay: 30 * time.Second},
		{Type: mgr.ServiceRestart, Delay: 30 * time.Second},
		{Type: mgr.ServiceRestart, Delay: 5 * time.Minute},
	}, uint32((24 * time.Hour).Seconds()))
	if err := s.Start(); err != nil {
		return &Installed{Steps: []string{"create service " + Name}}, fmt.Errorf("start the service: %w", err)
	}
	return &Installed{Enabled: true, Steps: []string{"create service " + Name, "start service " + Name}}, nil
}

func uninstallWindows() ([]string, error) {
	m, err := mgr.Connect()
	if err != nil {
		return nil, fmt.Errorf("connect to the service control manager (run as Administrator): %w", err)
	}
	defer m.Disconnect()
	s, err := m.OpenService(Name)
	if err != nil {
		return nil, fmt.Errorf("the service %q is not installed: %w", Name, err)
	}
	defer s.Close()
	steps := []string{"stop service " + Name}
	if st, err := s.Control(svc.Stop); err == nil {
		deadline := time.Now().Add(5 * time.Minute)
		for st.State != svc.Stopped && time.Now().Before(deadline) {
			time.Sleep(time.Second)
			if st, err = s.Query(); err != nil {
				break
			}
		}
	} else if !errors.Is(err, windows.ERROR_SERVICE_NOT_ACTIVE) {
		return steps, fmt.Errorf("stop the service: %w", err)
	}
	steps = append(steps, "delete service "+Name)
	if err := s.Delete(); err != nil {
		return steps, fmt.Errorf("delete the service: %w", err)
	}
	return steps, nil
}
