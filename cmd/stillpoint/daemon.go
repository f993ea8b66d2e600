package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/stillpoint-backup/stillpoint/internal/daemon"
	"github.com/stillpoint-backup/stillpoint/internal/run"
	"github.com/stillpoint-backup/stillpoint/internal/service"
	"github.com/stillpoint-backup/stillpoint/internal/statedir"
	"github.com/stillpoint-backup/stillpoint/internal/web"
)

func newDaemonCmd(g *globals) *cobra.Command {
	var o daemon.Options
	var tokenFile string
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run every job of the jobs directory on its schedule, with status pages and metrics",
		Long: `Run the jobs of the jobs directory (every *.yaml file) on their schedule: lines,
retry the files a run could not back up at the retry queue's next attempt (a
follow-up run), drill the jobs whose drill: section has a schedule: on it (the
newest snapshot restored to scratch and verified, one drill at a time), record
every run and drill in history.db in the state directory, notify as each job's
notify: says, and serve the status pages, the JSON API and /metrics on --listen
(default ` + web.DefaultAddr + `).

SIGHUP reads the jobs directory again; a job file with errors is reported with
its line and the other jobs go on. SIGTERM cancels the runs in progress (their
snapshots are released, their on-error hooks run), records them and exits 0.
Under systemd the daemon reports readiness, status and watchdog pings; the unit
of 'stillpoint service install' runs it.`,
		Example: `  sudo stillpoint daemon                                   # /etc/stillpoint/jobs.d, 127.0.0.1:8417
  stillpoint daemon --jobs ./jobs.d --state-dir ./state --listen 127.0.0.1:0
  stillpoint daemon --listen 0.0.0.0:8417 --token-file /etc/stillpoint/web-token`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if tokenFile != "" {
				token, err := os.ReadFile(tokenFile)
				if err != nil {
					return &exitError{code: exitUsage, err: err}
				}
				o.Web.Token = string(trimNewline(token))
			}
			o.Access = g.access
			return runDaemon(cmd.Context(), o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.JobsDir, "jobs", run.JobsDir(), "directory of the job files (*.yaml)")
	fl.StringVar(&o.StateDir, "state-dir", statedir.Default(), "directory of history.db and the retry queues")
	fl.StringVar(&o.Web.Addr, "listen", web.DefaultAddr, "address of the status pages, the API and /metrics (port 0: any free one, logged)")
	fl.StringVar(&tokenFile, "token-file", "", "file holding the token the pages and the API ask for (needed to listen beyond loopback, or --basic-auth-file)")
	fl.StringVar(&o.Web.BasicAuthFile, "basic-auth-file", "", "htpasswd -B file of the users the pages admit")
	fl.StringVar(&o.Web.CertFile, "tls-cert", "", "PEM certificate: serve HTTPS (with --tls-key)")
	fl.StringVar(&o.Web.KeyFile, "tls-key", "", "PEM private key of --tls-cert")
	return cmd
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// runDaemon runs the daemon until ctx ends (SIGTERM, SIGINT) or, on
// Windows, the service manager stops it.
func runDaemon(ctx context.Context, o daemon.Options) error {
	if err := web.CheckOptions(o.Web); err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	o.Manager = service.FromEnvironment()
	o.Inhibitor = service.SleepInhibitor()
	serve := func(ctx context.Context) error {
		d, err := daemon.New(o)
		if err != nil {
			return err
		}
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-hup:
					d.Reload(ctx)
				}
			}
		}()
		return d.Run(ctx)
	}
	if managed, err := service.RunUnderManager(serve); managed {
		return err
	}
	return serve(ctx)
}
