package hold

import "time"

// DefaultTimeout bounds a hold: past it the processes are resumed and the
// snapshot is taken crash-consistent.
const DefaultTimeout = 2 * time.Second

// MaxTimeout is the longest hold allowed; VSS holds a volume's writes for
// at most 10 s, and an application stopped longer than that may time out.
const MaxTimeout = 10 * time.Second

// Options configure a hold.
type Options struct {
	// Enabled holds the writers of the snapshotted filesystems.
	Enabled bool
	// Timeout bounds how long any process stays stopped (0: DefaultTimeout).
	Timeout time.Duration
	// Exclude names processes never to hold, by command name (comm) or
	// executable path.
	Exclude []string
	// Within, when set, are the paths whose consistency the hold is for
	// (the sources): a write during the hold elsewhere on the filesystem
	// does not spoil it.
	Within []string
}

// Process is one process the hold stopped or passed over.
type Process struct {
	Pid     int    `json:"pid"`
	Command string `json:"command"`
	// Reason says why a process was not held.
	Reason string `json:"reason,omitempty"`
}

// Report says what a hold did; it goes into the manifest, the summary and
// --json.
type Report struct {
	// HeldMs is how long the first process stayed stopped.
	HeldMs float64 `json:"held_ms"`
	// Held lists the processes that were stopped.
	Held []Process `json:"held,omitempty"`
	// Skipped lists writers that were not held, and why.
	Skipped []Process `json:"skipped,omitempty"`
	// TimedOut: the hold ran past its timeout; the snapshot is crash-consistent.
	TimedOut bool `json:"timed_out,omitempty"`
	// Message explains a hold that did not make the snapshot a point in time.
	Message string `json:"message,omitempty"`
}

// PointInTime tells whether the snapshot taken under this hold is one
// point in time.
func (r *Report) PointInTime() bool { return r != nil && !r.TimedOut && r.Message == "" }
