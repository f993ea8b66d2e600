package service

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Runner runs a system command (systemctl, launchctl) and returns its
// combined output.
type Runner interface {
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
}

// ExecRunner runs commands for real.
type ExecRunner struct{}

// Run runs name with args.
func (ExecRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	return exec.CommandContext(ctx, name, args...).CombinedOutput()
}

// Manager installs and removes the service of one platform.
type Manager struct {
	// OS is "linux" (systemd), "darwin" (launchd) or "windows".
	OS string
	// Runner runs systemctl or launchctl; nil writes the files only (for
	// packaging, where the package's scripts enable the service).
	Runner Runner
	// Root prefixes every file written or removed ("" is /), for packaging
	// into a staging tree.
	Root string
}

// Installed says what Install did, for the user.
type Installed struct {
	File    string   // the unit or plist written ("" on Windows)
	Enabled bool     // started now and at boot
	Steps   []string // the commands run, as a user would type them
}

// ErrNotSupported is returned for a platform without a service manager we
// know.
var ErrNotSupported = errors.New("no service manager known on this platform")

// Install writes the service definition and enables and starts it.
func (m Manager) Install(ctx context.Context, c Config) (*Installed, error) {
	switch m.OS {
	case "linux":
		text, err := SystemdUnit(c)
		if err != nil {
			return nil, err
		}
		return m.installFile(ctx, UnitPath, text, [][]string{
			{"systemctl", "daemon-reload"},
			{"systemctl", "enable", "--now", Name + ".service"},
		})
	case "darwin":
		text, err := LaunchdPlist(c)
		if err != nil {
			return nil, err
		}
		return m.installFile(ctx, PlistPath, text, [][]string{
			{"launchctl", "bootstrap", "system", PlistPath},
		})
	case "windows":
		return installWindows(c)
	}
	return nil, fmt.Errorf("%w (%s)", ErrNotSupported, m.OS)
}

// Uninstall stops and disables the service and removes its definition.
// Job files, keys, the repository and the history stay.
func (m Manager) Uninstall(ctx context.Context) ([]string, error) {
	switch m.OS {
	case "linux":
		return m.uninstallFile(ctx, UnitPath,
			[]string{"systemctl", "disable", "--now", Name + ".service"},
			[]string{"systemctl", "daemon-reload"})
	case "darwin":
		return m.uninstallFile(ctx, PlistPath,
			[]string{"launchctl", "bootout", "system/" + LaunchdLabel}, nil)
	case "windows":
		return uninstallWindows()
	}
	return nil, fmt.Errorf("%w (%s)", ErrNotSupported, m.OS)
}

func (m Manager) path(p string) string {
	if m.Root == "" {
		return p
	}
	return filepath.Join(m.Root, filepath.FromSlash(p))
}

func (m Manager) installFile(ctx context.Context, file, text string, steps [][]string) (*Installed, error) {
	target := m.path(file)
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return nil, err
	}
	tmp := target + ".new"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, target); err != nil {
		_ = os.Remove(tmp)
		return nil, err
	}
	res := &Installed{File: target}
	if m.Runner == nil {
		return res, nil
	}
	for _, s := range steps {
		res.Steps = append(res.Steps, strings.Join(s, " "))
		if err := m.run(ctx, s); err != nil {
			return res, err
		}
	}
	res.Enabled = true
	return res, nil
}

func (m Manager) uninstallFile(ctx context.Context, file string, stop, after []string) ([]string, error) {
	target := m.path(file)
	if _, err := os.Stat(target); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("the service is not installed (%s does not exist)", target)
	}
	var steps []string
	if m.Runner != nil {
		steps = append(steps, strings.Join(stop, " "))
		// a unit that is not loaded cannot be stopped: removing its file
		// is still right, so a failed stop is reported after the removal
		stopErr := m.run(ctx, stop)
		if err := os.Remove(target); err != nil {
			return steps, err
		}
		if after != nil {
			steps = append(steps, strings.Join(after, " "))
			if err := m.run(ctx, after); err != nil {
				return steps, err
			}
		}
		return steps, stopErr
	}
	return steps, os.Remove(target)
}

func (m Manager) run(ctx context.Context, argv []string) error {
	out, err := m.Runner.Run(ctx, argv[0], argv[1:]...)
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if msg != "" {
			return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, msg)
		}
		return fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	return nil
}
