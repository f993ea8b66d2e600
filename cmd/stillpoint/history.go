package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/stillpoint-backup/stillpoint/internal/history"
	"github.com/stillpoint-backup/stillpoint/internal/report"
	"github.com/stillpoint-backup/stillpoint/internal/statedir"
)

func newHistoryCmd(g *globals) *cobra.Command {
	var stateDir string
	var limit int
	cmd := &cobra.Command{
		Use:   "history [JOB]",
		Short: "List the runs of the jobs, newest first",
		Long: `List the recorded runs (backups, follow-up runs, drills) of every job or of one: when, how
long, how it ended, the snapshot, and the files not stored whole. The daemon records them
in history.db in the state directory.`,
		Example: `  stillpoint history
  stillpoint history app --limit 50
  stillpoint history app --json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			job := ""
			if len(args) == 1 {
				job = args[0]
			}
			return runHistory(cmd.Context(), g.reporter(), stateDir, job, limit)
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", statedir.Default(), "the state directory holding history.db")
	cmd.Flags().IntVar(&limit, "limit", 20, "show at most this many runs (0: all)")
	return cmd
}

// historyRun is a run in --json output.
type historyRun struct {
	ID           int64          `json:"id"`
	Job          string         `json:"job"`
	Kind         history.Kind   `json:"kind"`
	Trigger      string         `json:"trigger,omitempty"`
	Start        time.Time      `json:"start"`
	End          time.Time      `json:"end"`
	Seconds      float64        `json:"duration_seconds"`
	Status       history.Status `json:"status"`
	Snapshot     string         `json:"snapshot,omitempty"`
	Outcomes     map[string]int `json:"outcomes"`
	Flagged      []history.File `json:"flagged"`
	Steps        []historyStep  `json:"steps"`
	FreezeMS     int64          `json:"freeze_window_ms"`
	QuietWaitSec float64        `json:"quiet_wait_seconds"`
	BytesRead    int64          `json:"bytes_read"`
	BytesAdded   int64          `json:"bytes_added"`
	RetriedFiles int            `json:"retried_files"`
	Errors       []string       `json:"errors"`
}

type historyStep struct {
	history.Step
	FreezeMS int64 `json:"freeze_ms,omitempty"`
}

func runHistory(ctx context.Context, rep *report.Reporter, dir, job string, limit int) error {
	path := filepath.Join(dir, history.FileName)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		// a listing creates no database
		if rep.Mode == report.JSON {
			rep.Event([]historyRun{})
			return nil
		}
		fmt.Fprintf(rep.Out, "no runs recorded: %s does not exist (the daemon records its runs there; see --state-dir)\n", path)
		return nil
	}
	db, err := history.Open(path)
	if err != nil {
		return err
	}
	defer db.Close()
	runs, err := db.List(ctx, job, limit)
	if err != nil {
		return err
	}
	if rep.Mode == report.JSON {
		out := make([]historyRun, 0, len(runs))
		for _, r := range runs {
			out = append(out, toHistoryJSON(r))
		}
		rep.Event(out)
		return nil
	}
	if len(runs) == 0 {
		if job != "" {
			jobs, _ := db.Jobs(ctx)
			fmt.Fprintf(rep.Out, "no runs of %s recorded (jobs with runs: %s)\n", job, strings.Join(jobs, ", "))
			return nil
		}
		fmt.Fprintln(rep.Out, "no runs recorded")
		return nil
	}
	printHistory(rep.Out, runs)
	return nil
}

func toHistoryJSON(r *history.Run) historyRun {
	h := historyRun{ID: r.ID, Job: r.Job, Kind: r.Kind, Trigger: r.Trigger, Start: r.Start, End: r.End,
		Seconds: r.Duration().Seconds(), Status: r.Status, Snapshot: r.Snapshot, Outcomes: r.Outcomes,
		Flagged: r.Flagged, Steps: []historyStep{}, FreezeMS: r.FreezeWindow.Milliseconds(), QuietWaitSec: r.QuietWait.Seconds(),
		BytesRead: r.BytesRead, BytesAdded: r.BytesAdded, RetriedFiles: r.RetriedFiles, Errors: r.Errors}
	for _, s := range r.Steps {
		h.Steps = append(h.Steps, historyStep{s, s.Freeze.Milliseconds()})
	}
	if h.Flagged == nil {
		h.Flagged = []history.File{}
	}
	if h.Errors == nil {
		h.Errors = []string{}
	}
	return h
}

func printHistory(w io.Writer, runs []*history.Run) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "START\tJOB\tKIND\tSTATUS\tDURATION\tSNAPSHOT\tFILES\tFLAGGED")
	for _, r := range runs {
		snap := r.Snapshot
		if len(snap) > 8 {
			snap = snap[:8]
		}
		if snap == "" {
			snap = "-"
		}
		status := string(r.Status)
		if r.Status == history.Failed && len(r.Errors) > 0 {
			status += ": " + shorten(r.Errors[0], 60)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", r.Start.Local().Format("2006-01-02 15:04:05"), r.Job, r.Kind,
			status, r.Duration().Round(time.Second), snap, outcomeCounts(r.Outcomes), r.FlaggedCount())
	}
	tw.Flush()
	fmt.Fprintf(w, "%d runs\n", len(runs))
}

// outcomeCounts is "1200 ok, 2 changed": the outcomes in a fixed order.
func outcomeCounts(counts map[string]int) string {
	if len(counts) == 0 {
		return "-"
	}
	order := map[string]int{"ok": 0, "ok-snapshot": 1, "changed": 2, "skipped-open": 3, "failed": 4}
	names := make([]string, 0, len(counts))
	for o := range counts {
		names = append(names, o)
	}
	sort.Slice(names, func(i, j int) bool {
		oi, iok := order[names[i]]
		oj, jok := order[names[j]]
		if iok != jok {
			return iok
		}
		if oi != oj {
			return oi < oj
		}
		return names[i] < names[j]
	})
	var parts []string
	for _, o := range names {
		if counts[o] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[o], o))
		}
	}
	return strings.Join(parts, ", ")
}

func shorten(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
