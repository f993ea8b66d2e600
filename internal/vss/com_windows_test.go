package vss

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/windows"
)

// underWine tells whether the test runs under Wine, whose VssApi.dll
// answers E_NOTIMPL.
func underWine() bool {
	return windows.NewLazySystemDLL("ntdll.dll").NewProc("wine_get_version").Find() == nil
}

func TestProbeUnderWine(t *testing.T) {
	if !underWine() {
		t.Skip("not under Wine")
	}
	err := Probe()
	if Code(err) != E_NOTIMPL || !strings.Contains(err.Error(), "CreateVssBackupComponents: E_NOTIMPL") ||
		!strings.Contains(err.Error(), "read live") {
		t.Fatalf("under Wine, want E_NOTIMPL with advice to read live, got %v", err)
	}
}

// needElevated skips unless the process is elevated on real Windows;
// with STILLPOINT_VSS_ADMIN=1 (the workflow's admin job) it fails instead.
// The non-admin job sets STILLPOINT_VSS_NONADMIN=1: there the refusal is
// what is tested.
func needElevated(t *testing.T) {
	t.Helper()
	admin := os.Getenv("STILLPOINT_VSS_ADMIN") == "1"
	switch {
	case underWine() && admin:
		t.Fatal("STILLPOINT_VSS_ADMIN=1 under Wine, which has no VSS")
	case underWine():
		t.Skip("Wine has no VSS (see TestProbeUnderWine)")
	case !windows.GetCurrentProcessToken().IsElevated() && admin:
		t.Fatal("STILLPOINT_VSS_ADMIN=1, but the process is not elevated")
	case !windows.GetCurrentProcessToken().IsElevated():
		t.Skip("needs an elevated process (the workflow's admin job)")
	}
}

func TestProbeNotElevated(t *testing.T) {
	if os.Getenv("STILLPOINT_VSS_NONADMIN") != "1" {
		t.Skip("set STILLPOINT_VSS_NONADMIN=1 in a non-elevated process")
	}
	if windows.GetCurrentProcessToken().IsElevated() {
		t.Fatal("STILLPOINT_VSS_NONADMIN=1, but the process is elevated")
	}
	if err := Probe(); err == nil || !strings.Contains(err.Error(), "elevated") {
		t.Fatalf("want a refusal that says to elevate, got %v", err)
	}
	// the system's own answer, past our check
	_, err := NewRequester(NewFactory(), DefaultOptions()).Create(context.Background(), []string{volumeOf(t, os.TempDir())})
	if err == nil || Code(err) != E_ACCESSDENIED {
		t.Fatalf("want E_ACCESSDENIED from VSS itself, got %v", err)
	}
}

func volumeOf(t *testing.T, p string) string {
	t.Helper()
	buf := make([]uint16, windows.MAX_PATH+1)
	pp, _ := windows.UTF16PtrFromString(p)
	if err := windows.GetVolumePathName(pp, &buf[0], uint32(len(buf))); err != nil {
		t.Fatal(err)
	}
	return windows.UTF16ToString(buf)
}

// TestRealShadowCopy makes a shadow copy of the temp directory's volume,
// reads a file from it after changing the live file, and checks that the
// writers were seen and the shadow copy is gone after Complete.
func TestRealShadowCopy(t *testing.T) {
	needElevated(t)
	if err := Probe(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "frozen.txt")
	if err := os.WriteFile(file, []byte("before"), 0o644); err != nil {
		t.Fatal(err)
	}
	vol := volumeOf(t, dir)
	set, err := NewRequester(NewFactory(), DefaultOptions()).Create(context.Background(), []string{vol})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Complete(context.Background())
	if err := os.WriteFile(file, []byte("after, and longer"), 0o644); err != nil {
		t.Fatal(err)
	}
	dev, ok := set.Device(vol)
	if !ok || !strings.HasPrefix(dev, `\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy`) {
		t.Fatalf("device %q", dev)
	}
	shadowed := dev + `\` + strings.TrimPrefix(file, vol)
	got, err := os.ReadFile(shadowed)
	if err != nil || !bytes.Equal(got, []byte("before")) {
		t.Fatalf("the shadow copy has %q (%v), want %q", got, err, "before")
	}
	if len(set.Writers()) == 0 {
		t.Fatal("no writers seen: every Windows has at least the System Writer")
	}
	for _, w := range set.Writers() {
		if w.Name == "" || w.Class.IsZero() || len(w.Checks) != 2 {
			t.Errorf("writer %+v: want a name, an id and two checks so far", w)
		}
	}
	start := time.Now()
	if err := set.Complete(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("BackupComplete and release took %s", time.Since(start))
	if _, err := os.Stat(shadowed); err == nil {
		t.Fatal("the shadow copy outlived the components object (VSS_CTX_BACKUP is auto-release)")
	}
}
