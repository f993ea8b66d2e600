package archiver_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/archiver"
	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
	"github.com/stillpoint-backup/stillpoint/internal/view"
)

// countingView counts the files opened through it.
type countingView struct {
	view.Live
	opened []string
}

func (c *countingView) Open(p string) (view.File, error) {
	c.opened = append(c.opened, p)
	return c.Live.Open(p)
}

// A follow-up reads only the paths it is given: the new tree is the
// parent's with those files replaced (a file changed since and a file
// added since are not looked at), a file gone since is dropped, one still
// locked keeps the parent's node, and Previous holds the parent's nodes.
func TestFollowUpReadsOnlyItsPaths(t *testing.T) {
	src := t.TempDir()
	for _, d := range []string{"a", "b/deep"} {
		must(t, os.MkdirAll(filepath.Join(src, d), 0o755))
	}
	write := func(name, data string) {
		must(t, os.WriteFile(filepath.Join(src, name), []byte(data), 0o644))
	}
	write("a/mail.box", "mail, locked at first")
	write("a/still.db", "still locked")
	write("a/gone.tmp", "removed before the follow-up")
	write("a/free.txt", "free, version 1")
	write("b/deep/other", "untouched")
	r := newRepo(t)
	locked := map[string]bool{"mail.box": true, "still.db": true, "gone.tmp": true}
	first, err := archiver.New(r, &view.Live{}, archiver.Options{Reader: lockedReader{locked: locked}}).Run(context.Background(), []string{src})
	must(t, err)
	must(t, r.Flush(context.Background()))
	if first.Outcomes[outcome.Failed] != 3 {
		t.Fatalf("first run outcomes %v, want 3 failed", first.Outcomes)
	}

	write("a/free.txt", "free, version 2: not read by the follow-up")
	write("b/new", "added after the parent")
	must(t, os.Remove(filepath.Join(src, "a/gone.tmp")))
	only := []string{filepath.Join(src, "a/mail.box"), filepath.Join(src, "a/still.db"), filepath.Join(src, "a/gone.tmp")}
	v := &countingView{}
	rd := lockedReader{locked: map[string]bool{"still.db": true}}
	res, err := archiver.New(r, v, archiver.Options{Parent: first.Tree, Reader: rd, Only: only}).Run(context.Background(), []string{src})
	must(t, err)
	must(t, r.Flush(context.Background()))

	// Only holds OS paths, as the retry queue does (C:\... on Windows); the
	// view is read under repository paths (/C/...)
	released, err := pathmap.Native.ToRepo(only[0])
	must(t, err)
	if len(v.opened) != 1 || !pathmap.Native.Equal(v.opened[0], released) {
		t.Errorf("opened %v, want only the released file %s", v.opened, released)
	}
	if res.Stats.FilesRead != 1 || res.Stats.Files != 2 || res.Outcomes[outcome.OK] != 1 || res.Outcomes[outcome.Failed] != 1 {
		t.Errorf("follow-up stats %+v outcomes %v: want 2 files looked at, 1 read ok, 1 failed", res.Stats, res.Outcomes)
	}
	if len(res.Problems) != 1 || res.Problems[0].Path != only[1] || res.Problems[0].Reason != outcome.ReasonLocked {
		t.Errorf("problems %+v, want only still.db locked", res.Problems)
	}
	if len(res.Previous) != 3 {
		t.Fatalf("previous %v, want the parent's node of each of the 3 paths", res.Previous)
	}
	for _, p := range only {
		if n := res.Previous[p]; n == nil || n.Outcome != outcome.Failed {
			t.Errorf("previous of %s: %+v, want the parent's failed placeholder", p, n)
		}
	}
	// the directory no path lies under is the parent's, by id
	if subtreeAt(t, r, res.Tree, filepath.Join(src, "b")) != subtreeAt(t, r, first.Tree, filepath.Join(src, "b")) {
		t.Error("b was not taken from the parent unchanged")
	}
	a, err := r.LoadTree(context.Background(), subtreeAt(t, r, res.Tree, filepath.Join(src, "a")))
	must(t, err)
	parentA, err := r.LoadTree(context.Background(), subtreeAt(t, r, first.Tree, filepath.Join(src, "a")))
	must(t, err)
	if a.Find("gone.tmp") != nil {
		t.Error("a file gone since the parent is still in the tree")
	}
	if n := a.Find("mail.box"); n == nil || n.Outcome != outcome.OK || len(n.Content) != 1 || n.Size != uint64(len("mail, locked at first")) {
		t.Errorf("mail.box in the follow-up: %+v, want read whole", n)
	}
	if n := a.Find("still.db"); n == nil || n.Outcome != outcome.Failed || len(n.Content) != 0 {
		t.Errorf("still.db in the follow-up: %+v, want failed again without content", n)
	}
	if n, old := a.Find("free.txt"), parentA.Find("free.txt"); n == nil || old == nil || n.Mtime != old.Mtime || n.Content[0] != old.Content[0] {
		t.Errorf("free.txt: %+v, want the parent's node %+v", n, old)
	}

	// without a parent there is nothing to follow up
	if _, err := archiver.New(r, &view.Live{}, archiver.Options{Only: only}).Run(context.Background(), []string{src}); err == nil {
		t.Error("a follow-up without a parent ran")
	}
}
