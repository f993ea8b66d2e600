package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/stillpoint-backup/stillpoint/internal/copier"
	"github.com/stillpoint-backup/stillpoint/internal/report"
	"github.com/stillpoint-backup/stillpoint/internal/retention"
	"github.com/stillpoint-backup/stillpoint/internal/run"
)

type copyFlags struct {
	from   run.SourceAccess
	hosts  []string
	tags   []string
	paths  []string
	dryRun bool
}

func newCopyCmd(g *globals) *cobra.Command {
	f := &copyFlags{}
	cmd := &cobra.Command{
		Use:   "copy --from-repo SRC [flags] [SNAPSHOT...]",
		Short: "Copy snapshots from another repository, sending only what this one lacks",
		Long: `Copy snapshots from the repository SRC (--from-repo) into this one (--repo): every
snapshot of SRC, or the SNAPSHOTs named (ids, prefixes, latest, latest:PATH,
latest@TAG), among those --host, --tag and --path let through.

The data is read from SRC, decrypted and verified there, and stored here as a
backup stores it: with this repository's key and compression, in its packs, and
only what it does not hold already (each blob once per run). The snapshot keeps
its time, host, paths, tags and outcomes, and names the snapshot it was copied
from ("original", "copied_from"); it is written after its data and index. A
snapshot copied before (or one with the same files, time, host and paths) is
skipped, and said so, so copy can run again and again. An interrupted copy
leaves both repositories consistent; the next one sends only what is missing.

SRC is read under a shared lock and this repository written under another, as
a backup does: backups and prune may run on either meanwhile. SRC's password
or key is given apart from this one's: --from-password-file or
$STILLPOINT_FROM_PASSWORD, --from-key-file, else the key file made with SRC.

Exit codes: 0 every selected snapshot is in this repository (copied or there
already); 1 the copy failed (a wrong key, a damaged or locked repository, ...);
2 a usage error.`,
		Example: `  stillpoint copy --repo /mnt/offsite/repo --from-repo /var/lib/stillpoint/repo
  stillpoint copy --from-repo /srv/repo --from-password-file ~/.src-pw latest
  stillpoint copy --from-repo /srv/repo --host db1 --tag nightly --dry-run
  STILLPOINT_FROM_REPOSITORY=/srv/repo stillpoint copy --json 1a2b3c4d`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCopy(cmd.Context(), g, *f, args)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.from.Repository, "from-repo", "", "the repository to copy from (default $"+run.EnvFromRepository+")")
	fl.StringVar(&f.from.PasswordFile, "from-password-file", "", "read the source repository's password from this `file` (or set $"+run.EnvFromPassword+")")
	fl.StringVar(&f.from.KeyFile, "from-key-file", "", "the source repository's key `file` (default: the one created with it, in "+run.KeyDir()+")")
	fl.StringArrayVar(&f.hosts, "host", nil, "only copy snapshots of this `host` (repeatable)")
	fl.StringArrayVar(&f.tags, "tag", nil, "only copy snapshots that have every tag of `tag[,tag...]` (repeatable: any of the lists)")
	fl.StringArrayVar(&f.paths, "path", nil, "only copy snapshots that include this absolute `path` (repeatable: all of them)")
	fl.BoolVarP(&f.dryRun, "dry-run", "n", false, "read the source and say what would be copied and sent; write nothing")
	fl.SortFlags = false
	return cmd
}

func runCopy(ctx context.Context, g *globals, f copyFlags, refs []string) error {
	if f.from.Location() == "" {
		return &exitError{code: exitUsage, err: fmt.Errorf("copy needs the repository to copy from: give --from-repo or set %s", run.EnvFromRepository)}
	}
	o := copier.Options{Refs: refs, DryRun: f.dryRun, Progress: &copier.Progress{}}
	o.Filter.Hosts, o.Filter.Paths = f.hosts, f.paths
	for _, t := range f.tags {
		o.Filter.Tags = append(o.Filter.Tags, retention.ParseTagList(t))
	}
	rep := g.reporter()
	dst, err := openRepo(ctx, g)
	if err != nil {
		return err
	}
	src, err := run.OpenSource(ctx, f.from)
	if err != nil {
		return err
	}
	warnIndexProblems(rep, src)
	o.Warn = func(object, msg string) { rep.Warn(object, "damaged", msg) }
	o.OnSnapshot = func(sr copier.SnapshotResult) { printCopied(rep, sr, f.dryRun) }
	start := time.Now()
	stop := rep.Track("copying", func() report.Status {
		p := o.Progress
		return report.Status{FilesDone: p.BlobsRead.Load(), BytesDone: p.BytesRead.Load(), Current: p.Current(), Unit: "blobs"}
	})
	res, err := copier.Run(ctx, src, dst, o)
	stop()
	if res != nil {
		printCopySummary(rep, res, time.Since(start), err == nil)
	}
	return err
}

func printCopied(rep *report.Reporter, sr copier.SnapshotResult, dryRun bool) {
	s := sr.Source
	ev := map[string]any{"type": "snapshot", "source": s.ID.String(), "time": s.Time, "host": s.Host, "paths": s.Paths,
		"skipped": sr.Skipped, "blobs_sent": sr.BlobsSent, "bytes_sent": sr.BytesSent}
	if !sr.Target.IsNull() {
		ev["target"] = sr.Target.String()
	}
	if sr.Reason != "" {
		ev["reason"] = sr.Reason
	}
	rep.Event(ev)
	what := fmt.Sprintf("snapshot %s (%s, %s, %s)", s.ID.Short(), localTime(s.Time), s.Host, strings.Join(s.Paths, ","))
	switch {
	case sr.Skipped:
		rep.Printf("%s skipped: %s\n", what, sr.Reason)
	case dryRun:
		rep.Printf("%s would be copied: %d blobs, %s to send\n", what, sr.BlobsSent, report.Bytes(sr.BytesSent))
	default:
		rep.Printf("%s copied as %s: %d blobs, %s sent\n", what, sr.Target.Short(), sr.BlobsSent, report.Bytes(sr.BytesSent))
	}
}

func printCopySummary(rep *report.Reporter, res *copier.Result, took time.Duration, done bool) {
	rep.Event(map[string]any{"type": "summary", "dry_run": res.DryRun, "complete": done,
		"snapshots_copied": res.Copied, "snapshots_skipped": res.Skipped,
		"blobs_sent": res.BlobsSent, "data_blobs_sent": res.DataBlobsSent, "tree_blobs_sent": res.TreeBlobsSent,
		"bytes_sent": res.BytesSent, "stored_bytes_sent": res.StoredSent,
		"blobs_read": res.BlobsRead, "bytes_read": res.BytesRead, "blobs_not_read": res.BlobsNotRead, "trees_reused": res.TreesReused, "duration_secs": took.Seconds()})
	verb := "copied"
	if res.DryRun {
		verb = "would copy"
	}
	if !done {
		rep.Printf("stopped after %d snapshots copied; the data sent is kept and the next copy does not send it again\n", res.Copied)
	}
	if len(res.Snapshots) == 0 && done {
		rep.Printf("no snapshot to copy\n")
		return
	}
	rep.Printf("%s %s, skipped %d; %d blobs (%d data, %d trees), %s", verb, snapshotCount(res.Copied), res.Skipped,
		res.BlobsSent, res.DataBlobsSent, res.TreeBlobsSent, report.Bytes(res.BytesSent))
	if !res.DryRun {
		rep.Printf(" sent (%s stored)", report.Bytes(res.StoredSent))
	} else {
		rep.Printf(" to send")
	}
	rep.Printf("; read %d blobs, %s from the source in %s", res.BlobsRead, report.Bytes(res.BytesRead), took.Round(time.Millisecond))
	if res.BlobsNotRead > 0 || res.TreesReused > 0 {
		rep.Printf(" (from earlier copies: %d more blobs and %d unchanged directories were in the target)", res.BlobsNotRead, res.TreesReused)
	}
	rep.Printf("\n")
	if res.DryRun {
		rep.Printf("dry run: nothing was written\n")
	}
}
