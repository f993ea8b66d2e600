// Package job reads and checks job files: the YAML that says what one
// backup run reads, how hard it tries for a consistent view of it, and
// which hooks and writers surround it. A Job is plain data; the caller maps
// it onto the snapshot, livefile and quiesce packages.
//
// Every problem names the file, line and column, the key, and a hint of
// what to write instead, and all problems of a file are reported at once.
package job

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/hold"
	"github.com/stillpoint-backup/stillpoint/internal/quiesce"
	"github.com/stillpoint-backup/stillpoint/internal/schedule"
)

// Job is one backup run's configuration.
type Job struct {
	// File is the job file the job came from; "" when built otherwise.
	File string
	// Repository is where snapshots go; the CLI's --repo overrides it, and
	// "" leaves the choice to the CLI.
	Repository  string
	Host        string
	Tags        []string
	Compression string // off, fastest, default, better; "" = the repository's
	// StagingDir is where open-files: stage copies files and writers put
	// consistent copies; a source may have its own.
	StagingDir string
	// Exclude applies to every source, in addition to each source's own.
	Exclude []string
	Sources []Source
	Quiesce Quiesce
	Writers []WriterSpec
	// VSS tunes Volume Shadow Copies (Windows).
	VSS   VSS
	Hooks quiesce.Hooks
	// Retention, when set, forgets this job's old snapshots after each
	// backup that saved one.
	Retention *Retention
	// Drill, when set, is how stillpoint drill verifies this job's snapshots.
	Drill *Drill
	// S3 are the options of an S3 repository (s3.go).
	S3 S3

	// Name names the job in the history, notifications and status page:
	// name:, else the job file's name without .yaml or .yml.
	Name string
	// Schedule is when the daemon runs the job; nil: only when asked.
	Schedule schedule.Schedule
	// Jitter delays each scheduled run by a random time in [0, Jitter).
	Jitter time.Duration
	// RetryAfter is how long after a run the daemon retries the files it
	// could not store whole; 0: the daemon's default.
	RetryAfter time.Duration
	// Notify, when set, is who hears how runs went (notify.go).
	Notify *Notify

	// pos maps a key path ("sources[0].retries") to where the file set it;
	// it also tells which keys the file set at all.
	pos map[string]Pos
}

// Source is one path to back up and its policies.
type Source struct {
	Path string
	// Snapshot is off, auto, on or required (see snapshot.Policy).
	Snapshot string
	// OpenFiles is read, retry, skip or stage (see livefile.Strategy).
	OpenFiles string
	// Retries is the number of re-reads of a busy file (0..10).
	Retries int
	Exclude []string
	// StagingDir overrides Job.StagingDir for this source.
	StagingDir string
}

// Quiesce is the wait for write inactivity before the snapshot, and the
// hold of the writing processes for its moment.
type Quiesce struct {
	// Inactivity is the quiet period to wait for; 0 does not wait.
	Inactivity time.Duration
	// MaxWait bounds the wait.
	MaxWait time.Duration
	// OnTimeout is "snap" (take a crash-consistent snapshot anyway) or
	// "fail" (abort the run) when MaxWait passes without a quiet period.
	OnTimeout string
	// Hold is "writers" (stop the processes writing to a volume snapshot's
	// filesystem for its moment, see package hold) or "off"; "" when the
	// file does not say, and the caller decides.
	Hold string
	// HoldTimeout bounds the hold (0 < HoldTimeout <= MaxHoldTimeout).
	HoldTimeout time.Duration
	// HoldExclude names processes never to hold: command names (comm) or
	// absolute executable paths.
	HoldExclude []string
}

// WriterSpec is one application writer.
type WriterSpec struct {
	// Kind is sqlite, postgres, mysql or command.
	Kind string
	// Target is the SQLite database file, the PostgreSQL connection string
	// or the MySQL/MariaDB DSN; "" for command.
	Target string
	// Freeze and Thaw are the command writer's shell command lines.
	Freeze, Thaw string
	// Timeout bounds the freeze; 0 means the writer's default.
	Timeout time.Duration
	// OnTimeout is what happens when the freeze runs out of time: "snap"
	// (take the snapshot without it, and say so; files a snapshot does not
	// hold whole are recorded failed) or "fail" (abort the run).
	OnTimeout string
	// Checkpoint makes a postgres writer run CHECKPOINT in its freeze
	// (less WAL to replay on restore, an I/O burst the application feels);
	// only for postgres.
	Checkpoint bool
}

// Defaults for keys a job file leaves out.
const (
	DefaultSnapshot  = "auto"
	DefaultOpenFiles = "retry"
	DefaultRetries   = 3
	MaxRetries       = 10
	DefaultMaxWait   = 60 * time.Second
	DefaultOnTimeout = "snap"
	// quiesce.hold-timeout: the default, and the most allowed (an
	// application stopped for longer may time out its clients).
	DefaultHoldTimeout = hold.DefaultTimeout
	MaxHoldTimeout     = hold.MaxTimeout
)

// Value sets, in the order the documentation lists them.
var (
	SnapshotPolicies  = []string{"off", "auto", "on", "required"}
	OpenFileModes     = []string{"read", "retry", "skip", "stage"}
	OnTimeoutActions  = []string{"snap", "fail"}
	HoldModes         = []string{"writers", "off"}
	CompressionLevels = []string{"off", "fastest", "default", "better"}
	WriterKinds       = []string{"sqlite", "postgres", "mysql", "command"}
)

// Pos is a place in a job file.
type Pos struct{ Line, Column int }

// Problem is an error or a warning about one key of a job.
type Problem struct {
	File string
	Pos  Pos
	// Key is the key's path, e.g. "sources[0].open-files".
	Key     string
	Message string
	// Hint says what to write instead.
	Hint string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Pos.Line > 0 {
			fmt.Fprintf(&b, ":%d:%d", p.Pos.Line, p.Pos.Column)
		}
		b.WriteString(": ")
	}
	if p.Key != "" {
		b.WriteString(p.Key + ": ")
	}
	b.WriteString(p.Message)
	if p.Hint != "" {
		b.WriteString("\n\thint: " + p.Hint)
	}
	return b.String()
}

// Warning is a problem that does not stop the run.
type Warning struct{ Problem }

// Error is a problem that makes the job unusable.
type Error struct{ Problem }

func (e *Error) Error() string { return e.String() }

// Errors is every error found in a job.
type Errors []*Error

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Load reads, parses and validates a job file.
func Load(path string) (*Job, []Warning, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("job file: %w", err)
	}
	return Parse(path, data)
}

// Parse parses and validates a job file's content; file names it in
// messages.
func Parse(file string, data []byte) (*Job, []Warning, error) {
	p := &parser{file: file, job: &Job{File: file, pos: map[string]Pos{}}}
	p.parse(data)
	if len(p.errs) > 0 {
		return nil, p.warns, p.errs
	}
	applyDefaults(p.job)
	warns, err := Validate(p.job)
	warns = append(p.warns, warns...)
	if err != nil {
		return nil, warns, err
	}
	return p.job, warns, nil
}

// applyDefaults fills what the file left out, so the caller sees the
// values the run will use.
func applyDefaults(j *Job) {
	for i := range j.Sources {
		s := &j.Sources[i]
		if s.Snapshot == "" {
			s.Snapshot = DefaultSnapshot
		}
		if s.OpenFiles == "" {
			s.OpenFiles = DefaultOpenFiles
		}
		if _, set := j.pos[fmt.Sprintf("sources[%d].retries", i)]; !set && s.Retries == 0 {
			s.Retries = DefaultRetries
		}
	}
	if j.Quiesce.Inactivity > 0 && j.Quiesce.MaxWait == 0 {
		// Long enough for an application's pause between bursts, and
		// never shorter than the period itself.
		j.Quiesce.MaxWait = max(DefaultMaxWait, 2*j.Quiesce.Inactivity)
	}
	if j.Quiesce.OnTimeout == "" {
		j.Quiesce.OnTimeout = DefaultOnTimeout
	}
	if _, set := j.pos["quiesce.hold-timeout"]; !set && j.Quiesce.HoldTimeout == 0 {
		j.Quiesce.HoldTimeout = DefaultHoldTimeout
	}
	for i := range j.Writers {
		if j.Writers[i].OnTimeout == "" {
			j.Writers[i].OnTimeout = DefaultOnTimeout
		}
	}
	drillDefaults(j)
}

// Pos returns where the job file set key ("sources[0].path"), and false
// when it did not.
func (j *Job) Pos(key string) (Pos, bool) {
	p, ok := j.pos[key]
	return p, ok
}
