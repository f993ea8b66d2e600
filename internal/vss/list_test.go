package vss_test

import (
	"context"
	"slices"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/vss"
	"github.com/stillpoint-backup/stillpoint/internal/vss/vsstest"
)

func TestListWritersStartsNoSet(t *testing.T) {
	f := vsstest.New(sqlWriter, regWriter)
	ws, err := vss.NewRequester(f.Factory(), fastOptions()).ListWriters(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 2 || ws[0].Name != "SqlServerWriter" || ws[0].State != vss.WriterStable {
		t.Fatalf("writers %+v", ws)
	}
	wantCalls(t, f, []string{"Create", "InitializeForBackup", "SetBackupState(false,false,5,false)", "GatherWriterMetadata", "FreeWriterMetadata",
		"GatherWriterStatus", "GetWriterStatusCount", "GetWriterStatus(0)", "GetWriterStatus(1)", "FreeWriterStatus", "Release"})
}

func TestListShadows(t *testing.T) {
	f := vsstest.New()
	f.Shadows = []vss.SnapshotProperties{{DeviceObject: `\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy7`, OriginalVolume: `\\?\Volume{1}\`}}
	sh, err := vss.NewRequester(f.Factory(), fastOptions()).ListShadows()
	if err != nil || len(sh) != 1 || sh[0].DeviceObject != f.Shadows[0].DeviceObject {
		t.Fatalf("%+v %v", sh, err)
	}
	if calls := f.Calls(); !slices.Contains(calls, "SetContext(-1)") || calls[len(calls)-1] != "Release" {
		t.Fatalf("Query needs VSS_CTX_ALL and a release: %v", calls)
	}
	f.Fail("InitializeForBackup", vss.E_ACCESSDENIED)
	if _, err := vss.NewRequester(f.Factory(), fastOptions()).ListShadows(); vss.Code(err) != vss.E_ACCESSDENIED {
		t.Fatalf("got %v", err)
	}
	if f.Live() != 0 {
		t.Fatal("components left")
	}
}
