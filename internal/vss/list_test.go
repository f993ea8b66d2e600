package vss_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
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

func TestListProviders(t *testing.T) {
	f := vsstest.New()
	hw := vss.GUID{Data1: 0x4a}
	f.Providers = []vss.ProviderProperties{
		{ID: vss.MicrosoftProvider, Name: "Microsoft Software Shadow Copy provider 1.0", Type: vss.ProviderSystem, Version: "1.0.0.7"},
		{ID: hw, Name: "Array Hardware Provider", Type: vss.ProviderHardware, Version: "3.2"},
	}
	f.Supports = map[vss.GUID][]string{vss.MicrosoftProvider: {`C:\`, `D:\`}, hw: {`d:\`}}
	f.VolumeErrors = map[string]vss.HRESULT{`Q:\`: vss.VSS_E_OBJECT_NOT_FOUND}
	ps, err := vss.NewRequester(f.Factory(), fastOptions()).ListProviders([]string{`C:\`, `D:\`, `Q:\`})
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].Name != f.Providers[0].Name || ps[0].Type.String() != "System" || ps[1].Version != "3.2" || ps[1].ID != hw {
		t.Fatalf("providers %+v", ps)
	}
	got := func(p vss.Provider) (s []string) {
		for _, v := range p.Volumes {
			s = append(s, fmt.Sprintf("%s=%v", v.Volume, v.Supported))
		}
		return s
	}
	if g := got(ps[0]); !slices.Equal(g, []string{`C:\=true`, `D:\=true`, `Q:\=false`}) {
		t.Errorf("Microsoft provider: %v", g)
	}
	if g := got(ps[1]); !slices.Equal(g, []string{`C:\=false`, `D:\=true`, `Q:\=false`}) {
		t.Errorf("hardware provider: %v", g)
	}
	if e := ps[0].Volumes[2].Error; !strings.Contains(e, "VSS_E_OBJECT_NOT_FOUND") || ps[0].Volumes[0].Error != "" {
		t.Errorf("errors %+v", ps[0].Volumes)
	}
	calls := f.Calls()
	if !slices.Contains(calls, "SetContext(0)") || !slices.Contains(calls, `IsVolumeSupported(`+hw.String()+`,D:\)`) || calls[len(calls)-1] != "Release" {
		t.Fatalf("calls %v", calls)
	}
	f.Fail("QueryProviders", vss.E_ACCESSDENIED)
	if _, err := vss.NewRequester(f.Factory(), fastOptions()).ListProviders(nil); vss.Code(err) != vss.E_ACCESSDENIED {
		t.Fatalf("got %v", err)
	}
	if f.Live() != 0 {
		t.Fatal("components left")
	}
}
