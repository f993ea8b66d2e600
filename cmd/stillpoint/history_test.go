package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/history"
	"github.com/stillpoint-backup/stillpoint/internal/report"
)

func TestHistoryCommand(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	rep := func(mode report.Mode) (*report.Reporter, *bytes.Buffer) {
		var out bytes.Buffer
		return &report.Reporter{Mode: mode, Out: &out, Err: &out}, &out
	}

	// no database yet: said so, and none is created
	r, out := rep(report.Human)
	if err := runHistory(ctx, r, dir, "", 20); err != nil || !strings.Contains(out.String(), "no runs recorded") {
		t.Fatalf("%v %q", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, history.FileName)); err == nil {
		t.Error("listing created the database")
	}

	db, err := history.Open(filepath.Join(dir, history.FileName))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 5, 6, 2, 30, 0, 0, time.Local)
	runs := []*history.Run{
		{Job: "app", Kind: history.Full, Start: t0, End: t0.Add(95 * time.Second), Status: history.Partial, Snapshot: "4f2a9c01deadbeef",
			Outcomes: map[string]int{"ok": 1200, "changed": 1, "failed": 1},
			Flagged:  []history.File{{Path: "/srv/app/log", Outcome: "changed"}, {Path: "/srv/app/lock", Outcome: "failed", Reason: "locked"}},
			Steps:    []history.Step{{Kind: "writer", Name: "sqlite /srv/app/app.db", Status: "frozen", Freeze: 38 * time.Millisecond}}},
		{Job: "db", Kind: history.Full, Start: t0.Add(time.Hour), End: t0.Add(time.Hour + 3*time.Second), Status: history.Failed,
			Errors: []string{"repository /mnt/backup: no such file or directory"}},
		{Job: "app", Kind: history.FollowUp, Start: t0.Add(2 * time.Hour), End: t0.Add(2*time.Hour + time.Second), Status: history.Success,
			Snapshot: "77aa", Outcomes: map[string]int{"ok": 1}, RetriedFiles: 1},
	}
	for _, run := range runs {
		if _, err := db.Record(ctx, run); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	r, out = rep(report.Human)
	if err := runHistory(ctx, r, dir, "", 20); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "START") || lines[4] != "3 runs" {
		t.Fatalf("table:\n%s", out)
	}
	for i, want := range [][]string{
		{"2026-05-06 04:30:00", "app", "follow-up", "success", "1s", "77aa", "1 ok"},
		{"db", "failed: repository /mnt/backup: no such file or directory", "-"},
		{"2026-05-06 02:30:00", "app", "full", "partial", "1m35s", "4f2a9c01 ", "1200 ok, 1 changed, 1 failed", "  2"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i+1], w) {
				t.Errorf("line %q lacks %q", lines[i+1], w)
			}
		}
	}

	r, out = rep(report.JSON)
	if err := runHistory(ctx, r, dir, "app", 1); err != nil {
		t.Fatal(err)
	}
	var got []historyRun
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(got) != 1 || got[0].Kind != history.FollowUp || got[0].RetriedFiles != 1 || got[0].Seconds != 1 || got[0].Flagged == nil {
		t.Errorf("json %+v", got)
	}

	r, out = rep(report.JSON)
	if err := runHistory(ctx, r, dir, "app", 0); err != nil {
		t.Fatal(err)
	}
	got = nil
	json.Unmarshal(out.Bytes(), &got)
	if len(got) != 2 || len(got[1].Flagged) != 2 || got[1].Flagged[1].Reason != "locked" || got[1].Steps[0].FreezeMS != 38 {
		t.Errorf("json of app: %s", out)
	}

	r, out = rep(report.Human)
	if err := runHistory(ctx, r, dir, "mail", 0); err != nil || !strings.Contains(out.String(), "no runs of mail recorded (jobs with runs: app, db)") {
		t.Errorf("unknown job: %v %q", err, out)
	}
}
