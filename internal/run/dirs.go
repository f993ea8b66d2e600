package run

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// JobsDir is where job files are looked up by name: /etc/stillpoint/jobs.d
// for root, else the XDG config directory.
func JobsDir() string {
	if os.Geteuid() == 0 {
		return "/etc/stillpoint/jobs.d"
	}
	return filepath.Join(xdg("XDG_CONFIG_HOME", ".config"), "stillpoint", "jobs.d")
}

// StateDir is where the jobs' retry queues (and the daemon's state) are
// kept: /var/lib/stillpoint/state for root, else the XDG state directory.
func StateDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/stillpoint/state"
	}
	return filepath.Join(xdg("XDG_STATE_HOME", ".local/state"), "stillpoint")
}

// JobName is the name of the job in a job file: its file name without
// .yaml or .yml. It names the job's retry queue, so the daemon and
// `stillpoint run` share one.
func JobName(path string) string {
	base := filepath.Base(path)
	for _, ext := range []string{".yaml", ".yml"} {
		if n, ok := strings.CutSuffix(base, ext); ok && n != "" {
			return n
		}
	}
	return base
}

// FindJob returns the job file that arg names: a file, or a job's name
// looked up in dir as NAME.yaml, NAME.yml or NAME.
func FindJob(arg, dir string) (string, error) {
	if st, err := os.Stat(arg); err == nil && !st.IsDir() {
		return arg, nil
	}
	if !strings.ContainsAny(arg, `/\`) {
		for _, name := range []string{arg + ".yaml", arg + ".yml", arg} {
			p := filepath.Join(dir, name)
			if st, err := os.Stat(p); err == nil && !st.IsDir() {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("no job %q: neither a job file nor %s.yaml in %s (--jobs names another directory)", arg, arg, dir)
}
