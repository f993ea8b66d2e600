package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

type tagFlags struct {
	add, remove, set []string
}

func newTagCmd(g *globals) *cobra.Command {
	var f tagFlags
	cmd := &cobra.Command{
		Use:   "tag SNAPSHOT... --add TAG | --remove TAG | --set TAG",
		Short: "Add, remove or replace the tags of snapshots",
		Long: `Change the tags of each SNAPSHOT. --add and --remove may be combined; --set replaces
all tags (--set "" removes them all). Each flag may be repeated and takes comma-separated
lists ("--add a,b").

A manifest is never overwritten: the snapshot is written again under a new id with the
new tags and a field "original" naming the id it first had, and only then is the old
manifest removed, so the snapshot exists at every moment. Its files are not touched.
A snapshot whose tags are already as asked is left as it is.

Exit code 1 when a snapshot could not be tagged; the others named are tagged all the same.`,
		Example: `  stillpoint tag latest --add keep
  stillpoint tag 1a2b3c4d 5e6f7a8b --remove nightly --add monthly
  stillpoint tag latest@nightly --set archived`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := repo.TagChange{Replace: cmd.Flags().Changed("set"), Set: repo.SplitTags(f.set),
				Add: repo.SplitTags(f.add), Remove: repo.SplitTags(f.remove)}
			if err := c.Validate(); err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			return runTag(cmd.Context(), g, c, args)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&f.add, "add", nil, "add TAG (repeatable, comma-separated)")
	fl.StringArrayVar(&f.remove, "remove", nil, "remove TAG (repeatable, comma-separated)")
	fl.StringArrayVar(&f.set, "set", nil, "replace all tags with TAG (repeatable, comma-separated; \"\" for none)")
	return cmd
}

func runTag(ctx context.Context, g *globals, c repo.TagChange, refs []string) error {
	rep := g.reporter()
	r, snaps, err := loadSnapshots(ctx, g, rep)
	if err != nil {
		return err
	}
	sel, err := resolveSnapshotRefs(snaps, refs)
	if err != nil {
		return err
	}
	lock, err := r.Lock(ctx, false, "tag")
	if err != nil {
		return err
	}
	defer lock.Unlock()
	changed := 0
	failed := 0
	for _, s := range sel {
		ns, did, err := r.Tag(ctx, s, c)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			rep.Error("snapshot "+s.ID.Short(), err.Error())
			failed++
			continue
		}
		ev := map[string]any{"type": "snapshot", "snapshot": s.ID.String(), "changed": did, "tags": ns.Tags}
		if did {
			changed++
			ev["new_id"] = ns.ID.String()
			rep.Printf("snapshot %s is now %s, tags: %s\n", s.ID.Short(), ns.ID.Short(), tagList(ns.Tags))
		} else {
			rep.Printf("snapshot %s unchanged, tags: %s\n", s.ID.Short(), tagList(ns.Tags))
		}
		rep.Event(ev)
	}
	rep.Event(map[string]any{"type": "summary", "changed": changed, "snapshots": len(sel), "errors": failed})
	if failed > 0 {
		return &exitError{code: exitFatal, err: fmt.Errorf("%d of %s could not be tagged (see above)", failed, snapshotCount(len(sel)))}
	}
	return nil
}

func tagList(tags []string) string {
	if len(tags) == 0 {
		return "(none)"
	}
	return strings.Join(tags, ", ")
}
