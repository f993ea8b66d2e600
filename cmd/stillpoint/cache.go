package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/stillpoint-backup/stillpoint/internal/backend/cache"
	"github.com/stillpoint-backup/stillpoint/internal/report"
	"github.com/stillpoint-backup/stillpoint/internal/run"
)

// defaultCacheMaxAge is how long `cache --cleanup` keeps a repository's
// copies that no command used: a month, as restic does.
const defaultCacheMaxAge = 30 * 24 * time.Hour

func newCacheCmd(g *globals) *cobra.Command {
	var cleanup bool
	var maxAge time.Duration
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "List the local copies of S3 repositories' files, or remove unused ones",
		Long: `List, per repository, the local copies of keys, index, snapshots and tree packs that
commands on S3 repositories keep in the cache directory, with their size and last use.
With --cleanup, remove the copies of repositories no command used for --max-age (run
logs stay). Removing copies is always safe: they are read again from the repository.`,
		Example: `  stillpoint cache
  stillpoint cache --cleanup                   # the copies no command used for 30 days
  stillpoint cache --cleanup --max-age 168h`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if maxAge <= 0 {
				return &exitError{code: exitUsage, err: fmt.Errorf("--max-age %s: give a duration above 0", maxAge)}
			}
			return runCache(g, cleanup, maxAge, time.Now())
		},
	}
	cmd.Flags().BoolVar(&cleanup, "cleanup", false, "remove the copies of repositories not used for --max-age")
	cmd.Flags().DurationVar(&maxAge, "max-age", defaultCacheMaxAge, "with --cleanup: how long unused copies are kept")
	return cmd
}

func runCache(g *globals, cleanup bool, maxAge time.Duration, now time.Time) error {
	rep := g.reporter()
	dirs, err := cache.Dirs(run.CacheDir())
	if err != nil {
		return fmt.Errorf("cache directory %s: %w", run.CacheDir(), err)
	}
	var removed int
	var freed int64
	for _, d := range dirs {
		old := now.Sub(d.LastUsed) > maxAge
		gone := false
		if cleanup && old {
			if err := os.RemoveAll(d.Path); err != nil {
				rep.Warn(d.Path, "cache", "not removed: "+err.Error())
			} else {
				gone = true
				removed++
				freed += d.Bytes
			}
		}
		if rep.Mode == report.JSON {
			rep.Event(map[string]any{"type": "cache", "repository_id": d.RepositoryID, "path": d.Path,
				"files": d.Files, "bytes": d.Bytes, "last_used": d.LastUsed, "removed": gone})
			continue
		}
		state := ""
		if gone {
			state = " (removed)"
		}
		rep.Printf("%s  %6d files  %10s  last used %s%s\n", d.RepositoryID[:12], d.Files, report.Bytes(d.Bytes), d.LastUsed.Format(time.DateTime), state)
	}
	if rep.Mode == report.JSON {
		rep.Event(map[string]any{"type": "summary", "repositories": len(dirs), "removed": removed, "bytes_freed": freed})
		return nil
	}
	if len(dirs) == 0 {
		rep.Printf("no copies in %s\n", run.CacheDir())
		return nil
	}
	if cleanup {
		what := "repositories"
		if removed == 1 {
			what = "repository"
		}
		rep.Printf("removed the copies of %d %s unused for %s (%s)\n", removed, what, maxAge, report.Bytes(freed))
	}
	return nil
}
