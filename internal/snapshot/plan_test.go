package snapshot

import (
	"path/filepath"
	"strings"
	"testing"
)

// A source that does not exist has nothing to snap, whatever its policy:
// the plan says so instead of blaming its filesystem, and the run records
// the source as missing.
func TestPlanOfAMissingSource(t *testing.T) {
	gone := filepath.Join(t.TempDir(), "gone")
	p, err := NewPlan([]Source{{Path: gone, Policy: Required}}, Options{Providers: []Provider{}})
	if err != nil {
		t.Fatal(err)
	}
	if sp := p.Sources[0]; sp.Provider != "none" || !strings.Contains(sp.Note, "does not exist") {
		t.Fatalf("plan %+v", sp)
	}
}
