package main

import (
	"slices"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/hold"
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
