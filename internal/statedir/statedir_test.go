package statedir

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDefault(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", filepath.FromSlash("/x/state"))
	want := filepath.FromSlash("/x/state/stillpoint")
	if os.Geteuid() == 0 {
		want = "/var/lib/stillpoint/state"
	}
	if got := Default(); got != want {
		t.Errorf("Default() = %q, want %q", got, want)
	}
}
