package repo

import (
	"encoding/json"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/outcome"
)

// Snapshot is the manifest of one backup run.
type Snapshot struct {
	ID       ID        `json:"-"`
	Time     time.Time `json:"time"`
	Host     string    `json:"host"`
	User     string    `json:"user,omitempty"`
	Paths    []string  `json:"paths"`
	Tags     []string  `json:"tags,omitempty"`
	Excludes []string  `json:"excludes,omitempty"`
	Tree     ID        `json:"tree"`
	Parent   *ID       `json:"parent,omitempty"`
	// Original is the id of the manifest this one replaces (tag rewrites
	// a manifest under a new id); the first id a snapshot had.
	Original *ID `json:"original,omitempty"`
	// CopiedFrom names the snapshot `copy` made this one from.
	CopiedFrom *CopyOrigin `json:"copied_from,omitempty"`
	Program    string      `json:"program"`

	Stats       Stats             `json:"stats"`
	Outcomes    map[string]int64  `json:"outcomes"`
	Partial     bool              `json:"partial"`
	Consistency string            `json:"consistency,omitempty"` // weakest level over the sources
	Sources     []SourceInfo      `json:"sources,omitempty"`
	Quiesce     *QuiesceInfo      `json:"quiesce,omitempty"`
	Extra       map[string]string `json:"extra,omitempty"`
}

// Stats counts what a run saw and stored.
type Stats struct {
	Files        int64   `json:"files"`
	Dirs         int64   `json:"dirs"`
	Others       int64   `json:"others"`
	Bytes        int64   `json:"bytes"`         // size of all files
	BytesRead    int64   `json:"bytes_read"`    // file content read this run
	FilesRead    int64   `json:"files_read"`    // files whose content was read
	DataAdded    int64   `json:"data_added"`    // plaintext of new blobs
	StoredAdded  int64   `json:"stored_added"`  // bytes written to packs
	BlobsAdded   int64   `json:"blobs_added"`   // new blobs
	DurationSecs float64 `json:"duration_secs"` // wall time of the run
}

// SourceInfo records how one source was read.
type SourceInfo struct {
	Path        string    `json:"path"`
	Provider    string    `json:"provider"`            // btrfs, reflink, none, …
	Consistency string    `json:"consistency"`         // application, volume, crash, file, live
	Created     time.Time `json:"created,omitempty"`   // when its snapshot set was created
	FreezeMs    float64   `json:"freeze_ms,omitempty"` // time the set took to create
	Note        string    `json:"note,omitempty"`      // e.g. why no snapshot was taken
}

// OutcomeCounts converts the manifest's counts to typed form.
func (s *Snapshot) OutcomeCounts() outcome.Counts {
	c := outcome.Counts{}
	for k, v := range s.Outcomes {
		if o, err := outcome.Parse(k); err == nil {
			c[o] = v
		}
	}
	return c
}

// QuiesceInfo records how the moment of the backup was chosen.
type QuiesceInfo struct {
	// the write-inactivity wait
	WaitedMs    float64 `json:"waited_ms,omitempty"`
	QuietForMs  float64 `json:"quiet_for_ms,omitempty"`
	Quiet       bool    `json:"quiet,omitempty"`
	WaitMessage string  `json:"wait_message,omitempty"`
	// snapshots released because a write landed while they were made
	Resnapped int `json:"resnapped,omitempty"`
	// application writers frozen around the snapshot set
	Writers []WriterInfo `json:"writers,omitempty"`
	// hooks that ran before the data was read
	Hooks []string `json:"hooks,omitempty"`
	// the processes held (stopped) for the moment of the snapshot
	Hold *HoldInfo `json:"hold,omitempty"`
	// the Windows VSS writers of the shadow copy set and their states
	VSSWriters []VSSWriterInfo `json:"vss_writers,omitempty"`
}

// VSSWriterInfo is one VSS writer of a shadow copy set (Windows): a
// failed one lowers the consistency of the sources it covers to crash.
type VSSWriterInfo struct {
	Name     string   `json:"name"`
	ID       string   `json:"id"`
	State    string   `json:"state"`               // VSS_WS_STABLE, or the failed state
	Failed   bool     `json:"failed,omitempty"`    // seen in a failed state
	FailedAt string   `json:"failed_at,omitempty"` // the phase after which it was seen failed
	Failure  string   `json:"failure,omitempty"`   // its HRESULT's name
	Required bool     `json:"required,omitempty"`  // the job requires it
	Excluded bool     `json:"excluded,omitempty"`  // the job leaves it out
	Sources  []string `json:"sources,omitempty"`
}

// HoldInfo says which processes were stopped for the moment of a volume
// snapshot, and for how long.
type HoldInfo struct {
	HeldMs   float64       `json:"held_ms"`
	Held     []ProcessInfo `json:"held,omitempty"`
	Skipped  []ProcessInfo `json:"skipped,omitempty"`
	TimedOut bool          `json:"timed_out,omitempty"`
	Message  string        `json:"message,omitempty"`
}

// ProcessInfo names a process; Reason says why it was not held.
type ProcessInfo struct {
	Pid     int    `json:"pid"`
	Command string `json:"command"`
	Reason  string `json:"reason,omitempty"`
}

// WriterInfo says how long a writer held its application still, or why
// it did not.
type WriterInfo struct {
	Name   string   `json:"name"`
	HeldMs float64  `json:"held_ms"`
	Error  string   `json:"error,omitempty"`
	Notes  []string `json:"notes,omitempty"`
	// Frozen: the writer held its application still for the snapshot.
	// False when its freeze ran out of time and the job said on-timeout:
	// snap; Reason then says why and what the backup holds instead.
	Frozen bool   `json:"frozen"`
	Reason string `json:"reason,omitempty"`
	// Consistency is the claim for the application's data: "application"
	// (the writer froze it), "crash" (snapped without the freeze: it
	// recovers as after a power cut), "none" (its files, NotWhole, were
	// recorded failed), or "" when the writer cannot tell (a command
	// writer: the sources' consistency is all there is).
	Consistency string   `json:"consistency,omitempty"`
	NotWhole    []string `json:"not_whole,omitempty"`
}

// UnmarshalJSON reads a writer's record; one written before Frozen existed
// is of a writer that froze (a failed freeze failed the run then).
func (w *WriterInfo) UnmarshalJSON(b []byte) error {
	type plain WriterInfo
	p := plain{Frozen: true}
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*w = WriterInfo(p)
	return nil
}
