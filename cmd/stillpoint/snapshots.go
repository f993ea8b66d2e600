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
		Args:  noArgs,
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
	_, snaps, err := loadSnapshots(ctx, g, rep)
	if err != nil {
		return err
	}
	if rep.Mode == report.JSON {
		out := make([]map[string]any, 0, len(snaps))
		for _, s := range snaps {
			out = append(out, map[string]any{
				"id": s.ID.String(), "time": s.Time, "host": s.Host, "paths": s.Paths, "tags": s.Tags,
				"size": s.Stats.Bytes, "files": s.Stats.Files, "outcomes": s.Outcomes,
				"partial": s.Partial, "consistency": s.Consistency, "sources": s.Sources, "parent": s.Parent,
			})
		}
		rep.Event(out)
		return nil
	}
	w := tabwriter.NewWriter(rep.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tTIME\tHOST\tPATHS\tSIZE\tFILES\tCONSISTENCY\tOUTCOMES")
	for _, s := range snaps {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", s.ID.Short(), s.Time.Local().Format("2006-01-02 15:04:05"),
			s.Host, strings.Join(s.Paths, ","), report.Bytes(s.Stats.Bytes), s.Stats.Files, s.Consistency, outcomeSummary(s))
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

// findSnapshot resolves a SNAPSHOT argument.
func findSnapshot(snaps []*repo.Snapshot, ref string) (*repo.Snapshot, error) {
	return repo.FindSnapshot(snaps, ref)
}
