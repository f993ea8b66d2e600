// Package statedir says where stillpoint keeps the state that outlives a
// run: the run history and the queue of files to retry.
package statedir

import (
	"os"
	"path/filepath"
)

// Default is /var/lib/stillpoint/state as root, else
// $XDG_STATE_HOME/stillpoint (~/.local/state/stillpoint). Commands take
// --state-dir to choose another.
func Default() string {
	if os.Geteuid() == 0 {
		return "/var/lib/stillpoint/state"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "stillpoint")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = "."
	}
	return filepath.Join(home, ".local", "state", "stillpoint")
}
