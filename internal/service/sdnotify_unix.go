//go:build !windows

package service

import (
	"net"
	"os"
	"strconv"
	"time"
)

// Notifier tells systemd about the daemon's state (sd_notify). A nil
// Notifier, which FromEnvironment returns outside systemd, does nothing.
type Notifier struct {
	addr     *net.UnixAddr
	watchdog time.Duration
}

// FromEnvironment reads NOTIFY_SOCKET and WATCHDOG_USEC and removes them
// from the environment, so that hooks and writers the daemon starts do not
// talk to systemd in its name.
func FromEnvironment() *Notifier {
	socket := os.Getenv("NOTIFY_SOCKET")
	if socket == "" {
		return nil
	}
	n := &Notifier{addr: &net.UnixAddr{Name: socket, Net: "unixgram"}}
	if socket[0] == '@' {
		n.addr.Name = "\x00" + socket[1:] // an abstract socket
	}
	if us, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64); err == nil && us > 0 {
		pid := os.Getenv("WATCHDOG_PID")
		if pid == "" || pid == strconv.Itoa(os.Getpid()) {
			n.watchdog = time.Duration(us) * time.Microsecond
		}
	}
	for _, v := range []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} {
		os.Unsetenv(v)
	}
	return n
}

// Send sends one notification, e.g. "READY=1" or "STATUS=…".
func (n *Notifier) Send(state string) error {
	if n == nil {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}

// WatchdogInterval is how often systemd expects WATCHDOG=1; 0 when it does
// not.
func (n *Notifier) WatchdogInterval() time.Duration {
	if n == nil {
		return 0
	}
	return n.watchdog
}
