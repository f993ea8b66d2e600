package archiver_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/archiver"
	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/view"
)

// lockedReader fails the files named in locked as another program's lock
// would, and reads the others.
type lockedReader struct{ locked map[string]bool }

func (l lockedReader) ReadFile(ctx context.Context, v view.View, p string, st *view.Stat, second bool, attempt archiver.Attempt) archiver.ReadResult {
	if l.locked[filepath.Base(p)] {
		return archiver.ReadResult{Outcome: outcome.Failed, Reason: outcome.ReasonLocked, Err: errors.New("sharing violation")}
	}
	return archiver.DirectReader{}.ReadFile(ctx, v, p, st, second, attempt)
}

// A file that fails is neither read nor unchanged: the counts tell the
// three apart, in the first backup, in one where it fails again beside an
// unchanged neighbour, and once it can be read.
func TestFilesUnchangedLeavesFailedOut(t *testing.T) {
	src := t.TempDir()
	must(t, os.WriteFile(filepath.Join(src, "locked.db"), []byte("held"), 0o644))
	must(t, os.WriteFile(filepath.Join(src, "free.txt"), []byte("free"), 0o644))
	r := newRepo(t)
	run := func(parent repo.ID, locked bool) *archiver.Result {
		t.Helper()
		rd := lockedReader{locked: map[string]bool{"locked.db": locked}}
		res, err := archiver.New(r, &view.Live{}, archiver.Options{Parent: parent, Reader: rd}).Run(context.Background(), []string{src})
		must(t, err)
		must(t, r.Flush(context.Background()))
		return res
	}
	var prev *archiver.Result
	for i, step := range []struct {
		locked                bool
		read, unchanged, fail int64
	}{
		{true, 1, 0, 1},  // free.txt read, locked.db failed
		{true, 0, 1, 1},  // free.txt unchanged, locked.db failed again
		{false, 1, 1, 0}, // locked.db read at last
		{false, 0, 2, 0},
	} {
		var parent repo.ID
		if i > 0 {
			parent = prev.Tree
		}
		res := run(parent, step.locked)
		st := res.Stats
		if st.Files != 2 || st.FilesRead != step.read || res.FilesUnchanged != step.unchanged || res.Outcomes[outcome.Failed] != step.fail {
			t.Errorf("backup %d: %d files, %d read, %d unchanged, %d failed; want 2, %d, %d, %d",
				i+1, st.Files, st.FilesRead, res.FilesUnchanged, res.Outcomes[outcome.Failed], step.read, step.unchanged, step.fail)
		}
		if step.fail > 0 && (len(res.Problems) != 1 || !strings.HasSuffix(res.Problems[0].Path, "locked.db")) {
			t.Errorf("backup %d: problems %+v", i+1, res.Problems)
		}
		prev = res
	}
}
