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
