//go:build linux

package mount

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAvailableNamesWhatIsMissing(t *testing.T) {
	dev := filepath.Join(t.TempDir(), "fuse")
	if err := os.WriteFile(dev, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	none := func(string) (string, error) { return "", errors.New("not found") }
	only := func(name string) func(string) (string, error) {
		return func(n string) (string, error) {
			if n == name {
				return "/usr/bin/" + n, nil
			}
			return "", errors.New("not found")
		}
	}
	for _, tc := range []struct {
		device string
		euid   int
		look   func(string) (string, error)
		want   string
	}{
		{filepath.Join(t.TempDir(), "missing"), 0, only("fusermount3"), "is missing (load the module"},
		{dev, 1000, none, "apt install fuse3"},
		{dev, 1000, only("fusermount3"), ""},
		{dev, 1000, only("fusermount"), ""},
		{dev, 0, none, ""}, // root mounts without the helper
	} {
		err := available(tc.device, tc.euid, tc.look)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("available(%s, uid %d) = %v, want %q", tc.device, tc.euid, err, tc.want)
		}
	}
}
