package archiver_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/archiver"
	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/view"
)

// Paths to back up that do not exist are missing, not vanished; when none
// exists there is nothing to snapshot, and the run says which paths.
func TestAllRootsMissing(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	must(t, os.WriteFile(file, []byte("x"), 0o644))
	paths := []string{filepath.Join(base, "nope"), filepath.Join(base, "gone", "deep"), filepath.Join(file, "below")}
	want := slices.Sorted(slices.Values(paths))

	var me *archiver.MissingError
	if err := archiver.CheckRoots(&view.Live{}, paths); !errors.As(err, &me) || !slices.Equal(me.Paths, want) {
		t.Fatalf("CheckRoots: %v, want a MissingError naming %v", err, want)
	}
	_, err := archiver.New(newRepo(t), &view.Live{}, archiver.Options{}).Run(context.Background(), paths)
	if !errors.As(err, &me) || !slices.Equal(me.Paths, want) {
		t.Fatalf("Run: %v, want a MissingError naming %v", err, want)
	}
	if err := archiver.CheckRoots(&view.Live{}, append(paths, file)); err != nil {
		t.Fatalf("CheckRoots with one path that exists: %v", err)
	}
}

func TestSomeRootsMissing(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "a", "src")
	must(t, os.MkdirAll(src, 0o755))
	must(t, os.MkdirAll(filepath.Join(base, "b"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "f"), []byte("data"), 0o644))
	missing := []string{filepath.Join(base, "b", "gone", "x"), filepath.Join(src, "f", "below"), filepath.Join(base, "nope")}

	r := newRepo(t)
	res := backup(t, r, repo.ID{}, append([]string{src}, missing...)...)
	var got []string
	for _, p := range res.Problems {
		if p.Outcome != outcome.Failed || p.Reason != outcome.ReasonMissing {
			t.Errorf("%s: %s (%s), want failed (missing)", p.Path, p.Outcome, p.Reason)
		}
		got = append(got, p.Path)
	}
	// src/f/below lies inside src: src is backed up whole, f with it
	if want := []string{filepath.Join(base, "b", "gone", "x"), filepath.Join(base, "nope")}; !slices.Equal(got, want) {
		t.Fatalf("problems at %v, want the missing paths %v", got, want)
	}
	if res.Outcomes[outcome.Failed] != 2 || res.Stats.Files != 1 {
		t.Fatalf("outcomes %v, stats %+v", res.Outcomes, res.Stats)
	}
	// no empty directory on the way to paths that are not there
	tree, err := r.LoadTree(context.Background(), subtreeAt(t, r, res.Tree, base))
	must(t, err)
	if tree.Find("a") == nil || tree.Find("b") != nil || tree.Find("nope") != nil {
		t.Fatalf("%s holds %v, want only a", base, tree.Nodes)
	}
}
