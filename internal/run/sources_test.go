package run

import (
	"path/filepath"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

// A volume mounted in a folder a source excludes is not added to the
// snapshot set: the plan's exclusion test sees the source's own patterns.
func TestExcludedOSPaths(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "data")
	excluded := excludedOSPaths([]Source{{Path: src, Excludes: []string{"cache"}}, {Path: filepath.Join(root, "other")}})
	if excluded == nil {
		t.Fatal("no exclusion test for a source with patterns")
	}
	for p, want := range map[string]bool{
		filepath.Join(src, "cache"):           true,
		filepath.Join(src, "sub", "cache"):    true,
		filepath.Join(src, "mnt"):             false,
		filepath.Join(root, "other", "cache"): false, // the pattern is data's own
	} {
		if got := excluded(p); got != want {
			t.Errorf("%s: excluded %v, want %v", p, got, want)
		}
	}
	if excludedOSPaths([]Source{{Path: src}}) != nil {
		t.Error("an exclusion test without patterns")
	}
}

// A forget whose second removal was refused (retained) reports the first
// and third snapshots as removed, not the first two.
func TestOnlyRemoved(t *testing.T) {
	var list []*repo.Snapshot
	for range 3 {
		list = append(list, &repo.Snapshot{ID: repo.NewRandomID()})
	}
	got := onlyRemoved(list, []repo.ID{list[0].ID, list[2].ID})
	if len(got) != 2 || got[0] != list[0] || got[1] != list[2] {
		t.Fatalf("removed %v", got)
	}
}
