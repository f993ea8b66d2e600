package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/stillpoint-backup/stillpoint/internal/livefile"
	"github.com/stillpoint-backup/stillpoint/internal/report"
	"github.com/stillpoint-backup/stillpoint/internal/run"
	"github.com/stillpoint-backup/stillpoint/internal/snapshot"
)

func newDoctorCmd(g *globals) *cobra.Command {
	var cleanup bool
	cmd := &cobra.Command{
		Use:   "doctor [PATH...]",
		Short: "Show how paths can be snapped, and leftovers of killed runs",
		Long: `For each PATH: its filesystem, mount point, subvolume, and which snapshot providers fit
at what consistency level. Then every stillpoint snapshot or staging directory left by
a run that was killed (on all mounts); --cleanup removes those whose process is gone.
On Windows also what vssadmin list writers, shadows and providers would show, and for
each shadow copy provider which PATHs' volumes it can snap. On macOS each PATH's volume,
APFS or not, and its Time Machine local snapshots: which stillpoint left, which are mounted.`,
		Example: `  stillpoint doctor /srv/app /home
  stillpoint doctor --cleanup                  # remove what killed runs left: snapshots, staging`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDoctor(cmd.Context(), g, args, cleanup)
		},
	}
	cmd.Flags().BoolVar(&cleanup, "cleanup", false, "remove leftovers of runs that are no longer alive")
	return cmd
}

func runDoctor(_ context.Context, g *globals, paths []string, cleanup bool) error {
	rep := g.reporter()
	for i, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return err
		}
		if _, err := os.Lstat(abs); err != nil {
			return fmt.Errorf("%s: %w (doctor looks at paths you would back up)", abs, errors.Unwrap(err))
		}
		paths[i] = abs
	}
	dr, err := snapshot.Doctor(paths)
	if err != nil {
		return err
	}
	var removed []string
	if cleanup {
		var stale []snapshot.Leftover
		for _, lo := range dr.Leftovers {
			if !lo.InUse {
				stale = append(stale, lo)
				removed = append(removed, lo.Path)
			}
		}
		if err := snapshot.Cleanup(stale); err != nil {
			return fmt.Errorf("cleanup: %w", err)
		}
		staged, err := livefile.PurgeStaging(filepath.Join(run.CacheDir(), "staging"))
		if err != nil {
			rep.Warn("staging", "cleanup", err.Error())
		}
		removed = append(removed, staged...)
	}
	apfs := snapshot.APFSDoctor(paths) // nil off macOS
	if g.json {
		rep.Event(map[string]any{"type": "doctor", "paths": dr.Paths, "leftovers": dr.Leftovers, "removed": removed, "vss": dr.VSS, "apfs": apfs})
		return nil
	}
	for _, p := range dr.Paths {
		rep.Printf("%s\n", p.Path)
		if p.Error != "" {
			rep.Printf("  error: %s\n", p.Error)
			continue
		}
		rep.Printf("  filesystem: %s, mounted at %s (device %s)\n", p.FS.FSType, p.FS.Mountpoint, p.FS.Device)
		if p.Subvolume != nil {
			rep.Printf("  btrfs subvolume: id %d at %s\n", p.Subvolume.ID, p.Subvolume.Root)
		}
		for _, f := range p.Fits {
			if f.OK {
				extra := ""
				if f.Consistency == snapshot.Crash {
					extra = " (a point in time, volume, when backup holds the writers: --hold writers, the default)"
				}
				rep.Printf("  %-8s fits: %s consistency%s\n", f.Provider, f.Consistency, extra)
			} else {
				rep.Printf("  %-8s does not fit: %s\n", f.Provider, f.Reason)
			}
		}
	}
	if dr.VSS != nil {
		printVSS(rep, dr.VSS)
	}
	if apfs != nil {
		printAPFS(rep, apfs)
	}
	if len(dr.Leftovers) == 0 {
		rep.Printf("no leftover snapshots or staging directories\n")
	}
	for _, lo := range dr.Leftovers {
		state := "stale (its run is gone)"
		if lo.InUse {
			state = "in use by a running backup"
		}
		rep.Printf("leftover %s %s: %s\n", lo.Kind, lo.Path, state)
	}
	if cleanup {
		rep.Printf("removed %d leftovers%s\n", len(removed), listSuffix(removed))
	} else if len(dr.Leftovers) > 0 {
		rep.Printf("run `stillpoint doctor --cleanup` to remove stale leftovers\n")
	}
	return nil
}

// printVSS shows what vssadmin list writers and list shadows would.
func printVSS(rep *report.Reporter, v *snapshot.VSSReport) {
	if v.Error != "" {
		rep.Printf("vss: cannot ask Volume Shadow Copy: %s\n", v.Error)
		return
	}
	failed := 0
	for _, w := range v.Writers {
		if strings.Contains(w.State, "FAILED") {
			failed++
		}
	}
	rep.Printf("vss: %d writers (%d failed), %d shadow copies, %d providers on the system\n", len(v.Writers), failed, len(v.Shadows), len(v.Providers))
	for _, w := range v.Writers {
		last := ""
		if w.LastError != "" {
			last = ", last error " + w.LastError
		}
		rep.Printf("  writer %q %s: %s%s\n", w.Name, w.ID, w.State, last)
	}
	for _, s := range v.Shadows {
		rep.Printf("  shadow %s of %s: %s, created %s\n", s.ID, s.OriginalVolume, s.Device, s.Created.Format(time.RFC3339))
	}
	printVSSProviders(rep, v)
	rep.Printf("  stillpoint's shadow copies are non-persistent (VSS_CTX_BACKUP): they vanish with the run, so there are none to clean up\n")
}

// printVSSProviders shows what vssadmin list providers would, and which
// of the paths doctor was given each provider can snap.
func printVSSProviders(rep *report.Reporter, v *snapshot.VSSReport) {
	if v.ProvidersError != "" {
		rep.Printf("  providers: cannot list them: %s\n", v.ProvidersError)
		return
	}
	for _, p := range v.Providers {
		rep.Printf("  provider %q %s: %s, version %s\n", p.Name, p.ID, p.Type, p.Version)
		if len(p.Fits) > 0 {
			rep.Printf("    fits %s\n", strings.Join(p.Fits, ", "))
		}
		for _, n := range p.DoesNotFit {
			rep.Printf("    does not fit %s: %s\n", n.Path, n.Reason)
		}
	}
}

func listSuffix(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return ": " + strings.Join(s, ", ")
}
