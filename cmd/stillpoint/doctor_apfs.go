package main

import (
	"github.com/stillpoint-backup/stillpoint/internal/report"
	"github.com/stillpoint-backup/stillpoint/internal/snapshot"
)

// printAPFS shows, per volume of the paths (macOS), whether it is APFS and
// its Time Machine local snapshots: which a stillpoint run left, which are
// mounted.
func printAPFS(rep *report.Reporter, r *snapshot.APFSReport) {
	if r.Error != "" {
		rep.Printf("apfs: %s\n", r.Error)
	}
	for _, v := range r.Volumes {
		if v.FSType != "apfs" {
			rep.Printf("volume %s: %s, not APFS: no local snapshots (apfs and clonefile do not fit)\n", v.Volume, v.FSType)
			continue
		}
		if v.Error != "" {
			rep.Printf("volume %s (APFS): cannot list its local snapshots: %s\n", v.Volume, v.Error)
			continue
		}
		ours := 0
		for _, s := range v.Snapshots {
			if s.Stillpoint != "" {
				ours++
			}
		}
		rep.Printf("volume %s (APFS, %s): %d Time Machine local snapshots, %d left by stillpoint\n", v.Volume, v.Device, len(v.Snapshots), ours)
		for _, s := range v.Snapshots {
			line := "  " + s.Name
			if s.Stillpoint != "" {
				line += " (left by stillpoint run " + s.Stillpoint + ")"
			}
			if s.MountedAt != "" {
				line += ", mounted at " + s.MountedAt
			}
			rep.Printf("%s\n", line)
		}
	}
}
