package retryq_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/archiver"
	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/retryq"
)

var t0 = time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)

func open(t *testing.T, dir, job string) *retryq.Queue {
	t.Helper()
	q, err := retryq.Open(dir, job)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func locked(p string) retryq.Failure {
	return retryq.Failure{Path: p, Outcome: outcome.Failed, Reason: outcome.ReasonLocked, Holder: "postgres[42]"}
}

func TestFromProblemsQueuesFailedAndSkipped(t *testing.T) {
	got := retryq.FromProblems([]archiver.Problem{
		{Path: "/a", Outcome: outcome.Failed, Reason: outcome.ReasonLocked},
		{Path: "/b", Outcome: outcome.SkippedOpen, Reason: outcome.ReasonOpen},
		{Path: "/c", Outcome: outcome.Changed, Reason: "size changed while read"},
		{Path: "/d", Outcome: outcome.Failed, Reason: outcome.ReasonMissing},
		{Path: "/e", Outcome: outcome.Failed, Reason: outcome.ReasonPermission},
	})
	var paths []string
	for _, f := range got {
		paths = append(paths, f.Path)
	}
	if strings.Join(paths, " ") != "/a /b /e" {
		t.Fatalf("queued %v, want the failed (not missing) and skipped-open files", paths)
	}
}

// Each failed attempt doubles the wait, up to the next full run; the queue
// survives reopening, and Update resolves what a run stored.
func TestBackoffPersistenceAndUpdate(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, "mail")
	pol := retryq.Policy{RetryAfter: 15 * time.Minute, NextFullRun: t0.Add(24 * time.Hour)}
	if err := q.Add(t0, []retryq.Failure{locked("/srv/mail/a"), locked("/srv/mail/b")}, pol); err != nil {
		t.Fatal(err)
	}
	if due := q.Due(t0.Add(14 * time.Minute)); len(due) != 0 {
		t.Fatalf("due before retry-after: %+v", due)
	}
	if due := q.Due(t0.Add(15 * time.Minute)); len(due) != 2 {
		t.Fatalf("due at retry-after: %+v", due)
	}
	// attempts 2, 3, 4: 30, 60, 120 minutes after each
	now := t0.Add(15 * time.Minute)
	for i, want := range []time.Duration{30 * time.Minute, time.Hour, 2 * time.Hour} {
		ch, err := q.Update(now, []string{"/srv/mail/a"}, []retryq.Failure{locked("/srv/mail/a")}, pol)
		if err != nil {
			t.Fatal(err)
		}
		e := ch.Queued[0]
		if e.Attempts != i+2 || !e.Next.Equal(now.Add(want)) || !e.FirstSeen.Equal(t0) || len(ch.Resolved) != 0 {
			t.Fatalf("attempt %d: %+v resolved %v, want next in %s", i+2, e, ch.Resolved, want)
		}
		now = e.Next
	}
	// never past the next full run
	late := retryq.Policy{RetryAfter: 15 * time.Minute, NextFullRun: now.Add(time.Hour)}
	ch, err := q.Update(now, []string{"/srv/mail/a"}, []retryq.Failure{locked("/srv/mail/a")}, late)
	if err != nil || !ch.Queued[0].Next.Equal(late.NextFullRun) {
		t.Fatalf("next %v (%v), want the next full run %v", ch.Queued[0].Next, err, late.NextFullRun)
	}

	// a new process sees the same queue
	again := open(t, dir, "mail")
	es := again.Entries()
	if len(es) != 2 || es[0].Path != "/srv/mail/a" || es[0].Attempts != 5 || es[0].Holder != "postgres[42]" || es[1].Attempts != 1 || again.Damaged() != "" {
		t.Fatalf("reopened: %+v", es)
	}
	// a full run of /srv/mail stored b and failed a again
	ch, err = again.Update(now, []string{"/srv/mail"}, []retryq.Failure{locked("/srv/mail/a")}, pol)
	if err != nil || len(ch.Resolved) != 1 || ch.Resolved[0].Path != "/srv/mail/b" || again.Len() != 1 {
		t.Fatalf("update: %+v %v, queue %+v", ch, err, again.Entries())
	}
	// a run of another path resolves nothing of it
	if ch, _ := again.Update(now, []string{"/srv/mailbox"}, nil, pol); len(ch.Resolved) != 0 {
		t.Fatalf("a run of /srv/mailbox resolved %+v", ch.Resolved)
	}
	if err := again.Resolve("/srv/mail/a"); err != nil || again.Len() != 0 || !again.NextAttempt().IsZero() {
		t.Fatalf("resolve: %v, %d left", err, again.Len())
	}
	if open(t, dir, "mail").Len() != 0 {
		t.Fatal("the resolved entry came back after reopening")
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".retry-*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

// Without a next full run the wait is bounded by MaxDelay; a changed
// queue written by another process is seen by the next change.
func TestMaxDelayAndTwoProcesses(t *testing.T) {
	dir := t.TempDir()
	a, b := open(t, dir, "job"), open(t, dir, "job")
	pol := retryq.Policy{RetryAfter: time.Hour}
	for range 8 {
		if err := a.Add(t0, []retryq.Failure{locked("/x")}, pol); err != nil {
			t.Fatal(err)
		}
	}
	if e := a.Entries()[0]; e.Attempts != 8 || !e.Next.Equal(t0.Add(retryq.MaxDelay)) {
		t.Fatalf("after 8 attempts: %+v, want next in %s", e, retryq.MaxDelay)
	}
	if err := b.Add(t0, []retryq.Failure{locked("/y")}, pol); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); err != nil || a.Len() != 2 {
		t.Fatalf("a lost b's entry: %+v %v", a.Entries(), err)
	}
}

// A damaged state file is set aside with a note, and the queue works.
func TestDamagedStateFile(t *testing.T) {
	for name, content := range map[string]string{
		"truncated":   `{"version":1,"job":"j","entries":[{"path":"/a","outc`,
		"not json":    "\x00\x01garbage",
		"new version": `{"version":9,"job":"j","entries":[]}`,
		"bad outcome": `{"version":1,"job":"j","entries":[{"path":"/a","outcome":"exploded"}]}`,
		"no path":     `{"version":1,"job":"j","entries":[{"outcome":"failed"}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			q := open(t, dir, "j")
			if err := os.WriteFile(q.Path(), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			q = open(t, dir, "j")
			if q.Len() != 0 || !strings.Contains(q.Damaged(), "damaged") || !strings.Contains(q.Damaged(), ".damaged") {
				t.Fatalf("len %d, note %q", q.Len(), q.Damaged())
			}
			if kept, err := os.ReadFile(q.Path() + ".damaged"); err != nil || string(kept) != content {
				t.Fatalf("damaged file not kept aside: %v", err)
			}
			if err := q.Add(t0, []retryq.Failure{locked("/a")}, retryq.Policy{}); err != nil || open(t, dir, "j").Len() != 1 {
				t.Fatalf("queue after the damage: %v", err)
			}
		})
	}
}

// Job names become file names that stay apart and inside the directory.
func TestJobNamesAsFiles(t *testing.T) {
	dir := t.TempDir()
	for _, job := range []string{"../escape", "a/b", "a%2Fb", ".hidden"} {
		q := open(t, dir, job)
		if filepath.Dir(q.Path()) != dir {
			t.Fatalf("job %q: state file %s outside %s", job, q.Path(), dir)
		}
		if err := q.Add(t0, []retryq.Failure{locked("/" + job)}, retryq.Policy{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, job := range []string{"../escape", "a/b", "a%2Fb", ".hidden"} {
		if es := open(t, dir, job).Entries(); len(es) != 1 || es[0].Path != "/"+job {
			t.Fatalf("job %q: %+v", job, es)
		}
	}
	if _, err := retryq.Open(dir, ""); err == nil {
		t.Fatal("a queue without a job name opened")
	}
}
