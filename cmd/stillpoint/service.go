package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/spf13/cobra"
	"github.com/stillpoint-backup/stillpoint/internal/service"
)

func newServiceCmd(g *globals) *cobra.Command {
	var c service.Config
	var root, platform string
	cmd := &cobra.Command{
		Use:   "service",
		Short: "Install or remove the stillpoint daemon as a system service",
		Long: `Install the daemon (stillpoint daemon) as a system service: a systemd unit on Linux
(Type=notify, watchdog, restarted on failure), a launchd daemon on macOS and a Windows
service. The service runs every job file in the jobs directory on its schedule.`,
		Example: `  sudo stillpoint service install
  stillpoint service unit > stillpoint.service
  sudo stillpoint service uninstall`,
		Args: noArgs,
	}
	flags := func(c2 *cobra.Command) {
		c2.Flags().StringVar(&c.Binary, "binary", "", "the stillpoint binary the service runs (default: this one)")
		c2.Flags().StringVar(&c.JobsDir, "jobs", "", "the directory of job files (default: the daemon's)")
		c2.Flags().StringVar(&c.StateDir, "state-dir", "", "the daemon's state directory (default: the daemon's)")
		c2.Flags().StringVar(&c.Listen, "listen", "", "the status page's address (default: the daemon's)")
	}
	platformFlag := func(c2 *cobra.Command) {
		c2.Flags().StringVar(&platform, "os", runtime.GOOS, "the platform to write for: linux, darwin or windows")
	}
	install := &cobra.Command{
		Use:   "install",
		Short: "Write the service definition, enable and start it",
		Example: `  sudo stillpoint service install
  sudo stillpoint service install --jobs /srv/backup/jobs.d --listen 127.0.0.1:8424
  stillpoint service install --root pkgroot   # write the unit into a staging tree only`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bin, err := serviceBinary(c.Binary)
			if err != nil {
				return err
			}
			c.Binary = bin
			m := service.Manager{OS: platform, Root: root}
			if root == "" {
				m.Runner = service.ExecRunner{}
			}
			res, err := m.Install(cmd.Context(), c)
			rep := g.reporter()
			if res != nil {
				if res.File != "" {
					rep.Printf("wrote %s\n", res.File)
				}
				for _, s := range res.Steps {
					rep.Printf("ran %s\n", s)
				}
				rep.Event(map[string]any{"type": "service_installed", "file": res.File, "enabled": res.Enabled, "steps": res.Steps})
			}
			if err != nil {
				return err
			}
			if res.Enabled {
				rep.Printf("the service is enabled and started; `stillpoint service uninstall` removes it\n")
			}
			return nil
		},
	}
	flags(install)
	platformFlag(install)
	install.Flags().StringVar(&root, "root", "", "write the files under this directory and run nothing (for packaging)")

	uninstall := &cobra.Command{
		Use:     "uninstall",
		Short:   "Stop and disable the service and remove its definition (jobs, keys and repository stay)",
		Example: `  sudo stillpoint service uninstall`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			steps, err := service.Manager{OS: runtime.GOOS, Runner: service.ExecRunner{}}.Uninstall(cmd.Context())
			rep := g.reporter()
			for _, s := range steps {
				rep.Printf("ran %s\n", s)
			}
			rep.Event(map[string]any{"type": "service_uninstalled", "steps": steps})
			return err
		},
	}

	unit := &cobra.Command{
		Use:   "unit",
		Short: "Print the systemd unit (or, with --os darwin, the launchd plist) install would write",
		Example: `  stillpoint service unit
  stillpoint service unit --os darwin --binary /usr/local/bin/stillpoint`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bin, err := serviceBinary(c.Binary)
			if err != nil {
				return err
			}
			c.Binary = bin
			var text string
			switch platform {
			case "linux":
				text, err = service.SystemdUnit(c)
			case "darwin":
				text, err = service.LaunchdPlist(c)
			default:
				return &exitError{code: exitUsage, err: fmt.Errorf("--os %s has no unit file: the Windows service is created by `service install` on Windows", platform)}
			}
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), text)
			return err
		},
	}
	flags(unit)
	platformFlag(unit)
	cmd.AddCommand(install, uninstall, unit)
	return cmd
}

// serviceBinary is the binary a service runs: the one given, or this
// one — unless this one is a `go run` build, which is gone after it exits.
func serviceBinary(given string) (string, error) {
	if given != "" {
		return filepath.Abs(given)
	}
	bin, err := os.Executable()
	if err != nil {
		return "", err
	}
	if resolved, err := filepath.EvalSymlinks(bin); err == nil {
		bin = resolved
	}
	if strings.Contains(bin, string(filepath.Separator)+"go-build") {
		return "", fmt.Errorf("this stillpoint was built by `go run` into a temporary directory: install the binary (go install, or the .deb) and run `service install` with it, or give --binary")
	}
	return bin, nil
}
