package quiesce

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A missing database fails Freeze with its path, is not created (an empty
// database would be backed up as if it were the data), and Thaw after the
// failed Freeze is harmless.
func TestSQLiteMissingDatabase(t *testing.T) {
	p := filepath.Join(t.TempDir(), "app.db")
	w := NewSQLite(p, time.Second)
	_, err := w.Freeze(context.Background(), FreezeInfo{StagingDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("freeze: %v, want an error naming %s", err, p)
	}
	if err := w.Thaw(context.Background()); err != nil {
		t.Fatalf("thaw after failed freeze: %v", err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("freeze created %s", p)
	}
}

// Which source covers a path, and how, including through symlinks.
func TestDBCoverage(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "srv", "pg", "data")
	os.MkdirAll(data, 0o755)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(filepath.Join(dir, "srv"), link); err != nil {
		t.Fatal(err)
	}
	cov := map[string]string{filepath.Join(dir, "srv"): "file", filepath.Join(dir, "srv", "pg"): "volume"}
	if src, lvl := dbCoverageOf(cov, data); lvl != "volume" || src != filepath.Join(dir, "srv", "pg") {
		t.Errorf("deepest source: %s %s", src, lvl)
	}
	if _, lvl := dbCoverageOf(map[string]string{link: "volume"}, data); lvl != "volume" {
		t.Errorf("source named through a symlink: %q", lvl)
	}
	if _, lvl := dbCoverageOf(map[string]string{filepath.Join(dir, "sr"): "volume"}, data); lvl != "" {
		t.Errorf("prefix of a name counted as a parent: %q", lvl)
	}
}
