package service

import (
	"context"
	"strings"
	"time"
)

// Ready says the daemon has read its jobs and serves.
func (n *Notifier) Ready() error { return n.Send("READY=1") }

// Reloading says a reload (SIGHUP) began; Ready ends it.
func (n *Notifier) Reloading() error { return n.Send("RELOADING=1") }

// Stopping says the daemon is shutting down.
func (n *Notifier) Stopping() error { return n.Send("STOPPING=1") }

// Status is a line systemctl status shows, e.g. "next: home in 4h".
func (n *Notifier) Status(s string) error {
	return n.Send("STATUS=" + strings.ReplaceAll(s, "\n", " "))
}

// KeepAlive sends WATCHDOG=1 at half the interval systemd asked for while
// alive reports true, until ctx ends. alive is the daemon's own health
// check (its loop still turns): a daemon that hangs stops pinging and
// systemd restarts it.
func (n *Notifier) KeepAlive(ctx context.Context, alive func() bool) {
	every := n.WatchdogInterval() / 2
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if alive == nil || alive() {
				_ = n.Send("WATCHDOG=1")
			}
		}
	}
}
