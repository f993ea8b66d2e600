package main

import (
	"context"
	"fmt"
	"path"
	"slices"

	"github.com/spf13/cobra"
	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/report"
)

func newDiffCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "diff SNAPSHOT1 SNAPSHOT2",
		Short: "Show what changed between two snapshots",
		Long: `List paths added (+), removed (-), with changed content (M) or changed metadata only (U)
from SNAPSHOT1 to SNAPSHOT2, then a count of each.`,
		Example: `  stillpoint diff 1a2b3c4d latest
  stillpoint diff latest@weekly latest:/srv/app`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDiff(cmd.Context(), g, args[0], args[1])
		},
	}
}

type diffCounts struct{ added, removed, modified, meta int }

func runDiff(ctx context.Context, g *globals, ref1, ref2 string) error {
	rep := g.reporter()
	r, snaps, err := loadSnapshots(ctx, g, rep)
	if err != nil {
		return err
	}
	s1, err := findSnapshot(snaps, ref1)
	if err != nil {
		return err
	}
	s2, err := findSnapshot(snaps, ref2)
	if err != nil {
		return err
	}
	var c diffCounts
	// paths as the newer snapshot's sources were written (C:\data\x)
	rules := pathmap.ForPaths(s2.Paths)
	emit := func(sign, p string) {
		switch sign {
		case "+":
			c.added++
		case "-":
			c.removed++
		case "M":
			c.modified++
		case "U":
			c.meta++
		}
		if rep.Mode == report.JSON {
			if rules.IsWindows() {
				p = rules.Display(p)
			}
			rep.Event(map[string]string{"type": "change", "change": sign, "path": p})
			return
		}
		fmt.Fprintf(rep.Out, "%s %s\n", sign, showPath(rules, p))
	}
	if err := diffTrees(ctx, r, "/", s1.Tree, s2.Tree, emit); err != nil {
		return err
	}
	rep.Event(map[string]any{"type": "summary", "added": c.added, "removed": c.removed, "modified": c.modified, "metadata": c.meta})
	rep.Printf("%d added, %d removed, %d modified, %d metadata only\n", c.added, c.removed, c.modified, c.meta)
	return nil
}

// diffTrees compares two trees; identical subtrees share an id and are skipped.
func diffTrees(ctx context.Context, r *repo.Repository, dir string, a, b repo.ID, emit func(string, string)) error {
	if a == b {
		return nil
	}
	var ta, tb *repo.Tree
	var err error
	if !a.IsNull() {
		if ta, err = r.LoadTree(ctx, a); err != nil {
			return err
		}
	} else {
		ta = &repo.Tree{}
	}
	if !b.IsNull() {
		if tb, err = r.LoadTree(ctx, b); err != nil {
			return err
		}
	} else {
		tb = &repo.Tree{}
	}
	i, j := 0, 0
	for i < len(ta.Nodes) || j < len(tb.Nodes) {
		var na, nb *repo.Node
		switch {
		case j >= len(tb.Nodes) || i < len(ta.Nodes) && ta.Nodes[i].Name < tb.Nodes[j].Name:
			na = ta.Nodes[i]
			i++
		case i >= len(ta.Nodes) || tb.Nodes[j].Name < ta.Nodes[i].Name:
			nb = tb.Nodes[j]
			j++
		default:
			na, nb = ta.Nodes[i], tb.Nodes[j]
			i++
			j++
		}
		name := ""
		if na != nil {
			name = na.Name
		} else {
			name = nb.Name
		}
		p := path.Join(dir, name)
		switch {
		case nb == nil:
			emit("-", p)
			if na.Type == repo.NodeDir {
				if err := diffTrees(ctx, r, p, na.Subtree, repo.ID{}, emit); err != nil {
					return err
				}
			}
		case na == nil:
			emit("+", p)
			if nb.Type == repo.NodeDir {
				if err := diffTrees(ctx, r, p, repo.ID{}, nb.Subtree, emit); err != nil {
					return err
				}
			}
		case na.Type != nb.Type:
			emit("-", p)
			emit("+", p)
		case na.Type == repo.NodeDir:
			if err := diffTrees(ctx, r, p, na.Subtree, nb.Subtree, emit); err != nil {
				return err
			}
		case !slices.Equal(na.Content, nb.Content) || na.LinkTarget != nb.LinkTarget || na.Size != nb.Size:
			emit("M", p)
		case na.Mode != nb.Mode || na.Mtime != nb.Mtime || na.UID != nb.UID || na.GID != nb.GID:
			emit("U", p)
		}
	}
	return nil
}
