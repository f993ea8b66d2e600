//go:build linux

package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestForgetRefusesAndRemovesNothing: each mistake is a clear error, exit
// 1, and every snapshot is still there afterwards.
func TestForgetRefusesAndRemovesNothing(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(t.TempDir(), "src")
	mustWrite(t, filepath.Join(src, "f"), []byte("x"))
	for i, day := range []string{"2025-01-01", "2025-01-02", "2025-01-03"} {
		args := []string{"-q", "backup", "--time", day + " 12:00:00"}
		if i == 0 {
			args = append(args, "--tag", "keep")
		}
		e.must(t, 0, append(args, src)...)
	}
	ids := e.snapshotIDs(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"forget", "--keep-last", "1", "--host", "no-such-host"}, "no snapshot matches the filter"},
		{[]string{"forget", "--keep-last", "1", "--tag", "nope"}, "no snapshot matches the filter"},
		{[]string{"forget", "--keep-tag", "nope"}, "refusing to remove every snapshot of the group"},
		{[]string{"forget"}, "no policy was given"},
		{[]string{"forget", "--keep-last", "0"}, "no policy was given"},
		{[]string{"forget", ids[0][:8], "0000000000"}, `no snapshot "0000000000"`},
		{[]string{"forget", "--keep-last", "1", ids[0][:8]}, "not both"},
		{[]string{"forget", "--keep-last", "-1"}, "unlimited"},
		{[]string{"forget", "--keep-within", "2w"}, "unknown unit"},
	} {
		res := e.run(t, c.args...)
		if res.code == 0 || !strings.Contains(res.stderr, c.want) {
			t.Errorf("want a failure saying %q: %s", c.want, res)
		}
		if n := len(e.snapshotIDs(t)); n != len(ids) {
			t.Fatalf("%v removed snapshots: %d of %d left", c.args, n, len(ids))
		}
	}

	// by id: the named ones go, the rest stays
	res := e.must(t, 0, "forget", ids[1][:10], ids[1])
	if !strings.Contains(res.stdout, "removed 1 snapshots") {
		t.Errorf("forget by id: %s", res)
	}
	left := e.snapshotIDs(t)
	if len(left) != 2 || left[0] != ids[0] || left[1] != ids[2] {
		t.Errorf("left %v, want %v and %v", left, ids[0], ids[2])
	}
	// the policy keeps the tagged one and the last
	res = e.must(t, 0, "forget", "--keep-last", "1", "--keep-tag", "keep")
	if n := len(e.snapshotIDs(t)); n != 2 || !strings.Contains(res.stdout, "has tags [keep]") || !strings.Contains(res.stdout, "no snapshot to remove") {
		t.Errorf("%d left: %s", n, res)
	}
	res = e.must(t, 0, "forget", "--keep-last", "1")
	if left := e.snapshotIDs(t); len(left) != 1 || left[0] != ids[2] {
		t.Errorf("keep-last 1 left %v: %s", left, res)
	}
	// restore still works with what is left
	e.must(t, 0, "-q", "restore", ids[2][:8], "--target", filepath.Join(t.TempDir(), "out"))
}

// TestForgetPrune: forget --prune frees the data only the removed
// snapshots used, and what is left restores and checks clean.
func TestForgetPrune(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(t.TempDir(), "src")
	for i := range 3 {
		writeRandom(t, filepath.Join(src, "f"), uint64(i+1), 2<<20) // new content each time
		e.must(t, 0, "-q", "backup", src)
	}
	want := treeHash(t, src)
	before := dirSize(t, filepath.Join(e.repo, "data"))

	// a dry run prints what prune would do after forget, and does nothing
	res := e.must(t, 0, "forget", "--keep-last", "1", "--prune", "--dry-run", "--max-unused", "0")
	for _, w := range []string{"keep 1 snapshots:", "REASONS", "last snapshot", "remove 2 snapshots:", "would remove 2 snapshots",
		"--prune, dry run", "1 snapshots;", "dry run: nothing was changed"} {
		if !strings.Contains(res.stdout, w) {
			t.Errorf("forget --dry-run --prune does not say %q: %s", w, res)
		}
	}
	if n := len(e.snapshotIDs(t)); n != 3 {
		t.Fatalf("forget --dry-run --prune removed snapshots: %d of 3 left", n)
	}
	if after := dirSize(t, filepath.Join(e.repo, "data")); after != before {
		t.Fatalf("forget --dry-run --prune changed data/: %d bytes before, %d after", before, after)
	}
	if marks, _ := filepath.Glob(filepath.Join(e.repo, "gc", "*")); len(marks) != 0 {
		t.Fatalf("forget --dry-run --prune wrote marks: %v", marks)
	}
	res = e.must(t, 0, "--json", "forget", "--keep-last", "1", "--prune", "--dry-run", "--max-unused", "0")
	var plan map[string]any
	for _, ev := range events(t, res.stdout) {
		if r, ok := ev["result"].(map[string]any); ok {
			plan = r
		}
	}
	// two of the three 2 MiB files are used by no snapshot kept
	if plan == nil || plan["dry_run"] != true || plan["snapshots"] != 1.0 || plan["garbage_bytes"].(float64)+plan["repack_bytes"].(float64) < 4<<20 {
		t.Errorf("forget --json --dry-run --prune: prune's plan %v: %s", plan, res)
	}

	res = e.must(t, 0, "forget", "--keep-last", "1", "--prune", "--max-unused", "0")
	if after := dirSize(t, filepath.Join(e.repo, "data")); after > before/2 {
		t.Errorf("prune freed too little: data %d bytes before, %d after (2 of 3 distinct files forgotten)", before, after)
	}
	if !strings.Contains(res.stdout, "removed 2 snapshots") || !strings.Contains(res.stdout, "running prune") {
		t.Errorf("forget --prune: %s", res)
	}
	ids := e.snapshotIDs(t)
	if len(ids) != 1 {
		t.Fatalf("%d snapshots left", len(ids))
	}
	e.must(t, 0, "-q", "check", "--read-data")
	e.restoreAndCompare(t, ids[0], src, want)

	res = e.must(t, 0, "forget", "--keep-last", "1", "--prune", "--dry-run")
	if !strings.Contains(res.stdout, "prune would not run") {
		t.Errorf("dry run with --prune: %s", res)
	}
	if res := e.run(t, "forget", "--keep-last", "1", "--prune", "--max-unused", "lots"); res.code != 2 {
		t.Errorf("bad --max-unused: %s", res)
	}
}

// TestBackupTime: --time is local time, stored with its offset (a time in
// a DST gap moves forward, as Go and restic parse it), and listed in the
// reader's zone.
func TestBackupTime(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(t.TempDir(), "src")
	mustWrite(t, filepath.Join(src, "f"), []byte("x"))
	e.extra = []string{"TZ=America/New_York"}
	e.must(t, 0, "-q", "backup", "--time", "2025-03-09 02:30:00", src)
	e.must(t, 0, "-q", "backup", "--time", "2025-07-01 12:00:00", src)
	// what restic's --time records: Go's reading of the wall clock, which
	// for a time in the spring-forward gap is one of the two offsets
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	gap, _ := time.ParseInLocation(time.DateTime, "2025-03-09 02:30:00", ny)
	res := e.must(t, 0, "--json", "snapshots")
	for _, want := range []string{`"time":"` + gap.Format(time.RFC3339) + `"`, `"time":"2025-07-01T12:00:00-04:00"`} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("snapshots --json lacks %s: %s", want, res)
		}
	}
	e.extra = []string{"TZ=UTC"}
	res = e.must(t, 0, "snapshots")
	if !strings.Contains(res.stdout, gap.UTC().Format(time.DateTime)) || !strings.Contains(res.stdout, "2025-07-01 16:00:00") {
		t.Errorf("snapshots in UTC: %s", res)
	}
	for _, bad := range []string{"2025-13-01 00:00:00", "yesterday", "2025-03-09T02:30:00"} {
		if res := e.run(t, "backup", "--time", bad, src); res.code != 2 || !strings.Contains(res.stderr, "--time") {
			t.Errorf("--time %q: %s", bad, res)
		}
	}
}
