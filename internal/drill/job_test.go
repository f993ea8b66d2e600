package drill

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/job"
	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

// FromJob takes the drill: section's level, scratch, read-back and
// verifiers; a job without one is drilled at level read with the default
// read-back.
func TestFromJob(t *testing.T) {
	o := FromJob(&job.Job{})
	if o.Level != Read || o.ReadBack != job.DefaultReadBack || o.Scratch != "" || len(o.Verifiers) != 0 {
		t.Errorf("a job without drill: %+v", o)
	}
	o = FromJob(&job.Job{Drill: &job.Drill{Level: "restore", Scratch: "/var/tmp", ReadBack: 3,
		Verify: []job.Verifier{{Kind: "sqlite", Path: "/srv/a.db", Query: "SELECT 1", Timeout: time.Minute}}}})
	want := Spec{Kind: "sqlite", Path: "/srv/a.db", Query: "SELECT 1", Timeout: time.Minute}
	if o.Level != Restore || o.Scratch != "/var/tmp" || o.ReadBack != 3 || len(o.Verifiers) != 1 || o.Verifiers[0] != want {
		t.Errorf("a job with drill: %+v", o)
	}
}

// JobSnapshot is the newest snapshot of the job's host and paths, not a
// newer one of another host or other paths. The manifest holds the paths
// as a backup writes them: OS paths (C:\... on Windows), sorted.
func TestJobSnapshot(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "data")
	p, err := pathmap.Abs(src)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	snap := func(host string, paths []string, hours int) *repo.Snapshot {
		return &repo.Snapshot{ID: repo.NewRandomID(), Host: host, Paths: paths, Time: t0.Add(time.Duration(hours) * time.Hour)}
	}
	older, newest := snap("web-1", []string{p}, 1), snap("web-1", []string{p}, 2)
	snaps := []*repo.Snapshot{older, newest, snap("web-2", []string{p}, 3), snap("web-1", []string{p, "/etc"}, 4)}
	j := &job.Job{File: "app.yaml", Host: "web-1", Sources: []job.Source{{Path: src}}}
	if s, err := JobSnapshot(snaps, j); err != nil || s != newest {
		t.Errorf("JobSnapshot: %v %v, want the newest of web-1 with %s", s, err, p)
	}
	// two sources, given out of order, as the manifest sorts them
	other, err := pathmap.Abs(filepath.Join(dir, "a-logs"))
	if err != nil {
		t.Fatal(err)
	}
	both := snap("web-1", []string{other, p}, 5)
	j2 := &job.Job{File: "two.yaml", Host: "web-1", Sources: []job.Source{{Path: src}, {Path: filepath.Join(dir, "a-logs")}}}
	if s, err := JobSnapshot(append(snaps, both), j2); err != nil || s != both {
		t.Errorf("JobSnapshot of two sources: %v %v, want the snapshot of %s and %s", s, err, other, p)
	}
	j.Host = "web-3"
	if _, err := JobSnapshot(snaps, j); err == nil || !strings.Contains(err.Error(), "no snapshot of host web-3") || !strings.Contains(err.Error(), "app.yaml") {
		t.Errorf("no snapshot of the job: %v", err)
	}
}
