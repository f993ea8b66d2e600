//go:build linux

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/soak"
)

// TestSoakShort is the CI version of bench/soak.sh: four backup clients,
// each over its own changing tree with its own --host, write to one
// repository while forget --keep-last 5 --prune runs in a loop. Every
// backup and prune must succeed, every snapshot forget did not remove must
// be there and restore exactly as its client's manifest says, check
// --read-data must be clean, and a last prune and prune --now must complete.
func TestSoakShort(t *testing.T) {
	length := 40 * time.Second
	if testing.Short() {
		length = 12 * time.Second
	}
	rep := runSoak(t, soak.Config{Duration: length, Clients: 4, KeepLast: 5, Files: 200, MaxSize: 256 << 10, Seed: 7})
	if want := 4 * 5; rep.Restored != want {
		t.Errorf("%d snapshots restored, want %d", rep.Restored, want)
	}
}

// runSoak runs the soak with cfg against a repository of small packs (many
// packs, so prune has work in seconds) and fails the test on any failure it
// reports, or when prune did not run beside the backups: fewer than three
// prunes, nothing deleted, or no prune that found its mark waiting for a
// running backup. A loaded machine runs fewer prunes in cfg.Duration: the
// loops then go on until three have run, for at most 3 minutes more.
func runSoak(t *testing.T, cfg soak.Config) *soak.Report {
	t.Helper()
	cfg.Bin, cfg.Dir, cfg.Password, cfg.Init = bin, t.TempDir(), prunePassword, initSmall
	cfg.Log = t.Logf
	cfg.MinPrunes, cfg.MaxDuration = 3, cfg.Duration+3*time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), cfg.MaxDuration+4*time.Minute)
	defer cancel()
	rep, err := soak.Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	rep.WriteMarkdown(&b)
	t.Log("\n" + b.String())
	for _, f := range rep.Failures {
		t.Error(f)
	}
	s := rep.Summarize()
	if s.Prunes < 3 || s.RemovedPacks == 0 || s.PendingSeen == 0 {
		t.Errorf("prune did not run beside backups: %d prunes, %d packs deleted, %d found a mark waiting", s.Prunes, s.RemovedPacks, s.PendingSeen)
	}
	return rep
}
