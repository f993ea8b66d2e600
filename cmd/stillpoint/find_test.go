package main

import (
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

func TestOutcomeMark(t *testing.T) {
	for _, c := range []struct {
		n    repo.Node
		want string
	}{
		{repo.Node{Type: repo.NodeFile}, ""},
		{repo.Node{Type: repo.NodeFile, Outcome: outcome.OKSnapshot}, ""},
		{repo.Node{Type: repo.NodeFile, Outcome: outcome.Changed}, "  [changed]"},
		{repo.Node{Type: repo.NodeFile, Outcome: outcome.Stale, Reason: "locked", Holder: "pg[12]"}, "  [stale: locked, held by pg[12]]"},
		{repo.Node{Type: repo.NodeDir, Outcome: outcome.Failed}, ""},
	} {
		if got := outcomeMark(&c.n); got != c.want {
			t.Errorf("%v %v: %q, want %q", c.n.Type, c.n.Outcome, got, c.want)
		}
	}
}

func TestResolveSnapshotRefs(t *testing.T) {
	var snaps []*repo.Snapshot
	for _, h := range []string{"aa", "ab", "bb"} {
		id, _ := repo.ParseID(h + "00000000000000000000000000000000000000000000000000000000000000")
		snaps = append(snaps, &repo.Snapshot{ID: id})
	}
	all, err := resolveSnapshotRefs(snaps, nil)
	if err != nil || len(all) != 3 {
		t.Fatalf("no refs: %d snapshots, %v", len(all), err)
	}
	got, err := resolveSnapshotRefs(snaps, []string{"bb", "aa", "latest", "aa0"})
	if err != nil || len(got) != 2 || got[0] != snaps[2] || got[1] != snaps[0] {
		t.Fatalf("refs: %v %v", got, err)
	}
	if _, err := resolveSnapshotRefs(snaps, []string{"a"}); err == nil {
		t.Fatal("an ambiguous prefix was accepted")
	}
	if _, err := resolveSnapshotRefs(snaps, []string{"cc"}); err == nil {
		t.Fatal("an unknown snapshot was accepted")
	}
}
