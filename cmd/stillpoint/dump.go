package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/stillpoint-backup/stillpoint/internal/inspect"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/report"
	"github.com/stillpoint-backup/stillpoint/internal/restore"
	"golang.org/x/term"
)

type dumpFlags struct {
	archive string
	target  string
	force   bool
}

func newDumpCmd(g *globals) *cobra.Command {
	var f dumpFlags
	cmd := &cobra.Command{
		Use:   "dump SNAPSHOT PATH",
		Short: "Write a file of a snapshot to stdout, or a directory as a tar or zip archive",
		Long: `Write the file at PATH (its original path) to stdout, or, for a directory (PATH "/" is
the whole snapshot), an archive of it: a pax tar by default (modes, owners, times to the
nanosecond, symlinks, hard links, devices, fifos, extended attributes), or a zip
(--archive zip: files, directories and symlinks with modes and times). Archive entries are
named by their original paths without the leading slash. Every byte is checked against
its hash. An archive is not written to a terminal: redirect it or use --target.

A file that was not backed up whole (it changed while it was read, or could not be read
and an older version was kept) is refused, exit code 3, unless --force: then its stored
content is written with a warning. In an archive such files are included, each with a
warning. Exit code 3 also when something was left out or could not be read (named on
stderr); 1 when nothing could be written.`,
		Example: `  stillpoint dump latest /srv/app/config.yml > config.yml
  stillpoint dump latest /srv/app > app.tar
  stillpoint dump 1a2b3c4d /home/me/photos --archive zip --target photos.zip
  stillpoint dump latest / | tar -tvf -`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDump(cmd.Context(), g, f, cmd.Flags().Changed("archive"), args[0], args[1])
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.archive, "archive", "a", "tar", "archive format for a directory: tar or zip (given for a file, it is archived too)")
	fl.StringVarP(&f.target, "target", "t", "", "write to this file instead of stdout")
	fl.BoolVarP(&f.force, "force", "f", false, "dump a file that was not backed up whole")
	return cmd
}

func runDump(ctx context.Context, g *globals, f dumpFlags, archiveGiven bool, ref, p string) error {
	if f.archive != "tar" && f.archive != "zip" {
		return &exitError{code: exitUsage, err: fmt.Errorf("unknown --archive %q (want tar or zip)", f.archive)}
	}
	rep := g.reporter()
	// stdout is the data: messages and --json events go to stderr
	rep.Out = rep.Err
	r, snaps, err := loadSnapshots(ctx, g, rep)
	if err != nil {
		return err
	}
	s, err := findSnapshot(snaps, ref)
	if err != nil {
		return err
	}
	if p, err = snapPath(ctx, r, s, p); err != nil {
		return err
	}
	lock, err := r.Lock(ctx, false, "dump")
	if err != nil {
		return err
	}
	defer lock.Unlock()
	n, err := inspect.Lookup(ctx, r, s.Tree, p)
	var nf *inspect.NotFoundError
	if errors.As(err, &nf) {
		near := nf.Nearest
		if nf.NotDir != "" {
			near = path.Dir(nf.NotDir)
		}
		return fmt.Errorf("snapshot %s: %w (`stillpoint ls %s %s` lists what is there; the snapshot's paths: %s)", s.ID.Short(), err, s.ID.Short(), shownPath(s, near), shownPaths(s))
	}
	if err != nil {
		return err
	}
	asArchive := n.Type == repo.NodeDir || archiveGiven
	if !asArchive && n.Type != repo.NodeFile {
		return fmt.Errorf("%s in snapshot %s is a %s, not a file or directory: dump it in an archive (--archive tar)", shownPath(s, p), s.ID.Short(), n.Type)
	}
	ctx, stdout, done := watchPipe(ctx, os.Stdout)
	defer done(nil)
	out := stdout
	var file *os.File
	switch {
	case f.target != "":
		if file, err = os.Create(f.target); err != nil {
			return err
		}
		out = file
	case asArchive && term.IsTerminal(int(os.Stdout.Fd())):
		return &exitError{code: exitUsage, err: fmt.Errorf("stdout is a terminal: redirect the %s archive to a file or a pipe, or use --target FILE", f.archive)}
	}
	opts := restore.DumpOptions{Archive: f.archive, Force: f.force, OnEvent: func(e restore.Event) {
		if e.Kind == "error" {
			rep.Error(e.Path, e.Message)
		} else {
			rep.Warn(e.Path, e.Kind, e.Message)
		}
	}}
	var res *restore.DumpResult
	if asArchive {
		res, err = restore.DumpArchive(ctx, r, p, n, out, opts)
	} else {
		res, err = restore.DumpFile(ctx, r, p, n, out, opts)
	}
	if file != nil {
		if cerr := file.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(f.target)
		}
	}
	var quiet *exitError
	if err = done(err); errors.As(err, &quiet) && quiet.err == nil {
		return err // stdout was closed: nothing to say
	}
	var nw *restore.NotWholeError
	if errors.As(err, &nw) {
		return &exitError{code: exitPartial, err: fmt.Errorf("snapshot %s: %w", s.ID.Short(), err)}
	}
	if err != nil {
		return err
	}
	code := exitOK
	if res.NotWhole+res.Errors+res.Skipped > 0 {
		code = exitPartial
	}
	where := "stdout"
	if f.target != "" {
		where, _ = filepath.Abs(f.target)
	}
	ev := map[string]any{"type": "summary", "snapshot_id": s.ID.String(), "path": p, "archive": "", "files": res.Files,
		"dirs": res.Dirs, "others": res.Others, "bytes": res.Bytes, "not_whole": res.NotWhole,
		"skipped": res.Skipped, "errors": res.Errors, "exit_code": code, "target": where}
	if asArchive {
		ev["archive"] = f.archive
	}
	rep.Event(ev)
	if asArchive {
		rep.Printf("dumped %s of snapshot %s as %s to %s: %d files (%s), %d directories, %d other\n",
			escapePath(p), s.ID.Short(), f.archive, where, res.Files, report.Bytes(res.Bytes), res.Dirs, res.Others)
	}
	if code != exitOK {
		return &exitError{code: code, err: fmt.Errorf("%d files not whole, %d left out, %d could not be read (see the warnings above)", res.NotWhole, res.Skipped, res.Errors)}
	}
	return nil
}
