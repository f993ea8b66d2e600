package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"
)

func vcs(rev, time, modified string) *debug.BuildInfo {
	return &debug.BuildInfo{
		GoVersion: "go1.99.1",
		Main:      debug.Module{Path: "github.com/stillpoint-backup/stillpoint", Version: "(devel)"},
		Settings: []debug.BuildSetting{
			{Key: "-trimpath", Value: "true"},
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: rev},
			{Key: "vcs.time", Value: time},
			{Key: "vcs.modified", Value: modified},
		},
	}
}

func TestLinkerValuesWin(t *testing.T) {
	in := get(vcs("aaaa", "2020-01-01T00:00:00Z", "false"), "1.2.0", "bbbb", "2026-03-04T05:06:07Z")
	if in.Version != "1.2.0" || in.Commit != "bbbb" || in.Date != "2026-03-04T05:06:07Z" {
		t.Fatalf("got %+v, want the linker's version, commit and date", in)
	}
	if in.GoVersion != "go1.99.1" {
		t.Errorf("go version %q, want the one the binary was built with", in.GoVersion)
	}
}

func TestFallsBackToVCS(t *testing.T) {
	in := get(vcs("0123456789abcdef0123", "2026-01-02T03:04:05Z", "true"), "", "", "")
	if in.Version != DevVersion || in.Commit != "0123456789abcdef0123" || in.Date != "2026-01-02T03:04:05Z" || !in.Modified {
		t.Fatalf("got %+v, want the dev version and the toolchain's commit, time and modified flag", in)
	}
	if s := in.String(); !strings.Contains(s, "commit 0123456789ab+modified") || !strings.Contains(s, "built 2026-01-02T03:04:05Z") {
		t.Errorf("String() = %q", s)
	}
	// a tree changed after the commit the linker names is not said to be that commit modified
	if in := get(vcs("aaaa", "", "true"), "1.0.0", "bbbb", ""); in.Modified {
		t.Errorf("modified reported for commit %s while the tree's was aaaa", in.Commit)
	}
}

func TestModuleVersionOfGoInstall(t *testing.T) {
	bi := &debug.BuildInfo{Main: debug.Module{Version: "v1.4.2"}}
	in := get(bi, "", "", "")
	if in.Version != "1.4.2" {
		t.Errorf("version %q, want the module's 1.4.2", in.Version)
	}
	if in.Commit != "unknown" || in.Date != "unknown" {
		t.Errorf("commit %q, date %q: want unknown for a build without them", in.Commit, in.Date)
	}
}

func TestNoBuildInfo(t *testing.T) {
	in := get(nil, "", "", "")
	if in.Version != DevVersion || in.Commit != "unknown" || in.GoVersion == "" || !strings.Contains(in.Platform, "/") {
		t.Fatalf("got %+v", in)
	}
}
