//go:build linux

package e2e

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCompressionFlag: --compression sets the level of one run's new data,
// whatever the repository's default, and a wrong level is a usage error.
func TestCompressionFlag(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	line := "2026-11-22T10:00:00Z INFO request served path=/api/v1/items status=200 bytes=512\n"
	mustWrite(t, filepath.Join(src, "app.log"), []byte(strings.Repeat(line, (4<<20)/len(line))))

	off, fastest := newEnv(t), newEnv(t)
	off.must(t, 0, "backup", "--compression", "off", src)
	fastest.must(t, 0, "backup", "--compression", "fastest", src)
	offSize, fastSize := dirSize(t, filepath.Join(off.repo, "data")), dirSize(t, filepath.Join(fastest.repo, "data"))
	if offSize < 4<<20 || fastSize > 1<<20 {
		t.Fatalf("4 MiB of log text stored as %d bytes with --compression off and %d with fastest", offSize, fastSize)
	}

	// a job file's level applies too
	byJob := newEnv(t)
	jobFile := filepath.Join(t.TempDir(), "job.yaml")
	mustWrite(t, jobFile, []byte("version: 1\ncompression: off\nsources:\n  - "+src+"\n"))
	byJob.must(t, 0, "backup", "--job", jobFile)
	if n := dirSize(t, filepath.Join(byJob.repo, "data")); n < 4<<20 {
		t.Fatalf("a job with compression: off stored 4 MiB of log text as %d bytes", n)
	}

	bad := off.must(t, 2, "backup", "--compression", "maximum", src)
	if !strings.Contains(bad.stderr, "off, fastest, default, better") {
		t.Fatalf("unclear error for a wrong level:\n%s", bad)
	}
}
