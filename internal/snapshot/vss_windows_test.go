package snapshot

import (
	"context"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/windows"

	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
)

func underWine() bool {
	return windows.NewLazySystemDLL("ntdll.dll").NewProc("wine_get_version").Find() == nil
}

// TestVSSPoliciesUnderWine: Wine's VssApi.dll answers E_NOTIMPL, which
// tests the policies for real: required refuses before anything is
// made, on reads live with a warning, auto with a note.
func TestVSSPoliciesUnderWine(t *testing.T) {
	if !underWine() {
		t.Skip("not under Wine")
	}
	dir, err := pathmap.Abs(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fit, err := DefaultProviders()[0].Detect(dir)
	if err != nil || fit.OK || !strings.Contains(fit.Reason, "E_NOTIMPL") {
		t.Fatalf("Detect under Wine: %+v %v", fit, err)
	}
	_, err = NewPlan([]Source{{Path: dir, Policy: Required}}, Options{})
	var re *RequiredError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "E_NOTIMPL") || !strings.Contains(err.Error(), "--snapshot on") {
		t.Fatalf("required under Wine: %v", err)
	}
	for _, pol := range []Policy{On, Auto} {
		plan, err := NewPlan([]Source{{Path: dir, Policy: pol}}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		msgs := plan.Notes
		if pol == On {
			msgs = plan.Warnings
		}
		if len(msgs) != 1 || !strings.Contains(msgs[0], "E_NOTIMPL") || !strings.Contains(msgs[0], "reading live") {
			t.Fatalf("%s: notes %q, warnings %q", pol, plan.Notes, plan.Warnings)
		}
		set, err := plan.Create(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if set.Sources[0].Provider != "none" || set.Consistency() != Live {
			t.Fatalf("%s: %+v", pol, set.Sources[0])
		}
		set.Release()
	}
}

func TestVSSNotElevated(t *testing.T) {
	if underWine() || windows.GetCurrentProcessToken().IsElevated() {
		t.Skip("needs a non-elevated process on real Windows (the workflow's non-admin job)")
	}
	fit, err := (&VSS{}).Detect(os.TempDir())
	if err != nil || fit.OK || !strings.Contains(fit.Reason, "elevated") {
		t.Fatalf("not elevated: %+v %v", fit, err)
	}
}

// TestVSSRealSet snaps the temp directory's volume on real Windows and
// reads a file changed after the snapshot through the set's view, by its
// repository path as the archiver names it.
func TestVSSRealSet(t *testing.T) {
	if underWine() || !windows.GetCurrentProcessToken().IsElevated() {
		if os.Getenv("STILLPOINT_VSS_ADMIN") == "1" {
			t.Fatal("STILLPOINT_VSS_ADMIN=1, but this is no elevated process on real Windows")
		}
		t.Skip("needs an elevated process on real Windows (the workflow's admin job)")
	}
	dir, err := pathmap.Abs(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "app.db")
	if err := os.WriteFile(file, []byte("committed"), 0o644); err != nil {
		t.Fatal(err)
	}
	plan, err := NewPlan([]Source{{Path: dir, Policy: Required}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	set, err := plan.Create(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer set.Release()
	if sp := set.Sources[0]; sp.Provider != "vss" || (sp.Consistency != Application && sp.Consistency != Crash) {
		t.Fatalf("source: %+v", sp)
	}
	if err := os.WriteFile(file, []byte("half-written"), 0o644); err != nil {
		t.Fatal(err)
	}
	rp, err := pathmap.Native.ToRepo(file)
	if err != nil {
		t.Fatal(err)
	}
	f, err := set.View().Open(rp)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(f)
	f.Close()
	if err != nil || string(got) != "committed" {
		t.Fatalf("read %q (%v) through the view, want the content at the snapshot", got, err)
	}
	if OriginOf(f) == Live {
		t.Fatal("a file of the shadow copy says it is live")
	}
	names, err := set.View().ReadDir(path.Dir(rp))
	if err != nil || len(names) == 0 {
		t.Fatalf("ReadDir of the source: %v %v", names, err)
	}
	if len(set.Writers()) == 0 {
		t.Fatal("no writer results")
	}
	if err := set.Release(); err != nil {
		t.Fatal(err)
	}
}
