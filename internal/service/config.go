package service

import (
	"errors"
	"fmt"
	"strings"
)

// Name is the service's name on every platform: the systemd unit is
// stillpoint.service, the Windows service "stillpoint".
const Name = "stillpoint"

// LaunchdLabel names the launchd daemon on macOS.
const LaunchdLabel = "org.stillpoint.daemon"

// Config says how the service starts the daemon.
type Config struct {
	// Binary is the absolute path of the stillpoint executable.
	Binary string
	// JobsDir is the directory of job files; "" leaves the daemon's default.
	JobsDir string
	// StateDir is where the daemon keeps its history and retry queues; ""
	// leaves the daemon's default.
	StateDir string
	// Listen is the status page's address; "" leaves the daemon's default.
	Listen string
	// Extra are further daemon arguments, passed as they are.
	Extra []string
}

// Validate reports a configuration a service manager could not start.
// Paths are judged by the forms of every platform, not the host's: the
// unit for a Linux machine may be written on another (--os, --root).
func (c Config) Validate() error {
	if c.Binary == "" {
		return errors.New("the service needs the path of the stillpoint binary")
	}
	if !isAbs(c.Binary) {
		return fmt.Errorf("the service needs an absolute path of the binary, not %q", c.Binary)
	}
	for _, d := range []struct{ name, path string }{{"jobs directory", c.JobsDir}, {"state directory", c.StateDir}} {
		if d.path != "" && !isAbs(d.path) {
			return fmt.Errorf("the %s must be an absolute path, not %q", d.name, d.path)
		}
	}
	return nil
}

// isAbs accepts /unix/paths, C:\windows\paths and \\server\share paths.
func isAbs(p string) bool {
	switch {
	case strings.HasPrefix(p, "/"), strings.HasPrefix(p, `\\`):
		return true
	case len(p) >= 3 && p[1] == ':' && (p[2] == '\\' || p[2] == '/'):
		return true
	}
	return false
}

// DaemonArgs are the arguments after the binary: "daemon" and the options.
func (c Config) DaemonArgs() []string {
	args := []string{"daemon"}
	if c.JobsDir != "" {
		args = append(args, "--jobs", c.JobsDir)
	}
	if c.StateDir != "" {
		args = append(args, "--state-dir", c.StateDir)
	}
	if c.Listen != "" {
		args = append(args, "--listen", c.Listen)
	}
	return append(args, c.Extra...)
}
