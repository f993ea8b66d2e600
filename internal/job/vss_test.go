package job

import (
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/vss"
)

// vssSource is an absolute source path on this platform, so these tests
// run under Wine too.
func vssSource() string {
	if runtime.GOOS == "windows" {
		return `C:\data`
	}
	return "/srv/app"
}

func parseVSS(t *testing.T, vssYAML string) (*Job, []Warning, error) {
	t.Helper()
	return Parse("job.yaml", []byte("sources: ['"+vssSource()+"']\n"+vssYAML))
}

func TestVSSKeys(t *testing.T) {
	j, warns, err := parseVSS(t, `vss:
  writers:
    require: [SqlServerWriter]
    exclude: ["Registry Writer", "{afbab4a2-367d-4d15-a586-71dbb18f8485}"]
  provider: microsoft
  phase-timeout: 90s
  timeout: 5m
  retries: 4
`)
	if err != nil || len(warns) != 0 {
		t.Fatal(err, warns)
	}
	o, err := j.VSS.Options()
	if err != nil {
		t.Fatal(err)
	}
	if o.Provider != vss.MicrosoftProvider || o.PhaseTimeout != 90*time.Second || o.Timeout != 5*time.Minute || o.Retries != 4 ||
		o.BackupType != 0 || !slices.Equal(o.Require, []string{"SqlServerWriter"}) || len(o.Exclude) != 2 {
		t.Fatalf("options %+v", o)
	}
}

func TestVSSDefaults(t *testing.T) {
	j, _, err := parseVSS(t, "")
	if err != nil {
		t.Fatal(err)
	}
	o, err := j.VSS.Options()
	if err != nil || o.BackupType != 0 || o.PhaseTimeout != 0 || o.Timeout != 0 || o.Retries != vss.DefaultRetries || !o.Provider.IsZero() {
		t.Fatalf("a job without vss: must keep the requester's defaults: %+v %v", o, err)
	}
	j, _, err = parseVSS(t, "vss: {retries: 0}\n")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := j.VSS.Options(); o.Retries != 0 {
		t.Fatalf("retries: 0 must stay 0: %+v", o)
	}
}

func TestVSSFullWarns(t *testing.T) {
	j, warns, err := parseVSS(t, "vss: {backup-type: full}\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 1 || !strings.Contains(warns[0].String(), "truncate their logs") {
		t.Fatalf("warnings: %v", warns)
	}
	if o, _ := j.VSS.Options(); o.BackupType != vss.BackupFull {
		t.Fatalf("backup type %d", o.BackupType)
	}
}

func TestVSSErrors(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"vss: {provider: acme}\n", `job.yaml:2:17: vss.provider: unknown provider "acme"`},
		{"vss: {retries: 11}\n", "vss.retries: 11 retries"},
		{"vss: {phase-timeout: 10m, timeout: 5m}\n", "phase-timeout 10m0s is longer than timeout 5m0s"},
		{"vss: {timeout: 5}\n", "the duration 5 has no unit"},
		{"vss: {backup-type: incremental}\n", `vss.backup-type: unknown value "incremental"`},
		{"vss: {writers: {require: [SqlServerWriter], exclude: [sqlserverwriter]}}\n", `"SqlServerWriter" is both required and excluded`},
		{"vss: {writers: {requires: [x]}}\n", `unknown key "requires"`},
		{"vss: {writers: {exclude: ['']}}\n", "vss.writers.exclude[0]: the writer name is empty"},
		{"vss: {timout: 5m}\n", `did you mean "timeout"?`},
	} {
		_, _, err := parseVSS(t, c.yaml)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", strings.TrimSpace(c.yaml), err, c.want)
		}
	}
}
