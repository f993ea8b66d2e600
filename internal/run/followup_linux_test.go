package run_test

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/livefile"
	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/quiesce"
	"github.com/stillpoint-backup/stillpoint/internal/retryq"
	"github.com/stillpoint-backup/stillpoint/internal/run"
	"github.com/stillpoint-backup/stillpoint/internal/snapshot"
)

// lockUntilReleased starts a child that holds an flock on path; the
// function it returns ends the child, which releases the lock.
func lockUntilReleased(t *testing.T, path string) func() {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "STILLPOINT_TEST_HOLDER="+path, "STILLPOINT_TEST_HOLD_MODE=flock")
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	released := false
	release := func() {
		if !released {
			released = true
			stdin.Close()
			cmd.Wait()
		}
	}
	t.Cleanup(release)
	buf := make([]byte, 6)
	if _, err := io.ReadFull(out, buf); err != nil || string(buf) != "ready\n" {
		t.Fatalf("holder did not start: %q %v", buf, err)
	}
	return release
}

// A run queues the locked files; once one lock is released, a follow-up
// reads only the queued files and writes the parent's snapshot with the
// released file filled in, the still locked one failed again; the queue
// keeps only that one, with one attempt more.
func TestFollowUpFillsInReleasedFiles(t *testing.T) {
	src := t.TempDir()
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(src, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("mail.box", "mail, locked during the run")
	write("bank.db", "locked all along")
	write("notes.txt", "version 1")
	releaseMail := lockUntilReleased(t, filepath.Join(src, "mail.box"))
	lockUntilReleased(t, filepath.Join(src, "bank.db"))
	r := newRepo(t)
	first := backupLive(t, r, livefile.StrategyRetry, 0, "", src)
	if n := first.Snapshot.OutcomeCounts()[outcome.Failed]; n != 2 {
		t.Fatalf("first run: %d failed, want 2 (%+v)", n, first.Problems)
	}
	q, err := retryq.Open(t.TempDir(), "mail")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	pol := retryq.Policy{RetryAfter: 15 * time.Minute}
	ch, err := q.Update(now, first.Snapshot.Paths, retryq.FromProblems(first.Problems), pol)
	if err != nil {
		t.Fatal(err)
	}
	if s := run.RetrySentence(ch, now, false); s != "unable to back up 2 files (next attempt within 15 minutes)" {
		t.Errorf("after the run: %q", s)
	}

	releaseMail()
	write("notes.txt", "version 2, written after the run: not the follow-up's business")
	lf := livefile.DefaultConfig()
	lf.Strategy, lf.Retries, lf.StagingDir = livefile.StrategyRetry, 0, filepath.Join(t.TempDir(), "staging")
	sources := []run.Source{{Path: src, Snapshot: snapshot.Off, OpenFiles: lf}}
	var files []run.RetryFile
	for _, e := range q.Entries() {
		files = append(files, run.RetryFile{Path: e.Path, Counted: e.Outcome})
	}
	plan, err := run.PlanSnapshots(run.FollowUpSources(sources, files), "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	var hooks []quiesce.HookResult
	o := run.BackupOptions{Sources: sources, Plan: plan, Hooks: quiesce.Hooks{quiesce.BeforeBackup: {{Run: "true"}}},
		OnHook: func(h quiesce.HookResult) { hooks = append(hooks, h) }}
	fu, err := run.FollowUp(context.Background(), r, o, nil, files)
	if err != nil {
		t.Fatal(err)
	}
	s := fu.Snapshot
	if id, ok := run.IsFollowUp(s); !ok || id != first.Snapshot.ID.String() || s.Parent == nil || *s.Parent != first.Snapshot.ID {
		t.Fatalf("follow-up of %q (%v), parent %v; want %s", id, ok, s.Parent, first.Snapshot.ID)
	}
	c := s.OutcomeCounts()
	if c[outcome.OK] != 2 || c[outcome.Failed] != 1 || len(s.Outcomes) != 2 || !s.Partial || s.Stats.Files != 3 || s.Stats.FilesRead != 1 {
		t.Fatalf("follow-up outcomes %v stats %+v, want the parent's with mail.box ok now", s.Outcomes, s.Stats)
	}
	if fu.FilesUnchanged != 1 || len(fu.Problems) != 1 || fu.Problems[0].Path != filepath.Join(src, "bank.db") {
		t.Fatalf("unchanged %d, problems %+v", fu.FilesUnchanged, fu.Problems)
	}
	if len(hooks) != 1 || !hooks[0].OK() {
		t.Errorf("hooks of the follow-up: %+v", hooks)
	}
	if data, oc := restoreFile(t, r, s, filepath.Join(src, "mail.box")); string(data) != "mail, locked during the run" || !oc.Whole() {
		t.Fatalf("mail.box restored as %q (%s)", data, oc)
	}
	if data, _ := restoreFile(t, r, s, filepath.Join(src, "notes.txt")); string(data) != "version 1" {
		t.Fatalf("notes.txt restored as %q: the follow-up read a file not queued", data)
	}

	ch, err = q.Update(time.Now(), run.FollowUpPaths(files), retryq.FromProblems(fu.Problems), pol)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.Resolved) != 1 || len(ch.Queued) != 1 || ch.Queued[0].Attempts != 2 {
		t.Fatalf("queue after the follow-up: %+v", ch)
	}
	if s := run.RetrySentence(ch, ch.Queued[0].Next.Add(-29*time.Minute-30*time.Second), true); s != "1 file backed up on retry; unable to back up 1 file (next attempt within 30 minutes)" {
		t.Errorf("after the follow-up: %q", s)
	}

	// the next full run of the same paths takes the follow-up as its parent
	third := backupLive(t, r, livefile.StrategyRetry, 0, "", src)
	if third.Parent == nil || third.Parent.ID != s.ID {
		t.Fatalf("the next run's parent is %v, want the follow-up %s", third.Parent, s.ID)
	}
}
