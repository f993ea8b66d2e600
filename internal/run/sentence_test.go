package run_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/archiver"
	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/run"
)

func TestOutcomeSentenceNamesMissingPaths(t *testing.T) {
	counts := outcome.Counts{outcome.Failed: 3}
	problems := []archiver.Problem{
		{Path: "/srv/gone", Outcome: outcome.Failed, Reason: outcome.ReasonMissing},
		{Path: "/srv/a", Outcome: outcome.Failed, Reason: outcome.ReasonLocked, Holder: "app[7]"},
		{Path: "/srv/b", Outcome: outcome.Failed, Reason: outcome.ReasonLocked, Holder: "app[7]"},
	}
	got := run.OutcomeSentence(counts, problems)
	want := "1 path to back up did not exist (/srv/gone); unable to back up 2 files (locked by app[7])"
	if got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

// A first backup interrupted while it created the repository leaves its
// empty folders; the next one creates the repository there.
func TestOpenOrCreateOverAnInterruptedCreation(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"data", "index", "keys", "snapshots", "locks"} {
		os.Mkdir(filepath.Join(dir, d), 0o700)
	}
	t.Setenv(run.EnvPassword, "pw")
	a := run.Access{Repository: dir}
	if _, created, err := run.OpenOrCreate(context.Background(), a); err != nil || created == nil {
		t.Fatalf("created %v, err %v", created, err)
	}
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "notes.txt"), []byte("mine"), 0o600)
	if _, _, err := run.OpenOrCreate(context.Background(), run.Access{Repository: other}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("a directory with a file of the user's: %v", err)
	}
}
