package mount

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckPlace(t *testing.T) {
	d := t.TempDir()
	repoDir := filepath.Join(d, "repo")
	inside := filepath.Join(repoDir, "data")
	other := filepath.Join(d, "mnt")
	for _, p := range []string{inside, other} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(d, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dir, repo, want string
	}{
		{other, repoDir, ""},
		{other, "", ""},
		{inside, repoDir, "inside the repository"},
		{repoDir, repoDir, "inside the repository"},
		{d, repoDir, "is inside the mount point"},
		{filepath.Join(d, "missing"), repoDir, "does not exist"},
		{file, repoDir, "not a directory"},
	} {
		err := CheckPlace(tc.dir, tc.repo)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("CheckPlace(%s, %s) = %v, want %q", tc.dir, tc.repo, err, tc.want)
		}
	}
}
