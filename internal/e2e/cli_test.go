//go:build linux

package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The read-side commands as a user types them: ls, diff, snapshot
// references, include/exclude, overwrite policies, JSON events.
func TestCommandsAsUsed(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	mustWrite(t, filepath.Join(src, "docs", "a.txt"), []byte("alpha"))
	mustWrite(t, filepath.Join(src, "docs", "b.log"), []byte("log"))
	mustWrite(t, filepath.Join(src, "odd", "new\nline"), []byte("nl"))
	mustWrite(t, filepath.Join(src, "odd", "bad\xffname"), []byte("bad"))
	mustWrite(t, filepath.Join(src, "cache", "junk"), []byte("junk"))
	e := newEnv(t)

	// the first backup creates the repository and says where the key is
	first := e.must(t, 0, "backup", "--tag", "first", "--exclude", "cache/", src)
	if !strings.Contains(first.stdout, "its key is in "+e.keyDir) || !strings.Contains(first.stdout, "KEEP A COPY") {
		t.Fatalf("first run does not tell where the key is:\n%s", first)
	}
	keys, _ := filepath.Glob(filepath.Join(e.keyDir, "*.key"))
	if len(keys) != 1 {
		t.Fatalf("key files: %v", keys)
	}
	if fi, _ := os.Stat(keys[0]); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", fi.Mode().Perm())
	}

	// ls: full original paths, one per line, odd names escaped; excluded dir absent
	ls := e.must(t, 0, "ls", "latest", src)
	lines := strings.Split(strings.TrimSpace(ls.stdout), "\n")
	for _, want := range []string{src, src + "/docs/a.txt", src + `/odd/new\nline`, src + `/odd/bad\xffname`} {
		if !slices.Contains(lines, want) {
			t.Errorf("ls lacks %q:\n%s", want, ls.stdout)
		}
	}
	if strings.Contains(ls.stdout, "cache") {
		t.Errorf("excluded directory listed:\n%s", ls.stdout)
	}
	raw := e.must(t, 0, "ls", "-0", "latest", src+"/odd")
	if !strings.Contains(raw.stdout, src+"/odd/new\nline\x00") || !strings.Contains(raw.stdout, src+"/odd/bad\xffname\x00") {
		t.Errorf("ls -0 does not print raw names: %q", raw.stdout)
	}
	long := e.must(t, 0, "ls", "-l", "latest", src+"/docs/a.txt")
	if !strings.Contains(long.stdout, "\n-rw") || !strings.Contains(long.stdout, " 5 ") ||
		!strings.Contains(long.stdout, "# source "+src+": read live, live consistency") {
		t.Errorf("ls -l: %q", long.stdout)
	}

	// a second snapshot with changes; diff names them
	time.Sleep(10 * time.Millisecond)
	mustWrite(t, filepath.Join(src, "docs", "a.txt"), []byte("alpha, edited"))
	os.Remove(filepath.Join(src, "docs", "b.log"))
	mustWrite(t, filepath.Join(src, "docs", "c.txt"), []byte("new"))
	os.Chmod(filepath.Join(src, "odd", "new\nline"), 0o600)
	bk := e.must(t, 0, "--json", "backup", "--tag", "second", "--exclude", "cache/", src)
	sum := summary(t, bk.stdout)
	if sum["exit_code"].(float64) != 0 || sum["partial"].(bool) {
		t.Fatalf("summary %v", sum)
	}
	ids := e.snapshotIDs(t)
	if len(ids) != 2 {
		t.Fatalf("snapshots %v", ids)
	}
	diff := e.must(t, 0, "diff", ids[0][:8], "latest")
	for _, want := range []string{"M " + src + "/docs/a.txt", "- " + src + "/docs/b.log", "+ " + src + "/docs/c.txt", "U " + src + `/odd/new\nline`} {
		if !strings.Contains(diff.stdout, want+"\n") {
			t.Errorf("diff lacks %q:\n%s", want, diff.stdout)
		}
	}

	// references: tag, path, prefix; a wrong one is a clear error
	if got := e.must(t, 0, "ls", "latest@first", src+"/docs"); !strings.Contains(got.stdout, "b.log") {
		t.Errorf("latest@first is not the first snapshot:\n%s", got.stdout)
	}
	if got := e.must(t, 0, "ls", "latest:"+src, src+"/docs"); !strings.Contains(got.stdout, "c.txt") {
		t.Errorf("latest:PATH is not the newest:\n%s", got.stdout)
	}
	if bad := e.must(t, 1, "ls", "ffffffffff"); !strings.Contains(bad.stderr, "no snapshot") {
		t.Errorf("unknown snapshot: %s", bad)
	}

	// restore with include/exclude
	dst := t.TempDir()
	e.must(t, 0, "restore", "latest", "--target", dst, "--include", src+"/docs", "--exclude", "*.txt")
	if _, err := os.Stat(filepath.Join(dst, src, "odd")); err == nil {
		t.Error("--include restored a path outside it")
	}
	entries, _ := os.ReadDir(filepath.Join(dst, src, "docs"))
	if len(entries) != 0 {
		t.Errorf("--exclude *.txt restored %v", entries)
	}

	// overwrite: never keeps (and says so), if-changed replaces a changed file, always replaces
	dst = t.TempDir()
	e.must(t, 0, "restore", "latest", "--target", dst)
	victim := filepath.Join(dst, src, "docs", "a.txt")
	os.WriteFile(victim, []byte("local change"), 0o644)
	kept := e.must(t, 0, "restore", "latest", "--target", dst)
	if got, _ := os.ReadFile(victim); string(got) != "local change" || !strings.Contains(kept.stdout, "existing files kept") {
		t.Fatalf("--overwrite never replaced or did not say so: %q\n%s", got, kept)
	}
	e.must(t, 0, "restore", "latest", "--target", dst, "--overwrite", "if-changed")
	if got, _ := os.ReadFile(victim); string(got) != "alpha, edited" {
		t.Fatalf("--overwrite if-changed left %q", got)
	}
	e.must(t, 2, "restore", "latest", "--target", dst, "--overwrite", "sometimes")

	// snapshots lists outcome summaries; the JSON form is an array with them
	list := e.must(t, 0, "snapshots")
	if !strings.Contains(list.stdout, "all whole") || !strings.Contains(list.stdout, "2 snapshots") {
		t.Errorf("snapshots:\n%s", list.stdout)
	}
}

// --json prints status events during a long backup, then a summary.
func TestJSONProgressEvents(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	writeRandom(t, filepath.Join(src, "big"), 7, 600<<20)
	e := newEnv(t)
	res := e.must(t, 0, "--json", "backup", src)
	var statuses int
	for _, ev := range events(t, res.stdout) {
		if ev["type"] == "status" {
			statuses++
			if _, ok := ev["bytes_done"]; !ok {
				t.Fatalf("status without bytes_done: %v", ev)
			}
		}
	}
	s := summary(t, res.stdout)
	if s["snapshot_id"] == "" {
		t.Fatalf("summary %v", s)
	}
	// one status event a second: a run of 1.5 s or more has at least one
	secs := s["stats"].(map[string]any)["duration_secs"].(float64)
	if secs >= 1.5 && statuses == 0 {
		t.Fatalf("a %.1f s backup printed no status event", secs)
	}
	t.Logf("%d status events in %.1f s", statuses, secs)
}
