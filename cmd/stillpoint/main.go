// Command stillpoint backs up files that are open, locked or being written,
// and says per file when a restore cannot be promised to be whole.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/stillpoint-backup/stillpoint/internal/buildinfo"
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
	access   run.Access
	json     bool
	quiet    bool
	cacheDir string
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

func newRootFor(g *globals) *cobra.Command {
	g.access.Meter = run.NewMeter()
	root := &cobra.Command{
		Use:           "stillpoint",
		Short:         "Backups of live files: point in time, or an honest word per file",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       buildinfo.Version(),
		// `generate --completion` writes the scripts, and its page says so
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
		Example: `  stillpoint backup ~/Documents                  # the first backup creates the repository
  stillpoint snapshots
  stillpoint restore latest --target /tmp/restore`,
	}
	// --version says what `stillpoint version` says
	root.SetVersionTemplate(buildinfo.Get().Long())
	pf := root.PersistentFlags()
	pf.StringVarP(&g.access.Repository, "repo", "r", "", "repository path or s3:https://HOST/BUCKET/PREFIX (the prefix optional); default: $"+run.EnvRepository+", else "+run.DefaultRepository())
	pf.StringVar(&g.access.PasswordFile, "password-file", "", "read the repository password from this file (or set $"+run.EnvPassword+")")
	pf.StringVar(&g.access.KeyFile, "key-file", "", "repository key file (default: the one created with the repository, in "+run.KeyDir()+")")
	pf.StringVar(&g.access.S3.Region, "s3-region", "", "S3 region of the bucket (default $STILLPOINT_S3_REGION, $AWS_REGION)")
	pf.StringVar(&g.access.S3.Addressing, "s3-addressing", "", "S3 bucket addressing: auto, path or virtual (default $STILLPOINT_S3_ADDRESSING, else auto)")
	pf.StringVar(&g.access.S3.CACert, "cacert", "", "PEM file of CA certificates to trust for an S3 server (default $STILLPOINT_S3_CACERT)")
	pf.StringVar(&g.access.S3.StorageClass, "s3-storage-class", "", "S3 storage class of data packs, e.g. STANDARD_IA (default $STILLPOINT_S3_STORAGE_CLASS); metadata stays STANDARD")
	pf.BoolVar(&g.access.NoCache, "no-cache", false, "do not use the local cache of an S3 repository's index, snapshots, keys and trees (or set $"+run.EnvNoCache+")")
	pf.StringVar(&g.cacheDir, "cache-dir", "", "cache directory: run logs, staging, copies of S3 repositories' small files (default $STILLPOINT_CACHE_DIR, else "+run.CacheDir()+")")
	root.PersistentPreRun = func(*cobra.Command, []string) {
		if g.cacheDir != "" {
			run.SetCacheDir(g.cacheDir)
		}
	}
	pf.BoolVar(&g.json, "json", false, "print JSON: one object per event and a final summary")
	pf.BoolVarP(&g.quiet, "quiet", "q", false, "print errors only")
	root.AddCommand(
		newInitCmd(g), newBackupCmd(g), newSnapshotsCmd(g), newLsCmd(g),
		newRestoreCmd(g), newCheckCmd(g), newDiffCmd(g), newUnlockCmd(g), newDoctorCmd(g), newJobCmd(g),
		newForgetCmd(g),
	)
	root.AddCommand(newKeyCmd(g))
	root.AddCommand(newStatsCmd(g), newFindCmd(g), newDumpCmd(g), newTagCmd(g))
	root.AddCommand(newPruneCmd(g))
	root.AddCommand(newMountCmd(g))
	root.AddCommand(newCopyCmd(g))
	root.AddCommand(newDrillCmd(g))
	root.AddCommand(newCacheCmd(g))
	root.AddCommand(newRunCmd(g))
	root.AddCommand(newVersionCmd(g), newGenerateCmd())
	root.AddCommand(newServiceCmd(g))
	root.AddCommand(newHistoryCmd(g))
	root.AddCommand(newDaemonCmd(g))
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
	run.Version = buildinfo.Version() // recorded in every snapshot
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stopProfiles := startProfiles()
	g := &globals{}
	root := newRootFor(g)
	started := noteStart(root)
	cmd, err := root.ExecuteContextC(ctx)
	stopProfiles()
	if *started {
		writeRequestStats(cmd, g)
	}
	if err == nil {
		return
	}
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		if ee.err != nil {
			fmt.Fprintln(os.Stderr, "stillpoint:", ee.err)
		}
		os.Exit(ee.code)
	case !*started:
		// the command line was wrong before the command began
		fmt.Fprintln(os.Stderr, usageMessage(cmd, err))
		os.Exit(exitUsage)
	case ctx.Err() != nil:
		// what failed after the signal failed because of it: one line that
		// says what the interruption left
		fmt.Fprintln(os.Stderr, "stillpoint: interrupted:", interruptedNote(cmd))
	default:
		fmt.Fprintln(os.Stderr, "stillpoint:", err)
	}
	os.Exit(exitFatal)
}

// usageMessage is one line: the command, what is wrong, how it is used.
func usageMessage(cmd *cobra.Command, err error) string {
	// cobra puts its suggestions for a mistyped command on lines of their own
	msg := strings.Replace(err.Error(), "\n\nDid you mean this?\n", "; did you mean:", 1)
	msg = argsInWords(strings.Join(strings.Fields(msg), " "))
	if !cmd.HasParent() {
		return fmt.Sprintf("stillpoint: %s (`stillpoint --help` lists the commands)", msg)
	}
	return fmt.Sprintf("%s: %s (usage: %s; more with --help)", cmd.CommandPath(), msg, cmd.UseLine())
}

// cobra's messages for a wrong number of arguments
var (
	exactArgs = regexp.MustCompile(`^accepts (\d+) arg\(s\), received (\d+)$`)
	minArgs   = regexp.MustCompile(`^requires at least (\d+) arg\(s\), only received (\d+)$`)
	maxArgs   = regexp.MustCompile(`^accepts at most (\d+) arg\(s\), received (\d+)$`)
	rangeArgs = regexp.MustCompile(`^accepts between (\d+) and (\d+) arg\(s\), received (\d+)$`)
)

// argsInWords says cobra's "accepts 1 arg(s), received 0" as "takes one
// argument, got none"; other messages are kept.
func argsInWords(msg string) string {
	n := func(s string) string {
		switch s {
		case "0":
			return "none"
		case "1":
			return "one"
		}
		return s
	}
	args := func(s string) string {
		if s == "1" {
			return "one argument"
		}
		return s + " arguments"
	}
	if m := exactArgs.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("takes %s, got %s", args(m[1]), n(m[2]))
	}
	if m := minArgs.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("takes at least %s, got %s", args(m[1]), n(m[2]))
	}
	if m := maxArgs.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("takes at most %s, got %s", args(m[1]), n(m[2]))
	}
	if m := rangeArgs.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("takes %s to %s arguments, got %s", m[1], m[2], n(m[3]))
	}
	return msg
}

// noArgs is cobra.NoArgs in words that fit a command that takes none.
func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("takes no arguments, got %q", strings.Join(args, " "))
	}
	return nil
}

// noteStart wraps every command's RunE to record that it began: an error
// before that is about the command line (a flag, the arguments, an unknown
// command), and exits with exitUsage.
func noteStart(root *cobra.Command) *bool {
	started := new(bool)
	var wrap func(c *cobra.Command)
	wrap = func(c *cobra.Command) {
		if run := c.RunE; run != nil {
			c.RunE = func(cmd *cobra.Command, args []string) error {
				*started = true
				return run(cmd, args)
			}
		}
		for _, sub := range c.Commands() {
			wrap(sub)
		}
	}
	wrap(root)
	return started
}

// interruptedNote says what a command stopped by a signal leaves behind.
func interruptedNote(cmd *cobra.Command) string {
	switch cmd.Name() {
	case "backup", "run":
		return "no snapshot was written; the data already stored is kept for the next backup, and the repository is consistent"
	case "init":
		return "the repository was not created; run init again"
	case "restore":
		return "the restore is incomplete; run it again with --overwrite if-changed to finish it"
	case "check":
		return "the check did not finish; run it again"
	case "forget":
		return "some of the snapshots to remove may be gone, the others are still there; run forget again to finish"
	case "dump":
		return "the output is incomplete"
	case "tag":
		return "the snapshots named above were tagged, the others not; each exists whole, under its old or its new id"
	case "prune":
		return "the prune did not finish; the repository is consistent, and the next prune completes its work"
	case "drill":
		return "the drill did not finish and stored no result; its scratch directory was removed"
	case "copy":
		return "the snapshots said to be copied are in the target, the others not; the data already sent is kept, and the next copy sends only what is missing"
	}
	return "nothing was changed"
}
