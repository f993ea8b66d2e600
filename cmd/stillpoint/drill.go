package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/stillpoint-backup/stillpoint/internal/drill"
	"github.com/stillpoint-backup/stillpoint/internal/job"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/report"
	"github.com/stillpoint-backup/stillpoint/internal/run"
)

type drillFlags struct {
	jobFile  string
	level    string
	scratch  string
	readBack int
}

func newDrillCmd(g *globals) *cobra.Command {
	var f drillFlags
	cmd := &cobra.Command{
		Use:   "drill [SNAPSHOT] [--job FILE] [--level check|read|restore]",
		Short: "Prove a snapshot restores: restore it to scratch space and ask the applications",
		Long: `Drill a snapshot (default: latest; with --job, the newest snapshot of the job's host and
paths). Each level includes the one before:

  check    the repository's structure, and the next 1/N of its packs read back and
           verified (--read-back N, default 10: N drills read every pack once)
  read     the snapshot restored below a fresh scratch directory, every byte verified
           against its hash
  restore  the job's verifiers (drill: verify: in the job file, docs/job.md) run on the
           restored copy: sqlite (integrity_check, foreign_key_check, a query), postgres
           and mysql (the copy started as a private server: amcheck or CHECK TABLE, a
           query), git (fsck --full of every repository), or a command

The scratch space is checked first (the snapshot's size and room for the verifiers) and
always removed. A verifier that runs past its timeout is killed with every process it
started. The result is stored in the repository beside the snapshot; ` + "`stillpoint snapshots`" + `
shows it.

Exit codes: 0 every check passed; 1 one failed (the verifier, the restored path and its
own message are printed), or the drill could not run; 2 wrong usage.`,
		Example: `  stillpoint drill --job /etc/stillpoint/app.yaml        # the job's latest snapshot, its verifiers
  stillpoint drill --level read 4f2a9c1e                  # restore a snapshot to scratch and verify it
  stillpoint drill --level check --read-back 30           # read 1/30 of the packs; 30 drills read all
  stillpoint drill --job app.yaml --scratch /var/tmp --json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref := ""
			if len(args) == 1 {
				ref = args[0]
			}
			return runDrill(cmd.Context(), g, f, cmd.Flags().Changed("level"), cmd.Flags().Changed("read-back"), ref)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.jobFile, "job", "", "drill as the job file's drill: section says, its snapshots by default")
	fl.StringVar(&f.level, "level", "", "check, read or restore (default: the job's level, else read)")
	fl.StringVar(&f.scratch, "scratch", "", "directory to restore below (default: the job's drill.scratch, else "+os.TempDir()+")")
	fl.IntVar(&f.readBack, "read-back", job.DefaultReadBack, fmt.Sprintf("read 1/N of the packs per drill, in rotation (1 to %d; 1 reads all)", repo.MaxBuckets))
	return cmd
}

func runDrill(ctx context.Context, g *globals, f drillFlags, levelSet, readBackSet bool, ref string) error {
	rep := g.reporter()
	opts := drill.Options{Level: drill.Read, Scratch: f.scratch, ReadBack: f.readBack}
	var j *job.Job
	if f.jobFile != "" {
		var warnings []job.Warning
		var err error
		j, warnings, err = job.Load(f.jobFile)
		if err != nil {
			return &exitError{code: exitUsage, err: err}
		}
		for _, w := range warnings {
			rep.Warn("", "job", w.String())
		}
		if g.access.Repository == "" && j.Repository != "" {
			g.access.Repository = j.Repository
		}
		g.access.UseJobS3(j.S3)
		jo := drill.FromJob(j)
		opts.Level, opts.Verifiers = jo.Level, jo.Verifiers
		if opts.Scratch == "" {
			opts.Scratch = jo.Scratch
		}
		if !readBackSet {
			opts.ReadBack = jo.ReadBack
		}
	}
	if levelSet {
		l, err := drill.ParseLevel(f.level)
		if err != nil {
			return &exitError{code: exitUsage, err: fmt.Errorf("--level: %w", err)}
		}
		opts.Level = l
	}
	if opts.ReadBack < 1 || opts.ReadBack > repo.MaxBuckets {
		return &exitError{code: exitUsage, err: fmt.Errorf("--read-back %d: use 1 (every pack) to %d", opts.ReadBack, repo.MaxBuckets)}
	}
	if opts.Scratch != "" {
		abs, err := filepath.Abs(opts.Scratch)
		if err != nil {
			return err
		}
		opts.Scratch = abs
	}
	if opts.Level == drill.Restore && len(opts.Verifiers) == 0 {
		rep.Warn("", "drill", "level restore without verifiers (drill: verify: in a job file, see --job) restores and verifies the bytes only, as level read does")
	}

	r, snaps, err := loadSnapshots(ctx, g, rep)
	if err != nil {
		return err
	}
	s, err := drillSnapshot(snaps, j, ref)
	if err != nil {
		return err
	}
	opts.Host, _ = os.Hostname()
	opts.CursorFile = drill.CursorFile(run.CacheDir(), r.Config().ID)
	opts.Progress = rep.Step
	res, err := drill.RunAndStore(ctx, r, s, opts)
	if res == nil {
		if errors.Is(err, drill.ErrNoSpace) {
			return &exitError{code: exitFatal, err: err}
		}
		return err
	}
	cleanupErr := err // the drill ran, but its scratch directory could not be removed
	code := exitOK
	if !res.OK {
		code = exitFatal
	}
	rep.Event(map[string]any{"type": "summary", "ok": res.OK, "snapshot_id": s.ID.String(), "drill_id": res.ID.String(), "drill": res, "exit_code": code})
	printDrill(rep, s, res)
	if cleanupErr != nil {
		rep.Warn("", "drill", cleanupErr.Error())
	}
	if !res.OK {
		failed := 0
		for _, st := range res.Steps {
			if !st.OK {
				failed++
			}
		}
		return &exitError{code: exitFatal, err: fmt.Errorf("drill of snapshot %s failed: %d of %d checks (the result is stored with the snapshot)", s.ID.Short(), failed, len(res.Steps))}
	}
	return nil
}

// drillSnapshot resolves SNAPSHOT; without one, the newest snapshot of the
// job's host and paths, or the newest of all.
func drillSnapshot(snaps []*repo.Snapshot, j *job.Job, ref string) (*repo.Snapshot, error) {
	if ref != "" || j == nil {
		return findSnapshot(snaps, firstNonEmpty(ref, "latest"))
	}
	return drill.JobSnapshot(snaps, j)
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func printDrill(rep *report.Reporter, s *repo.Snapshot, res *repo.DrillResult) {
	if rep.Mode != report.Human {
		return
	}
	rep.Printf("drill of snapshot %s (%s, %s) at level %s:\n", s.ID.Short(), s.Time.Local().Format("2006-01-02 15:04"), strings.Join(s.Paths, ", "), res.Level)
	w := tabwriter.NewWriter(rep.Out, 0, 4, 2, ' ', 0)
	for _, st := range res.Steps {
		verdict := "ok"
		if !st.OK {
			verdict = "FAILED"
		}
		what := st.Message
		if st.Path == "" && !st.OK && st.Restored != "" && st.Name != "restore" {
			what = fmt.Sprintf("(in the restore below %s): %s", st.Restored, st.Message)
		}
		if st.Path != "" {
			what = st.Path + ": " + what
			if !st.OK {
				what = fmt.Sprintf("%s (restored as %s): %s", st.Path, st.Restored, st.Message)
			}
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\n", verdict, st.Name, (time.Duration(st.DurationSecs * float64(time.Second))).Round(time.Millisecond), what)
	}
	w.Flush()
	for _, st := range res.Steps {
		if st.OK || len(st.Problems) < 2 {
			continue
		}
		rep.Printf("  %s problems:\n", st.Name)
		for _, p := range st.Problems {
			rep.Printf("    %s\n", p)
		}
	}
	if res.OK {
		rep.Printf("drill passed in %s; the result is stored with the snapshot\n", (time.Duration(res.DurationSecs * float64(time.Second))).Round(time.Millisecond))
	}
}
