package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/report"
	"github.com/stillpoint-backup/stillpoint/internal/retention"
	"github.com/stillpoint-backup/stillpoint/internal/run"
)

type forgetFlags struct {
	policy  retention.Policy
	keepTag []string
	groupBy string
	hosts   []string
	tags    []string
	paths   []string
	dryRun  bool
	prune   bool
	// prune's limits, for --prune
	maxUnused, maxRepackSize string
}

// countValue is a --keep-* count: a number or "unlimited".
type countValue struct{ n *int }

func (c countValue) String() string {
	if c.n == nil {
		return "0"
	}
	return retention.FormatCount(*c.n)
}
func (c countValue) Set(s string) (err error) { *c.n, err = retention.ParseCount(s); return err }
func (c countValue) Type() string             { return "n" }

// durationValue is a --keep-within* duration such as 1y2m3d4h.
type durationValue struct{ d *retention.Duration }

func (v durationValue) String() string {
	if v.d == nil {
		return ""
	}
	return v.d.String()
}
func (v durationValue) Set(s string) (err error) { *v.d, err = retention.ParseDuration(s); return err }
func (v durationValue) Type() string             { return "duration" }

func newForgetCmd(g *globals) *cobra.Command { return forgetCmd(g, &forgetFlags{}) }

// forgetCmd is the command with its flags parsed into f.
func forgetCmd(g *globals, f *forgetFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "forget [flags] [SNAPSHOT...]",
		Short: "Remove snapshots by a retention policy (restic's) or by id",
		Long: `Remove snapshots: the ones a policy does not keep, or the SNAPSHOTs named.

The policy works as restic 0.19's forget does, so a policy brought from restic
keeps the same snapshots. Snapshots are grouped (--group-by, by default host and
paths) and each group is judged alone; a snapshot is kept when any rule keeps it.
Each counting rule keeps the newest snapshot of each hour, day, ISO week, month or
year that has snapshots, computed in the time zone stored with each snapshot, up
to N such periods ("unlimited" for all); while a rule has counts left, the oldest
snapshot of the group is kept too. --keep-within DUR (e.g. 1y2m3d4h) keeps what
is newer than DUR before the newest snapshot of the group.

Nothing is removed when the policy is empty, a filter matches no snapshot, the
policy would remove every snapshot of a group, or a SNAPSHOT is unknown.

forget deletes snapshot manifests only; the data they alone use is freed by
prune. It takes a shared lock: backups may run meanwhile.`,
		Example: `  stillpoint forget --keep-daily 7 --keep-weekly 5 --keep-monthly 12 --dry-run
  stillpoint forget --keep-within 30d --keep-tag keep --prune
  stillpoint forget 1a2b3c4d 5e6f7a8b`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runForget(cmd.Context(), g, *f, args)
		},
	}
	fl := cmd.Flags()
	p := &f.policy
	for _, c := range []struct {
		name, short string
		n           *int
		what        string
	}{
		{"keep-last", "l", &p.Last, "the last n snapshots"},
		{"keep-hourly", "H", &p.Hourly, "the newest snapshot of each of the last n hours that have one"},
		{"keep-daily", "d", &p.Daily, "the newest snapshot of each of the last n days that have one"},
		{"keep-weekly", "w", &p.Weekly, "the newest snapshot of each of the last n ISO weeks that have one"},
		{"keep-monthly", "m", &p.Monthly, "the newest snapshot of each of the last n months that have one"},
		{"keep-yearly", "y", &p.Yearly, "the newest snapshot of each of the last n years that have one"},
	} {
		fl.VarP(countValue{c.n}, c.name, c.short, "keep "+c.what+" ('unlimited' for all)")
	}
	for _, w := range []struct {
		name string
		d    *retention.Duration
		what string
	}{
		{"keep-within", &p.Within, "every snapshot"},
		{"keep-within-hourly", &p.WithinHourly, "the newest snapshot of each hour"},
		{"keep-within-daily", &p.WithinDaily, "the newest snapshot of each day"},
		{"keep-within-weekly", &p.WithinWeekly, "the newest snapshot of each ISO week"},
		{"keep-within-monthly", &p.WithinMonthly, "the newest snapshot of each month"},
		{"keep-within-yearly", &p.WithinYearly, "the newest snapshot of each year"},
	} {
		fl.Var(durationValue{w.d}, w.name, "keep "+w.what+" newer than `duration` (e.g. 1y5m7d2h) before the group's newest snapshot")
	}
	fl.StringArrayVar(&f.keepTag, "keep-tag", nil, "keep snapshots that have every tag of `tag[,tag...]` (repeatable: any of the lists)")
	fl.StringVarP(&f.groupBy, "group-by", "g", "host,paths", "group snapshots by host, paths and/or tags, separated by commas ('' for one group)")
	fl.StringArrayVar(&f.hosts, "host", nil, "only consider snapshots of this `host` (repeatable)")
	fl.StringArrayVar(&f.tags, "tag", nil, "only consider snapshots that have every tag of `tag[,tag...]` (repeatable: any of the lists)")
	fl.StringArrayVar(&f.paths, "path", nil, "only consider snapshots that include this absolute `path` (repeatable: all of them)")
	fl.BoolVarP(&f.dryRun, "dry-run", "n", false, "print what would be removed and why each snapshot is kept; remove nothing")
	fl.BoolVar(&f.prune, "prune", false, "run prune when snapshots were removed (backups may go on meanwhile)")
	fl.StringVar(&f.maxUnused, "max-unused", "5%", "with --prune: prune's --max-unused `limit`")
	fl.StringVar(&f.maxRepackSize, "max-repack-size", "", "with --prune: prune's --max-repack-size `size`")
	fl.SortFlags = false
	return cmd
}

// forgetOptions turns the flags into the run's options.
func forgetOptions(f forgetFlags, args []string) (run.ForgetOptions, error) {
	o := run.ForgetOptions{IDs: args, DryRun: f.dryRun}
	o.Policy = f.policy
	for _, t := range f.keepTag {
		o.Policy.Tags = append(o.Policy.Tags, retention.ParseTagList(t))
	}
	var err error
	if o.GroupBy, err = retention.ParseGroupBy(f.groupBy); err != nil {
		return o, &exitError{code: exitUsage, err: fmt.Errorf("--group-by: %w", err)}
	}
	o.Filter.Hosts, o.Filter.Paths = f.hosts, f.paths
	for _, t := range f.tags {
		o.Filter.Tags = append(o.Filter.Tags, retention.ParseTagList(t))
	}
	if err := o.Policy.Validate(); err != nil {
		return o, &exitError{code: exitUsage, err: err}
	}
	if len(args) > 0 && !o.Policy.Empty() {
		return o, &exitError{code: exitUsage, err: run.ErrPolicyAndIDs}
	}
	return o, nil
}

func runForget(ctx context.Context, g *globals, f forgetFlags, args []string) error {
	o, err := forgetOptions(f, args)
	if err != nil {
		return err
	}
	// prune's limits are checked before anything is removed
	po, err := pruneOptions(pruneFlags{maxUnused: f.maxUnused, maxRepackSize: f.maxRepackSize})
	if err != nil {
		return err
	}
	rep := g.reporter()
	r, err := openRepo(ctx, g)
	if err != nil {
		return err
	}
	if !o.DryRun {
		// append-only credentials fail here, before anything is written
		if err := repo.CheckDelete(ctx, r.Backend(), "forget"); err != nil {
			return err
		}
	}
	res, err := run.Forget(ctx, r, o)
	if res != nil {
		printForget(rep, o, res)
	}
	if err != nil || !f.prune {
		return err
	}
	switch {
	case len(res.Removed) == 0 && res.DryRun:
		rep.Printf("--prune: no snapshot would be removed, so prune would not run\n")
		return nil
	case len(res.Removed) == 0:
		rep.Printf("--prune: no snapshot was removed, so prune does not run\n")
		return nil
	case res.DryRun:
		// what prune would do once these are gone; it changes nothing
		rep.Printf("\n--prune, dry run: what prune would do without these %d snapshots\n", len(res.Removed))
		po.DryRun = true
		for _, s := range res.Removed {
			po.Without = append(po.Without, s.ID)
		}
		return runPrune(ctx, g, po)
	}
	rep.Printf("\n%d snapshots removed, running prune\n", len(res.Removed))
	// forget's lock is released: prune takes its own
	return runPrune(ctx, g, po)
}

// snapshotJSON is one snapshot in forget's --json output.
func snapshotJSON(s *repo.Snapshot, reasons []string) map[string]any {
	m := map[string]any{"id": s.ID.String(), "short_id": s.ID.Short(), "time": s.Time, "host": s.Host,
		"paths": s.Paths, "tags": nonNil(s.Tags)}
	if reasons != nil {
		m["reasons"] = reasons
	}
	return m
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func printForget(rep *report.Reporter, o run.ForgetOptions, res *run.ForgetResult) {
	if rep.Mode == report.JSON {
		groups := []map[string]any{}
		for _, g := range res.Groups {
			keep, remove := []map[string]any{}, []map[string]any{}
			for _, k := range g.Keep {
				keep = append(keep, snapshotJSON(res.ByID[k.ID], k.Reasons))
			}
			for _, s := range g.Remove {
				remove = append(remove, snapshotJSON(res.ByID[s.ID], nil))
			}
			groups = append(groups, map[string]any{"host": g.Key.Host, "paths": nonNil(g.Key.Paths), "tags": nonNil(g.Key.Tags),
				"keep": keep, "remove": remove})
		}
		removed := []string{}
		for _, s := range res.Removed {
			removed = append(removed, s.ID.String())
		}
		ev := map[string]any{"type": "summary", "dry_run": res.DryRun, "groups": groups, "removed": removed}
		if len(o.IDs) == 0 {
			ev["policy"] = o.Policy.String()
			ev["group_by"] = o.GroupBy.String()
		}
		rep.Event(ev)
		return
	}
	if rep.Mode != report.Human {
		return // --quiet: errors only
	}
	if len(o.IDs) == 0 {
		rep.Printf("applying policy: %s\n", o.Policy)
	}
	for _, g := range res.Groups {
		rep.Printf("\nsnapshots of %s\n", g.Key)
		rep.Printf("keep %d snapshots:\n", len(g.Keep))
		w := tabwriter.NewWriter(rep.Out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tTIME\tHOST\tTAGS\tREASONS\tPATHS")
		for _, k := range g.Keep {
			s := res.ByID[k.ID]
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID.Short(), localTime(s.Time), s.Host,
				strings.Join(s.Tags, ","), strings.Join(k.Reasons, ", "), strings.Join(s.Paths, ","))
		}
		w.Flush()
		if len(g.Remove) > 0 {
			rep.Printf("remove %d snapshots:\n", len(g.Remove))
			printSnapshotRows(rep, g.Remove, res.ByID)
		}
	}
	if len(o.IDs) > 0 && len(res.Removed) > 0 {
		var list []retention.Snapshot
		for _, s := range res.Removed {
			list = append(list, retention.Snapshot{ID: s.ID.String()})
		}
		rep.Printf("remove %d snapshots:\n", len(list))
		printSnapshotRows(rep, list, res.ByID)
	}
	switch {
	case len(res.Removed) == 0:
		rep.Printf("\nno snapshot to remove\n")
	case res.DryRun:
		rep.Printf("\nwould remove %d snapshots (dry run: nothing was removed)\n", len(res.Removed))
	default:
		rep.Printf("\nremoved %d snapshots; `stillpoint prune` frees the data only they used\n", len(res.Removed))
	}
}

func printSnapshotRows(rep *report.Reporter, list []retention.Snapshot, byID map[string]*repo.Snapshot) {
	w := tabwriter.NewWriter(rep.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tTIME\tHOST\tTAGS\tPATHS")
	for _, r := range list {
		s := byID[r.ID]
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", s.ID.Short(), localTime(s.Time), s.Host, strings.Join(s.Tags, ","), strings.Join(s.Paths, ","))
	}
	w.Flush()
}

func localTime(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05") }
