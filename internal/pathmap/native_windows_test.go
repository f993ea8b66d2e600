package pathmap

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Abs spells existing components as the filesystem does, and keeps the
// rest as given.
func TestAbsSpelling(t *testing.T) {
	// os.MkdirTemp, not t.TempDir: Wine 8 fails the cleanup's RemoveAll
	base, err := os.MkdirTemp("", "pathmap")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	if err := os.MkdirAll(filepath.Join(base, "Mixed", "Case Dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	want, err := Windows.Clean(filepath.Join(base, "Mixed", "Case Dir"))
	if err != nil {
		t.Fatal(err)
	}
	in := strings.ToLower(filepath.Join(base, "mixed", "case dir"))
	got, err := Abs(strings.ReplaceAll(in, `\`, "/"))
	if err != nil || !strings.HasSuffix(got, `\Mixed\Case Dir`) || !Windows.Equal(got, want) {
		t.Errorf("Abs(%q) = %q, %v; want %q", in, got, err, want)
	}
	got, err = Abs(in + `\Not There`)
	if err != nil || !strings.HasSuffix(got, `\Mixed\Case Dir\Not There`) {
		t.Errorf("Abs below = %q, %v", got, err)
	}
	// a relative path is resolved against the current directory
	if got, err := Abs("."); err != nil || !Windows.IsAbs(got) {
		t.Errorf(`Abs(".") = %q, %v`, got, err)
	}
	if got, err := Abs(`\\?\` + want); err != nil || got != spelling(want) {
		t.Errorf(`Abs(\\?\...) = %q, %v`, got, err)
	}
}
