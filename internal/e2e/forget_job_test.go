//go:build linux

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestJobRetention: a job's retention: runs after each of its backups, on
// its own host and paths only, says what it did, and a policy that cannot
// be applied fails the run after the snapshot is saved, removing nothing.
func TestJobRetention(t *testing.T) {
	e := newEnv(t)
	d := t.TempDir()
	src, other := filepath.Join(d, "src"), filepath.Join(d, "other")
	mustWrite(t, filepath.Join(src, "f"), []byte("x"))
	mustWrite(t, filepath.Join(other, "g"), []byte("y"))
	jobFile := filepath.Join(d, "job.yaml")
	writeJob := func(retention string) {
		mustWrite(t, jobFile, []byte(fmt.Sprintf("host: jobhost\nsources: [%s]\nretention:\n%s", src, retention)))
	}
	writeJob("  keep-daily: 2\n  keep-within: 1d\n")
	// snapshots the job must not touch: another host, other paths
	e.must(t, 0, "-q", "backup", "--host", "jobhost", "--time", "2025-01-01 08:00:00", src, other)
	e.must(t, 0, "-q", "backup", "--host", "elsewhere", "--time", "2025-01-01 09:00:00", src)

	var jobIDs []string
	for i, day := range []string{"2025-01-02", "2025-01-03", "2025-01-04", "2025-01-04"} {
		hour := 10 + i
		res := e.must(t, 0, "--json", "backup", "--job", jobFile, "--time", fmt.Sprintf("%s %d:00:00", day, hour))
		sum := summary(t, res.stdout)
		jobIDs = append(jobIDs, sum["snapshot_id"].(string))
		rt, ok := sum["retention"].(map[string]any)
		if !ok {
			t.Fatalf("no retention in the summary: %s", res)
		}
		removed := rt["removed"].([]any)
		switch i {
		case 0, 1:
			if len(removed) != 0 {
				t.Errorf("backup %d removed %v", i, removed)
			}
		case 2:
			// 01-02 falls out: not within 1d of 01-04, and daily keeps 01-04 and 01-03
			if len(removed) != 1 || removed[0] != jobIDs[0] {
				t.Errorf("backup %d removed %v, want %s", i, removed, jobIDs[0])
			}
		}
	}
	ids := e.snapshotIDs(t)
	if len(ids) != 2+3 {
		t.Fatalf("%d snapshots left, want the 2 others and 3 of the job: %v", len(ids), ids)
	}
	for _, gone := range jobIDs[:1] {
		for _, id := range ids {
			if id == gone {
				t.Errorf("%s should have been removed", gone)
			}
		}
	}

	// human summary says it too
	res := e.must(t, 0, "backup", "--job", jobFile, "--time", "2025-01-05 10:00:00")
	if !strings.Contains(res.stdout, "retention: kept ") || !strings.Contains(res.stdout, "removed 1 (") {
		t.Errorf("human summary: %s", res)
	}

	// a policy that keeps none of the job's snapshots: the snapshot is
	// saved, the run fails, nothing is removed
	before := len(e.snapshotIDs(t))
	writeJob("  keep-tag: [never]\n")
	res = e.run(t, "backup", "--job", jobFile)
	if res.code != 1 || !strings.Contains(res.stderr, "was saved, but then: retention: refusing to remove every snapshot") {
		t.Errorf("want exit 1 and the refusal: %s", res)
	}
	if !strings.Contains(res.stderr, "match no keep-tag list") {
		t.Errorf("no warning about the keep-tag policy: %s", res)
	}
	if n := len(e.snapshotIDs(t)); n != before+1 {
		t.Errorf("%d snapshots, want %d (the new one, none removed)", n, before+1)
	}

	// job validate reports a bad retention with its line
	writeJob("  keep-weekly: -2\n")
	res = e.run(t, "job", "validate", jobFile)
	if res.code != 1 || !strings.Contains(res.stderr, "job.yaml:4:16: retention.keep-weekly: negative count -2") {
		t.Errorf("validate: %s", res)
	}
	_ = os.Remove(jobFile)
}
