// Command stillpoint backs up files that are open, locked or being written,
// and says per file when a restore cannot be promised to be whole.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/stillpoint-backup/stillpoint/internal/report"
	"github.com/stillpoint-backup/stillpoint/internal/run"
)

// Exit codes, documented in the README.
const (
	exitOK      = 0
	exitFatal   = 1
	exitUsage   = 2
	exitPartial = 3
)

type globals struct {
	access run.Access
	json   bool
	quiet  bool
}

func (g *globals) reporter() *report.Reporter {
	switch {
	case g.json:
		return report.New(report.JSON)
	case g.quiet:
		return report.New(report.Quiet)
	}
	return report.New(report.Human)
}

// exitError carries an exit code other than 1 up to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "stillpoint",
		Short:         "Backups of live files: point in time, or an honest word per file",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       run.Version,
	}
	pf := root.PersistentFlags()
	pf.StringVarP(&g.access.Repository, "repo", "r", "", "repository path (default $"+run.EnvRepository+", else "+run.DefaultRepository()+")")
	pf.StringVar(&g.access.PasswordFile, "password-file", "", "read the repository password from this file (or set $"+run.EnvPassword+")")
	pf.StringVar(&g.access.KeyFile, "key-file", "", "repository key file (default: the one created with the repository, in "+run.KeyDir()+")")
	pf.BoolVar(&g.json, "json", false, "print JSON: one object per event and a final summary")
	pf.BoolVarP(&g.quiet, "quiet", "q", false, "print errors only")
	root.AddCommand(
		newInitCmd(g), newBackupCmd(g), newSnapshotsCmd(g), newLsCmd(g),
		newRestoreCmd(g), newCheckCmd(g), newDiffCmd(g), newUnlockCmd(g), newDoctorCmd(g), newJobCmd(g),
	)
	return root
}

// defaultMemoryLimit keeps the garbage collector's headroom bounded on big
// backups (the live heap of 1,000,000 files is well below it).
const defaultMemoryLimit = 384 << 20

func main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	if os.Getenv("GOGC") == "" {
		// most of the heap is pointer-free buffers, cheap to mark: trade a
		// little CPU for a quarter of the default headroom
		debug.SetGCPercent(25)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stopProfiles := startProfiles()
	err := newRoot().ExecuteContext(ctx)
	stopProfiles()
	if err == nil {
		return
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(os.Stderr, "stillpoint:", ee.err)
		}
		os.Exit(ee.code)
	}
	fmt.Fprintln(os.Stderr, "stillpoint:", err)
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "stillpoint: interrupted; the repository is consistent, nothing was recorded for this run")
	}
	os.Exit(exitFatal)
}
