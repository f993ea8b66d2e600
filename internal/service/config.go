package service

import (
	"errors"
	"fmt"
	"path/filepath"
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
func (c Config) Validate() error {
	if c.Binary == "" {
		return errors.New("the service needs the path of the stillpoint binary")
	}
	if !filepath.IsAbs(c.Binary) && !strings.HasPrefix(c.Binary, `\\`) && !isWindowsAbs(c.Binary) {
		return fmt.Errorf("the service needs an absolute path of the binary, not %q", c.Binary)
	}
	for _, d := range []struct{ name, path string }{{"jobs directory", c.JobsDir}, {"state directory", c.StateDir}} {
		if d.path != "" && !filepath.IsAbs(d.path) && !isWindowsAbs(d.path) {
			return fmt.Errorf("the %s must be an absolute path, not %q", d.name, d.path)
		}
	}
	return nil
}

func isWindowsAbs(p string) bool {
	return len(p) >= 3 && p[1] == ':' && (p[2] == '\\' || p[2] == '/')
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
