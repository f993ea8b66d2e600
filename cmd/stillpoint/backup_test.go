package main

import (
	"slices"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/hold"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/run"
	"github.com/stillpoint-backup/stillpoint/internal/vss"
)

// Each --hold flag overrides its own job file key only.
func TestHoldFlagsOverrideOnlyTheirKey(t *testing.T) {
	job := hold.Options{Enabled: true, Timeout: 5 * time.Second, Exclude: []string{"postgres"}}
	got, err := holdOptions(backupFlags{holdFor: time.Second, holdForSet: true, hold: "writers"}, job)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Enabled || got.Timeout != time.Second || !slices.Equal(got.Exclude, []string{"postgres"}) {
		t.Fatalf("--hold-timeout 1s over the job: %+v", got)
	}
	got, _ = holdOptions(backupFlags{hold: "off", holdSet: true, holdFor: hold.DefaultTimeout}, job)
	if got.Enabled || got.Timeout != 5*time.Second {
		t.Fatalf("--hold off over the job: %+v", got)
	}
	if _, err := holdOptions(backupFlags{hold: "maybe", holdSet: true}, job); err == nil {
		t.Fatal("--hold maybe accepted")
	}
	if _, err := holdOptions(backupFlags{hold: "writers", holdFor: 11 * time.Second, holdForSet: true}, job); err == nil {
		t.Fatal("--hold-timeout 11s accepted")
	}
}

func TestVSSSentence(t *testing.T) {
	got := vssSentence([]repo.VSSWriterInfo{
		{Name: "System Writer", State: "VSS_WS_STABLE"},
		{Name: "SqlServerWriter", State: "VSS_WS_FAILED_AT_FREEZE", Failed: true, Failure: "VSS_E_WRITERERROR_TIMEOUT", FailedAt: "DoSnapshotSet"},
		{Name: "Registry Writer", State: "VSS_WS_STABLE", Excluded: true},
	})
	want := "1 writers took part; 1 failed, so what they cover is crash-consistent: SqlServerWriter (VSS_WS_FAILED_AT_FREEZE, VSS_E_WRITERERROR_TIMEOUT, after DoSnapshotSet)"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestVSSFlags(t *testing.T) {
	var o run.BackupOptions
	if err := vssFlags(backupFlags{vssTimeout: 20 * time.Minute, vssPhase: 5 * time.Minute}, &o); err != nil || o.VSS.Timeout != 20*time.Minute || o.VSS.PhaseTimeout != 5*time.Minute || o.VSS.Retries != vss.DefaultRetries {
		t.Fatalf("%+v %v", o.VSS, err)
	}
	o = run.BackupOptions{}
	if err := vssFlags(backupFlags{vssTimeout: time.Minute, vssPhase: 5 * time.Minute}, &o); err == nil {
		t.Fatal("a phase longer than the set was accepted")
	}
}

// A file that could not be read is not counted unchanged (the lock step of
// scripts/wine-tests: one locked file, its neighbour read or unchanged).
func TestFilesLine(t *testing.T) {
	for _, c := range []struct {
		st        repo.Stats
		unchanged int64
		want      string
	}{
		{repo.Stats{Files: 2, FilesRead: 1, Dirs: 1}, 0, "2 (1 read, 0 unchanged, 1 not read), 1 directories, 0 other"},
		{repo.Stats{Files: 2, FilesRead: 0, Dirs: 1}, 1, "2 (0 read, 1 unchanged, 1 not read), 1 directories, 0 other"},
		{repo.Stats{Files: 2, FilesRead: 1, Dirs: 1, Others: 3}, 1, "2 (1 read, 1 unchanged), 1 directories, 3 other"},
		{repo.Stats{Files: 300, FilesRead: 300, Dirs: 20}, 0, "300 (300 read, 0 unchanged), 20 directories, 0 other"},
	} {
		if got := filesLine(c.st, c.unchanged); got != c.want {
			t.Errorf("filesLine(%+v, %d) = %q, want %q", c.st, c.unchanged, got, c.want)
		}
	}
}
