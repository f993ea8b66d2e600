package snapshot

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Names of the hidden directories this package creates at the root of a
// filesystem. Views hide them from directory listings.
const (
	SnapshotDir = ".stillpoint-snapshots"
	StagingDir  = ".stillpoint-staging"
)

// Label identifies what one run created on disk. Its Name is the name of
// the snapshot or staging directory, and the whole label is stored beside
// it as <name>.json, so a later run can tell whether the owner still lives.
type Label struct {
	RunID    string    `json:"run_id"`
	PID      int       `json:"pid"`
	PIDStart uint64    `json:"pid_start,omitempty"` // process start time (clock ticks since boot) to tell a reused pid
	Created  time.Time `json:"created"`
	Host     string    `json:"host,omitempty"`
	Provider string    `json:"provider,omitempty"`
	Sources  []string  `json:"sources,omitempty"`
}

var unsafeRunID = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// lastCreated makes Created strictly increasing within the process, so two
// sets never share a name: a reused path could serve a deleted snapshot's
// files from the kernel's caches.
var lastCreated struct {
	sync.Mutex
	t time.Time
}

// NewLabel labels this process's run. An empty runID gets a time-based one.
func NewLabel(runID string) Label {
	lastCreated.Lock()
	now := time.Now().UTC().Truncate(time.Microsecond)
	if !now.After(lastCreated.t) {
		now = lastCreated.t.Add(time.Microsecond)
	}
	lastCreated.t = now
	lastCreated.Unlock()
	runID = unsafeRunID.ReplaceAllString(runID, "_")
	if len(runID) > 64 {
		runID = runID[:64]
	}
	if runID == "" {
		runID = strconv.FormatInt(now.UnixNano(), 36)
	}
	host, _ := os.Hostname()
	return Label{RunID: runID, PID: os.Getpid(), PIDStart: processStart(os.Getpid()),
		Created: now, Host: host}
}

const nameTime = "20060102T150405.000000Z"

// Name is "<created>-<pid>-<runid>", e.g.
// "20250101T120000.123456Z-4242-nightly"; unique within a process.
func (l Label) Name() string {
	return fmt.Sprintf("%s-%d-%s", l.Created.UTC().Format(nameTime), l.PID, l.RunID)
}

// parseName reads the pid back from a Name; ok is false for foreign names.
func parseName(name string) (pid int, created time.Time, ok bool) {
	parts := strings.SplitN(name, "-", 3)
	if len(parts) != 3 {
		return 0, time.Time{}, false
	}
	created, err := time.Parse(nameTime, parts[0])
	if err != nil {
		return 0, time.Time{}, false
	}
	pid, err = strconv.Atoi(parts[1])
	if err != nil || pid <= 0 {
		return 0, time.Time{}, false
	}
	return pid, created, true
}
