package main

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
	"github.com/stillpoint-backup/stillpoint/internal/backend/s3"
	"github.com/stillpoint-backup/stillpoint/internal/mount"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

type mountFlags struct {
	cacheSize  string
	allowOther bool
}

func newMountCmd(g *globals) *cobra.Command {
	var f mountFlags
	cmd := &cobra.Command{
		Use:   "mount DIR",
		Short: "Browse the snapshots as a read-only file system (FUSE)",
		Long: `Mount the repository's snapshots read-only at DIR, until Ctrl-C, SIGTERM or
` + "`fusermount3 -u DIR`" + ` (exit code 0 then):

  DIR/snapshots/<time>/<original path>   every snapshot, named by its time
  DIR/latest                             the newest snapshot
  DIR/ids/<short id>                     a link to each snapshot by id
  DIR/hosts/<host>/<time>/, DIR/tags/<tag>/<time>/ (each with its latest)

A snapshot of Windows paths shows them as the repository stores them
(C:\data\x as /C/data/x). Every file and directory carries the extended
attribute user.stillpoint.outcome (ok, ok-snapshot, changed, skipped-open,
failed, stale) and user.stillpoint.reason when it was not stored whole, beside
its own stored attributes. A backup made while mounted appears within seconds.

Directories are read when first opened, and a read fetches only the blobs it
needs, through a cache of --cache-size. The mount holds a shared lock of the
repository: backups, restores and prune go on, and prune keeps what the mount
may still read until it ends. The mount's memory limit follows what it holds
(GOMEMLIMIT and GOGC in the environment replace that). Needs FUSE: /dev/fuse, and for users other than
root fusermount3 (Debian and Ubuntu: apt install fuse3). Linux only.`,
		Example: `  mkdir -p /mnt/backup && stillpoint mount /mnt/backup &
  ls /mnt/backup/snapshots/
  cp -a /mnt/backup/latest/srv/app/config.yml /srv/app/
  getfattr -d /mnt/backup/latest/srv/app/app.db     # user.stillpoint.outcome="ok"
  fusermount3 -u /mnt/backup`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runMount(cmd.Context(), g, f, args[0])
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.cacheSize, "cache-size", fmt.Sprintf("%dM", mount.DefaultCacheSize>>20), "memory for the blobs read last (a size: 64M, 1G); the kernel caches what files were read besides")
	fl.BoolVar(&f.allowOther, "allow-other", false, "let other users in, as the files' modes allow (non-root: needs user_allow_other in /etc/fuse.conf)")
	return cmd
}

// mountGCPercent: with the mount's memory limit doing the pacing, the heap
// goal of GOGC only bounds it when the live heap is below MemoryFloor.
const mountGCPercent = 100

func runMount(ctx context.Context, g *globals, f mountFlags, dir string) error {
	rep := g.reporter()
	size, err := repo.ParseSize(f.cacheSize)
	if err != nil || size < 1<<20 {
		return &exitError{code: exitUsage, err: fmt.Errorf("--cache-size %q: want a size of at least 1M, such as 64M or 1G", f.cacheSize)}
	}
	if err := mount.Available(); err != nil {
		return err
	}
	loc := g.access.Location()
	local := loc
	if s3.IsLocation(loc) {
		local = ""
	}
	if err := mount.CheckPlace(dir, local); err != nil {
		return err
	}
	r, err := openRepo(ctx, g)
	if err != nil {
		return err
	}
	lock, err := r.Lock(ctx, false, "mount")
	if err != nil {
		return err
	}
	defer lock.Unlock()
	// the mount's own memory policy in place of the commands' GOGC=25 and
	// fixed limit: a soft limit that follows the live heap does the pacing
	// and returns freed memory (GOGC and GOMEMLIMIT set by the user win)
	if os.Getenv("GOGC") == "" {
		defer debug.SetGCPercent(debug.SetGCPercent(mountGCPercent))
	}
	defer mount.StartMemoryPolicy(mount.MemoryBudget(size))()
	return mount.Serve(ctx, r, dir, mount.Options{
		CacheSize:  size,
		AllowOther: f.allowOther,
		Debug:      os.Getenv("STILLPOINT_FUSE_DEBUG") != "",
		Name:       "stillpoint:" + strings.ReplaceAll(loc, ",", "_"),
		Warn:       func(msg string) { rep.Warn("", "mount", msg) },
		Ready: func() {
			rep.Step(fmt.Sprintf("snapshots of %s mounted at %s; Ctrl-C or `fusermount3 -u %s` unmounts", loc, dir, dir))
			rep.Event(map[string]string{"type": "mounted", "dir": dir, "repository": loc})
		},
	})
}
