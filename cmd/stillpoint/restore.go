package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/stillpoint-backup/stillpoint/internal/filter"
	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
	"github.com/stillpoint-backup/stillpoint/internal/report"
	"github.com/stillpoint-backup/stillpoint/internal/restore"
)

type restoreFlags struct {
	target    string
	includes  []string
	excludes  []string
	overwrite string
}

func newRestoreCmd(g *globals) *cobra.Command {
	var f restoreFlags
	cmd := &cobra.Command{
		Use:   "restore SNAPSHOT --target DIR",
		Short: "Restore files from a snapshot",
		Long: `Restore a snapshot below DIR: a file backed up as /srv/app/x is written to DIR/srv/app/x,
one backed up as C:\data\x to DIR/C/data/x (\\server\share\x to DIR/UNC/server/share/x).
Every byte is checked against its hash. Existing files are kept unless --overwrite says otherwise.
Files that were backed up while they changed, or could not be read (an older version
was kept), are restored with a warning. Exit code 3 when some files could not be restored.`,
		Example: `  stillpoint restore latest --target /tmp/restore
  stillpoint restore latest:/srv/app --target /tmp/restore --include '*.yml'
  stillpoint restore 1a2b3c4d --target / --overwrite if-changed    # back into place`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRestore(cmd.Context(), g, f, args[0])
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.target, "target", "t", "", "directory to restore into (required)")
	fl.StringArrayVarP(&f.includes, "include", "i", nil, "restore only paths matching PATTERN (repeatable)")
	fl.StringArrayVarP(&f.excludes, "exclude", "e", nil, "do not restore paths matching PATTERN (repeatable)")
	fl.StringVar(&f.overwrite, "overwrite", "never", "existing files: never, if-changed (size or mtime differ), always")
	_ = cmd.MarkFlagRequired("target")
	return cmd
}

func runRestore(ctx context.Context, g *globals, f restoreFlags, ref string) error {
	rep := g.reporter()
	ow, err := restore.ParseOverwrite(f.overwrite)
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	// patterns are checked before the repository is opened (good under
	// one platform's rules or the other); they are compiled under the rules
	// of the snapshot's paths below
	all := append(append([]string(nil), f.includes...), f.excludes...)
	if _, err := filter.CompileAll(all); err != nil {
		if _, werr := filter.CompileAllFor(pathmap.Windows, all); werr != nil {
			return &exitError{code: exitUsage, err: err}
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
	// a snapshot of Windows paths takes C:\data\x and matches without case
	rules := pathmap.ForPaths(s.Paths)
	inc, err := filter.CompileAllFor(rules, f.includes)
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	exc, err := filter.CompileAllFor(rules, f.excludes)
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	target, err := filepath.Abs(f.target)
	if err != nil {
		return err
	}
	lock, err := r.Lock(ctx, false, "restore")
	if err != nil {
		return err
	}
	defer lock.Unlock()
	progress := &restore.Progress{}
	stop := rep.Track("restore", func() report.Status {
		return report.Status{FilesDone: progress.Files.Load(), BytesDone: progress.Bytes.Load(),
			FilesTotal: s.Stats.Files, BytesTotal: s.Stats.Bytes, ScanDone: true}
	})
	res, err := restore.Run(ctx, r, s.Tree, restore.Options{
		Target: target, Select: filter.Selector{Include: inc, Exclude: exc}, Overwrite: ow, Progress: progress,
		OnEvent: func(e restore.Event) {
			p := e.Path
			if rules.IsWindows() {
				p = rules.Display(p)
			}
			if e.Kind == "error" {
				rep.Error(p, e.Message)
			} else {
				rep.Warn(p, e.Kind, e.Message)
			}
		},
	})
	stop()
	if err != nil {
		return err
	}
	code := exitOK
	if res.Errors > 0 {
		code = exitPartial
	}
	rep.Event(map[string]any{"type": "summary", "snapshot_id": s.ID.String(), "target": target,
		"files": res.Files, "dirs": res.Dirs, "others": res.Others, "bytes": res.Bytes,
		"kept_existing": res.Skipped, "errors": res.Errors, "not_whole": res.NotWhole, "exit_code": code})
	rep.Printf("restored snapshot %s to %s: %d files (%s), %d directories, %d other\n",
		s.ID.Short(), target, res.Files, report.Bytes(res.Bytes), res.Dirs, res.Others)
	if res.Files+res.Dirs+res.Others+res.Skipped == 0 && len(f.includes)+len(f.excludes) > 0 {
		rep.Warn("", "restore", fmt.Sprintf("nothing restored: no path of snapshot %s matches the --include and --exclude patterns (see `stillpoint ls %s`)", s.ID.Short(), s.ID.Short()))
	}
	if res.Skipped > 0 {
		rep.Printf("  %d existing files kept (--overwrite %s)\n", res.Skipped, f.overwrite)
	}
	if res.NotWhole > 0 {
		rep.Printf("  %d files were not backed up whole: see the warnings above\n", res.NotWhole)
	}
	if res.Errors > 0 {
		return &exitError{code: exitPartial, err: fmt.Errorf("%d files or directories could not be restored", res.Errors)}
	}
	return nil
}
