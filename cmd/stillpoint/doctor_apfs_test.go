package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/report"
	"github.com/stillpoint-backup/stillpoint/internal/snapshot"
)

// TestPrintAPFS: doctor says per volume whether it is APFS, counts its
// local snapshots, and marks the one a stillpoint run left and its mount.
func TestPrintAPFS(t *testing.T) {
	var out bytes.Buffer
	rep := &report.Reporter{Mode: report.Human, Out: &out, Err: &out}
	printAPFS(rep, &snapshot.APFSReport{Volumes: []snapshot.APFSVolumeReport{
		{Volume: "/System/Volumes/Data", FSType: "apfs", Device: "/dev/disk3s5", Snapshots: []snapshot.APFSLocalSnapshot{
			{Name: "com.apple.TimeMachine.2026-12-01-093012.local", Date: "2026-12-01-093012"},
			{Name: "com.apple.TimeMachine.2026-12-01-104512.local", Date: "2026-12-01-104512",
				Stillpoint: "20261201T104511.734120Z-4242-nightly", MountedAt: "/System/Volumes/Data/.stillpoint-snapshots/20261201T104511.734120Z-4242-nightly"},
		}},
		{Volume: "/Volumes/Old", FSType: "hfs"},
		{Volume: "/Volumes/Photos", FSType: "apfs", Error: "apfs: tmutil listlocalsnapshots /Volumes/Photos: exit status 1"},
	}})
	got := out.String()
	for _, want := range []string{
		"volume /System/Volumes/Data (APFS, /dev/disk3s5): 2 Time Machine local snapshots, 1 left by stillpoint\n" +
			"  com.apple.TimeMachine.2026-12-01-093012.local\n" +
			"  com.apple.TimeMachine.2026-12-01-104512.local (left by stillpoint run 20261201T104511.734120Z-4242-nightly), mounted at /System/Volumes/Data/.stillpoint-snapshots/20261201T104511.734120Z-4242-nightly\n",
		"volume /Volumes/Old: hfs, not APFS",
		"volume /Volumes/Photos (APFS): cannot list its local snapshots: apfs: tmutil listlocalsnapshots /Volumes/Photos: exit status 1\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("doctor printed\n%s\nwithout\n%s", got, want)
		}
	}
}
