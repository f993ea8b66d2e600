package main

import (
	"context"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/backend/metered"
	"github.com/stillpoint-backup/stillpoint/internal/report"
	"github.com/stillpoint-backup/stillpoint/internal/run"
)

func TestRequestsInTheSummary(t *testing.T) {
	m := run.NewMeter()
	be := metered.New(backend.NewMem(), m)
	ctx := context.Background()
	h := backend.Handle{Kind: backend.Snapshots, Name: "a"}
	if err := be.Save(ctx, h, make([]byte, 3000)); err != nil {
		t.Fatal(err)
	}
	if _, err := be.Load(ctx, h, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := be.List(ctx, backend.Snapshots, func(backend.FileInfo) error { return nil }); err != nil {
		t.Fatal(err)
	}
	got := requestsSentence(m.Counts())
	want := "3 requests (1 save, 1 load, 0 stat, 1 list, 0 remove), 2.9 KiB sent, 2.9 KiB received"
	if got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}

	local := &globals{access: run.Access{Repository: t.TempDir(), Meter: m}}
	if c := backupRequests(local, report.New(report.Human)); c != nil {
		t.Errorf("a local repository's summary counts requests: %+v", c)
	}
	if c := backupRequests(local, report.New(report.JSON)); c == nil || c.Total != 3 {
		t.Errorf("--json has no requests for a local repository: %+v", c)
	}
	remote := &globals{access: run.Access{Repository: "s3:http://127.0.0.1:1/bucket", Meter: m}}
	if c := backupRequests(remote, report.New(report.Human)); c == nil || c.Requests[metered.OpSave] != 1 {
		t.Errorf("an S3 repository's summary: %+v", c)
	}
}
