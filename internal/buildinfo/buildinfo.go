// Package buildinfo says which stillpoint this is: its version, the commit it
// was built from, when, and with which Go for which platform.
//
// A release build sets the first three with the linker; scripts/release is
// the one place that does:
//
//	go build -ldflags "-X github.com/stillpoint-backup/stillpoint/internal/buildinfo.version=1.2.0 …"
//
// Without them, what the Go toolchain stamped into the binary is used: the
// module version of `go install …@v1.2.0`, and the commit and its time that
// `go build` and `go run` record from a git checkout. So every binary names
// its commit, however it was built.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Set by the linker (-X) in scripts/release; the date is RFC 3339, UTC.
var (
	version string
	commit  string
	date    string
)

// DevVersion is the version of a build that was given none and whose module
// has none (a checkout built with go build or go run).
const DevVersion = "0.1.0-dev"

// Info describes one build.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`             // "unknown" when neither the linker nor the toolchain recorded one
	Modified  bool   `json:"modified,omitempty"` // built from a tree with uncommitted changes
	Date      string `json:"date"`               // the build date a release set, else the commit's time; "unknown" without either
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"` // GOOS/GOARCH
}

// Get returns the running binary's Info.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return get(bi, version, commit, date)
}

// get fills Info from the linker's values, falling back to the toolchain's.
func get(bi *debug.BuildInfo, version, commit, date string) Info {
	in := Info{
		Version:   version,
		Commit:    commit,
		Date:      date,
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
	}
	if bi != nil {
		if in.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			in.Version = strings.TrimPrefix(bi.Main.Version, "v")
		}
		if bi.GoVersion != "" {
			in.GoVersion = bi.GoVersion
		}
		var vcsCommit, vcsTime string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				vcsCommit = s.Value
			case "vcs.time":
				vcsTime = s.Value
			case "vcs.modified":
				in.Modified = s.Value == "true" && (in.Commit == "" || in.Commit == vcsCommit)
			}
		}
		if in.Commit == "" {
			in.Commit = vcsCommit
		}
		if in.Date == "" {
			in.Date = vcsTime
		}
	}
	if in.Version == "" {
		in.Version = DevVersion
	}
	if in.Commit == "" {
		in.Commit = "unknown"
	}
	if in.Date == "" {
		in.Date = "unknown"
	}
	return in
}

// Version is the version alone, as snapshots record it.
func Version() string { return Get().Version }

// String is the one line `stillpoint --version` prints after the name.
func (in Info) String() string {
	c := in.Commit
	if len(c) > 12 {
		c = c[:12]
	}
	if in.Modified {
		c += "+modified"
	}
	return fmt.Sprintf("%s (commit %s, built %s, %s, %s)", in.Version, c, in.Date, in.GoVersion, in.Platform)
}

// Long is the multi-line form `stillpoint version` prints.
func (in Info) Long() string {
	c := in.Commit
	if in.Modified {
		c += " (with uncommitted changes)"
	}
	return fmt.Sprintf("stillpoint %s\ncommit:   %s\nbuilt:    %s\ngo:       %s\nplatform: %s\n", in.Version, c, in.Date, in.GoVersion, in.Platform)
}
