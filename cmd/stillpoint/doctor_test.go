package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/report"
	"github.com/stillpoint-backup/stillpoint/internal/snapshot"
)

// TestPrintVSSProviders: doctor shows each provider as vssadmin list
// providers does, then which paths it fits and why the others do not.
func TestPrintVSSProviders(t *testing.T) {
	var out bytes.Buffer
	rep := &report.Reporter{Mode: report.Human, Out: &out, Err: &out}
	printVSS(rep, &snapshot.VSSReport{
		Writers: []snapshot.VSSWriterInfo{{Name: "System Writer", ID: "{e8132975-6f93-4464-a53e-1050253ae220}", State: "VSS_WS_STABLE"}},
		Providers: []snapshot.VSSProviderInfo{{Name: "Microsoft Software Shadow Copy provider 1.0", ID: "{b5946137-7b9f-4925-af80-51abd60b20d5}",
			Type: "System", Version: "1.0.0.7", Fits: []string{`C:\users`, `D:\sql`},
			DoesNotFit: []snapshot.VSSNoFit{{Path: `\\server\share`, Reason: "VSS does not snap network shares; read live"}}}},
	})
	got := out.String()
	for _, want := range []string{
		"vss: 1 writers (0 failed), 0 shadow copies, 1 providers on the system\n",
		"  provider \"Microsoft Software Shadow Copy provider 1.0\" {b5946137-7b9f-4925-af80-51abd60b20d5}: System, version 1.0.0.7\n" +
			"    fits C:\\users, D:\\sql\n" +
			"    does not fit \\\\server\\share: VSS does not snap network shares; read live\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("doctor printed\n%s\nwithout\n%s", got, want)
		}
	}
	out.Reset()
	printVSS(rep, &snapshot.VSSReport{ProvidersError: "VSS Query: E_ACCESSDENIED"})
	if !strings.Contains(out.String(), "providers: cannot list them: VSS Query: E_ACCESSDENIED") {
		t.Errorf("doctor printed %q", out.String())
	}
}
