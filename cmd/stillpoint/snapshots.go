package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/report"
)

func newSnapshotsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "snapshots",
		Short: "List snapshots",
		Example: `  stillpoint snapshots
  stillpoint snapshots --repo /mnt/backup/repo --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSnapshots(cmd.Context(), g)
		},
	}
}

// loadSnapshots opens the repository and reads every manifest, warning
// about those that cannot be read.
func loadSnapshots(ctx context.Context, g *globals, rep *report.Reporter) (*repo.Repository, []*repo.Snapshot, error) {
	r, err := openRepo(ctx, g)
	if err != nil {
		return nil, nil, err
	}
	snaps, bad, err := r.Snapshots(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, b := range bad {
		rep.Warn("snapshots/"+b.Name, "damaged", b.Err.Error())
	}
	return r, snaps, nil
}

func runSnapshots(ctx context.Context, g *globals) error {
	rep := g.reporter()
	r, snaps, err := loadSnapshots(ctx, g, rep)
	if err != nil {
		return err
	}
	drills, bad, err := r.Drills(ctx)
	if err != nil {
		rep.Warn("drills", "drill", err.Error()+"; drill results are not shown")
	}
	for _, b := range bad {
		rep.Warn("drills/"+b.Name, "damaged", b.Err.Error())
	}
	latest := repo.LatestDrills(snaps, drills)
	if rep.Mode == report.JSON {
		out := make([]map[string]any, 0, len(snaps))
		for _, s := range snaps {
			e := map[string]any{
				"id": s.ID.String(), "time": s.Time, "host": s.Host, "paths": s.Paths, "tags": s.Tags,
				"size": s.Stats.Bytes, "files": s.Stats.Files, "outcomes": s.Outcomes,
				"partial": s.Partial, "consistency": s.Consistency, "sources": s.Sources, "parent": s.Parent,
			}
			if d := latest[s.ID]; d != nil {
				e["drill"] = drillJSON(d)
			}
			out = append(out, e)
		}
		rep.Event(out)
		return nil
	}
	w := tabwriter.NewWriter(rep.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tTIME\tHOST\tPATHS\tSIZE\tFILES\tCONSISTENCY\tOUTCOMES\tVERIFIED")
	for _, s := range snaps {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", s.ID.Short(), s.Time.Local().Format("2006-01-02 15:04:05"),
			s.Host, strings.Join(s.Paths, ","), report.Bytes(s.Stats.Bytes), s.Stats.Files, s.Consistency, outcomeSummary(s), drillSummary(latest[s.ID]))
	}
	w.Flush()
	fmt.Fprintf(rep.Out, "%d snapshots\n", len(snaps))
	return nil
}

// outcomeSummary is "all whole" or counts of the files that are not.
func outcomeSummary(s *repo.Snapshot) string {
	counts := s.OutcomeCounts()
	if counts.NotWhole() == 0 {
		return "all whole"
	}
	var parts []string
	os := outcome.All()
	sort.Slice(os, func(i, j int) bool { return os[i] < os[j] })
	for _, o := range os {
		if !o.Whole() && counts[o] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[o], o))
		}
	}
	return strings.Join(parts, ", ")
}

// drillSummary is "verified 2026-12-01 (restore: sqlite, postgres)", or
// "FAILED 2026-12-01 (…)", or "-" for a snapshot never drilled.
func drillSummary(d *repo.DrillResult) string {
	if d == nil {
		return "-"
	}
	what := d.Level
	if v := d.Verifiers(); len(v) > 0 {
		what += ": " + strings.Join(v, ", ")
	}
	verdict := "verified"
	if !d.OK {
		verdict = "FAILED"
	}
	return fmt.Sprintf("%s %s (%s)", verdict, d.Time.Local().Format("2006-01-02"), what)
}

// drillJSON is the newest drill of a snapshot in snapshots --json.
func drillJSON(d *repo.DrillResult) map[string]any {
	failed := []map[string]any{}
	for _, st := range d.Steps {
		if !st.OK {
			failed = append(failed, map[string]any{"name": st.Name, "path": st.Path, "message": st.Message})
		}
	}
	return map[string]any{"id": d.ID.String(), "time": d.Time, "level": d.Level, "ok": d.OK,
		"verifiers": append([]string{}, d.Verifiers()...), "duration_secs": d.DurationSecs, "failed": failed}
}

// findSnapshot resolves a SNAPSHOT argument.
func findSnapshot(snaps []*repo.Snapshot, ref string) (*repo.Snapshot, error) {
	return repo.FindSnapshot(snaps, ref)
}
