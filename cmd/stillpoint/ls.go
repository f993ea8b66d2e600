package main

import (
	"context"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/stillpoint-backup/stillpoint/internal/inspect"
	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/report"
)

type lsFlags struct {
	long     bool
	null     bool
	outcomes string
}

func newLsCmd(g *globals) *cobra.Command {
	var f lsFlags
	cmd := &cobra.Command{
		Use:   "ls SNAPSHOT [PATH]",
		Short: "List the files of a snapshot by their original paths",
		Long: `List the files of a snapshot, one original path per line, below PATH if given.
SNAPSHOT is an id, a unique id prefix, "latest", "latest:PATH" or "latest@TAG".

Names with control characters or invalid UTF-8 are shown escaped (\n, \xNN,
\\); use -0 for raw names separated by NUL bytes.`,
		Example: `  stillpoint ls latest
  stillpoint ls -l latest /srv/app
  stillpoint ls 1a2b3c4d --outcome changed,failed`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			sub := "/"
			if len(args) == 2 {
				sub = args[1]
			}
			return runLs(cmd.Context(), g, f, args[0], sub)
		},
	}
	cmd.Flags().BoolVarP(&f.long, "long", "l", false, "show mode, size, modification time and outcome")
	cmd.Flags().BoolVarP(&f.null, "null", "0", false, "raw paths separated by NUL bytes")
	cmd.Flags().StringVar(&f.outcomes, "outcome", "", "only files with these outcomes (comma-separated: ok, ok-snapshot, changed, skipped-open, failed, stale)")
	return cmd
}

func runLs(ctx context.Context, g *globals, f lsFlags, ref, sub string) error {
	rep := g.reporter()
	want := map[outcome.Outcome]bool{}
	if f.outcomes != "" {
		for _, s := range strings.Split(f.outcomes, ",") {
			o, err := outcome.Parse(strings.TrimSpace(s))
			if err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			want[o] = true
		}
	}
	r, snaps, err := loadSnapshots(ctx, g, rep)
	if err != nil {
		return err
	}
	s, err := findSnapshot(snaps, ref)
	if err != nil {
		return err
	}
	if sub, err = snapPath(ctx, r, s, sub); err != nil {
		return err
	}
	if f.long && rep.Mode != report.JSON {
		// how the data was read, before the listing (plain ls stays pipeable)
		fmt.Fprintf(rep.Out, "# snapshot %s, %s, consistency %s\n", s.ID.Short(), s.Time.Local().Format("2006-01-02 15:04:05"), s.Consistency)
		for _, src := range s.Sources {
			how := "read live"
			if src.Provider != "none" {
				how = fmt.Sprintf("%s snapshot created %s", src.Provider, src.Created.Local().Format("15:04:05.000"))
			}
			fmt.Fprintf(rep.Out, "# source %s: %s, %s consistency\n", escape(src.Path, !pathmap.ForPaths(s.Paths).IsWindows()), how, src.Consistency)
		}
	}
	rules := pathmap.ForPaths(s.Paths)
	found := sub == "/"
	err = walkTree(ctx, r, "/", s.Tree, func(p string, n *repo.Node) error {
		if !(p == sub || strings.HasPrefix(p, strings.TrimSuffix(sub, "/")+"/")) {
			return nil
		}
		found = true
		if len(want) > 0 && !want[n.Outcome] {
			return nil
		}
		shown := p
		if rules.IsWindows() {
			shown = rules.Display(p) // C:\data\x
		}
		switch {
		case rep.Mode == report.JSON:
			rep.Event(map[string]any{
				"path": shown, "type": n.Type.String(), "mode": fmt.Sprintf("%04o", n.Mode), "size": n.Size,
				"mtime": time.Unix(0, n.Mtime).UTC(), "uid": n.UID, "gid": n.GID,
				"outcome": n.Outcome.String(), "reason": n.Reason, "holder": n.Holder, "link_target": n.LinkTarget,
			})
		case f.null:
			fmt.Fprintf(rep.Out, "%s\x00", shown)
		case f.long:
			extra := ""
			if !n.Outcome.Whole() {
				extra = "  [" + n.Outcome.String()
				if n.Reason != "" {
					extra += ": " + n.Reason
				}
				extra += "]"
			}
			fmt.Fprintf(rep.Out, "%s %8s %8s %12d %s %s%s\n", modeString(n), owner(n.UID), owner(n.GID), n.Size,
				time.Unix(0, n.Mtime).Local().Format("2006-01-02 15:04:05"), showPath(rules, p), extra)
		default:
			fmt.Fprintln(rep.Out, showPath(rules, p))
		}
		return nil
	}, sub)
	if err == nil && !found {
		return fmt.Errorf("snapshot %s holds no %s (it has %s)", s.ID.Short(), showPath(rules, sub), shownPaths(s))
	}
	return err
}

// walkTree calls fn for every node below dir in path order, descending only
// into directories on the way to or below within.
func walkTree(ctx context.Context, r *repo.Repository, dir string, id repo.ID, fn func(string, *repo.Node) error, within string) error {
	t, err := r.LoadTree(ctx, id)
	if err != nil {
		return fmt.Errorf("directory %s: %w", dir, err)
	}
	for _, n := range t.Nodes {
		p := path.Join(dir, n.Name)
		if err := fn(p, n); err != nil {
			return err
		}
		if n.Type == repo.NodeDir && !n.Subtree.IsNull() && related(p, within) {
			if err := walkTree(ctx, r, p, n.Subtree, fn, within); err != nil {
				return err
			}
		}
	}
	return nil
}

// related tells whether p is on the way to within or below it.
func related(p, within string) bool {
	if within == "/" || p == within {
		return true
	}
	return strings.HasPrefix(within, p+"/") || strings.HasPrefix(p, within+"/")
}

func owner(id uint32) string { return fmt.Sprint(id) }

// modeString formats a mode as ls -l does: a type letter, then rwx for
// owner, group and others, with setuid and setgid as s (S without x) in
// the owner's and the group's x, and the sticky bit as t (T) in the others'.
func modeString(n *repo.Node) string {
	b := []byte{typeLetter(n.Type), 'r', 'w', 'x', 'r', 'w', 'x', 'r', 'w', 'x'}
	for i := 0; i < 9; i++ {
		if n.Mode&(1<<(8-i)) == 0 {
			b[1+i] = '-'
		}
	}
	special := func(bit uint32, pos int, letter byte) {
		if n.Mode&bit == 0 {
			return
		}
		if b[pos] == 'x' {
			b[pos] = letter
		} else {
			b[pos] = letter - 'a' + 'A'
		}
	}
	special(0o4000, 3, 's')
	special(0o2000, 6, 's')
	special(0o1000, 9, 't')
	return string(b)
}

func typeLetter(t repo.NodeType) byte {
	switch t {
	case repo.NodeDir:
		return 'd'
	case repo.NodeSymlink:
		return 'l'
	case repo.NodeDevice:
		return 'b'
	case repo.NodeCharDevice:
		return 'c'
	case repo.NodeFIFO:
		return 'p'
	case repo.NodeSocket:
		return 's'
	}
	return '-'
}

func escapePaths(ps []string) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = escapePath(p)
	}
	return strings.Join(out, ", ")
}

// snapPath maps a path argument naming a place in snapshot s to its
// repository path, spelt as in the tree: for a snapshot of Windows paths
// C:\data\x, c:/DATA/x and /C/data/x all name /C/data/x.
func snapPath(ctx context.Context, r *repo.Repository, s *repo.Snapshot, arg string) (string, error) {
	rules := pathmap.ForPaths(s.Paths)
	return inspect.Resolve(ctx, r, s.Tree, rules.Arg(arg), rules)
}

// shownPath is a repository path of snapshot s as the user wrote it
// (C:\data\x for /C/data/x in a snapshot of Windows paths), escaped.
func shownPath(s *repo.Snapshot, p string) string {
	return showPath(pathmap.ForPaths(s.Paths), p)
}

func showPath(rules pathmap.Rules, p string) string {
	if !rules.IsWindows() {
		return escapePath(p)
	}
	// no Windows name holds a backslash: it is the separator here
	return escape(rules.Display(p), false)
}

// shownPaths is the manifest's paths of s (OS paths), escaped.
func shownPaths(s *repo.Snapshot) string {
	if !pathmap.ForPaths(s.Paths).IsWindows() {
		return escapePaths(s.Paths)
	}
	out := make([]string, len(s.Paths))
	for i, p := range s.Paths {
		out[i] = escape(p, false)
	}
	return strings.Join(out, ", ")
}

// escapePath makes any name printable on one line: control characters,
// backslashes and invalid UTF-8 bytes are escaped; other names print as they are.
func escapePath(p string) string { return escape(p, true) }

func escape(p string, backslash bool) string { return report.EscapeName(p, backslash) }
