package main

import (
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

func TestModeStringAsLs(t *testing.T) {
	for _, c := range []struct {
		typ  repo.NodeType
		mode uint32
		want string
	}{
		{repo.NodeDir, 0o1777, "drwxrwxrwt"},
		{repo.NodeDir, 0o1754, "drwxr-xr-T"},
		{repo.NodeDir, 0o2775, "drwxrwsr-x"},
		{repo.NodeFile, 0o4755, "-rwsr-xr-x"},
		{repo.NodeFile, 0o4644, "-rwSr--r--"},
		{repo.NodeFile, 0o2644, "-rw-r-Sr--"},
		{repo.NodeFile, 0o7777, "-rwsrwsrwt"},
		{repo.NodeFile, 0o7000, "---S--S--T"},
		{repo.NodeFile, 0o640, "-rw-r-----"},
		{repo.NodeSymlink, 0o777, "lrwxrwxrwx"},
		{repo.NodeDevice, 0o660, "brw-rw----"},
		{repo.NodeCharDevice, 0o666, "crw-rw-rw-"},
		{repo.NodeFIFO, 0o644, "prw-r--r--"},
		{repo.NodeSocket, 0o755, "srwxr-xr-x"},
	} {
		if got := modeString(&repo.Node{Type: c.typ, Mode: c.mode}); got != c.want {
			t.Errorf("%s %04o: %s, want %s", c.typ, c.mode, got, c.want)
		}
	}
}
