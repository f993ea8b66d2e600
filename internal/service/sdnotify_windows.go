package service

import "time"

// Notifier does nothing on Windows: the service control manager learns the
// daemon's state through RunUnderManager.
type Notifier struct{}

// FromEnvironment returns nil on Windows.
func FromEnvironment() *Notifier { return nil }

// Send does nothing.
func (n *Notifier) Send(string) error { return nil }

// WatchdogInterval is 0.
func (n *Notifier) WatchdogInterval() time.Duration { return 0 }
