// Package retryq keeps, per job, the files that a run could not back up
// (failed: locked, permission, vanished, I/O; or skipped-open) until a
// later run stores them whole. A follow-up run reads the entries that are
// due; each attempt that fails again puts the next one twice as far off,
// at most until the job's next full run.
//
// The queue is one JSON file per job in a state directory, written whole
// and atomically (temporary file, fsync, rename), so it survives a crash
// or a restart of the daemon. Each change reads the file again first: a
// foreground `stillpoint run` and the daemon see each other's entries.
// A damaged file is set aside and the queue starts empty (Damaged says
// so): the next full run queues again what it cannot back up.
package retryq

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/archiver"
	"github.com/stillpoint-backup/stillpoint/internal/outcome"
)

// DefaultRetryAfter is the wait before the first follow-up of a file.
const DefaultRetryAfter = 15 * time.Minute

// MaxDelay bounds the wait between two attempts when no next full run is
// known.
const MaxDelay = 24 * time.Hour

// formatVersion is the state file's "version".
const formatVersion = 1

// Entry is a file waiting for a follow-up.
type Entry struct {
	Path string `json:"path"`
	// Outcome is how the last run that tried it counted it: failed or
	// skipped-open.
	Outcome   outcome.Outcome `json:"outcome"`
	Reason    string          `json:"reason,omitempty"`
	Holder    string          `json:"holder,omitempty"`
	Error     string          `json:"error,omitempty"`
	FirstSeen time.Time       `json:"first_seen"`
	// Attempts counts the runs that could not back it up whole.
	Attempts int       `json:"attempts"`
	Next     time.Time `json:"next_attempt"`
}

// Failure is one file a run could not back up.
type Failure struct {
	Path    string
	Outcome outcome.Outcome
	Reason  string
	Holder  string
	Error   string
}

// FromProblems picks from a run's problems the files to queue: those
// failed or skipped-open. A path to back up that did not exist is left
// out (no later attempt can find it), and so is a file stored but changed
// while read.
func FromProblems(problems []archiver.Problem) []Failure {
	var out []Failure
	for _, p := range problems {
		if p.Outcome != outcome.Failed && p.Outcome != outcome.SkippedOpen || p.Reason == outcome.ReasonMissing {
			continue
		}
		out = append(out, Failure{Path: p.Path, Outcome: p.Outcome, Reason: p.Reason, Holder: p.Holder, Error: p.Error})
	}
	return out
}

// Policy says when a file is tried again.
type Policy struct {
	// RetryAfter is the wait after the first failure; it doubles with
	// every attempt that fails again. 0 is DefaultRetryAfter.
	RetryAfter time.Duration
	// NextFullRun is when the job runs next in full, which tries every
	// file anyway: no attempt is put later. Zero: MaxDelay bounds the wait.
	NextFullRun time.Time
}

// next is when a file that failed attempts times by now is tried again.
func (p Policy) next(now time.Time, attempts int) time.Time {
	d := p.RetryAfter
	if d <= 0 {
		d = DefaultRetryAfter
	}
	for i := 1; i < attempts && d < MaxDelay; i++ {
		d *= 2
	}
	d = min(d, MaxDelay)
	t := now.Add(d)
	if !p.NextFullRun.IsZero() && t.After(p.NextFullRun) {
		t = p.NextFullRun
	}
	return t
}

// Change is what Update did.
type Change struct {
	// Queued are the run's failures as they stand in the queue now.
	Queued []Entry
	// Resolved are the entries the run stored (or found gone): they left.
	Resolved []Entry
}

// Queue is one job's retry queue. Its methods may be called from several
// goroutines.
type Queue struct {
	path    string
	job     string
	damaged string

	mu      sync.Mutex
	entries map[string]*Entry
}

type stateFile struct {
	Version int      `json:"version"`
	Job     string   `json:"job"`
	Entries []*Entry `json:"entries"`
}

// Open opens the queue of job in dir, creating dir if need be. A state
// file that cannot be parsed is renamed to end in ".damaged" and the queue
// starts empty; Damaged then says so.
func Open(dir, job string) (*Queue, error) {
	if job == "" {
		return nil, errors.New("retry queue: no job name")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("retry queue: %w", err)
	}
	q := &Queue{path: filepath.Join(dir, fileName(job)), job: job}
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.lockedLoad(); err != nil {
		return nil, err
	}
	return q, nil
}

// Path is the queue's state file.
func (q *Queue) Path() string { return q.path }

// Damaged says, when the state file was damaged and set aside, where it
// went; "" otherwise.
func (q *Queue) Damaged() string { return q.damaged }

// fileName is the state file of a job: its name with the characters a
// file name cannot hold everywhere escaped.
func fileName(job string) string {
	var b strings.Builder
	for _, c := range []byte(job) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.' && b.Len() > 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String() + ".retry.json"
}

// load reads the state file into q.entries (empty when there is none).
func (q *Queue) load() error {
	q.entries = map[string]*Entry{}
	data, err := os.ReadFile(q.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("retry queue: %w", err)
	}
	var st stateFile
	err = json.Unmarshal(data, &st)
	if err == nil && st.Version != formatVersion {
		err = fmt.Errorf("version %d, want %d", st.Version, formatVersion)
	}
	if err == nil {
		for _, e := range st.Entries {
			if e == nil || e.Path == "" {
				err = errors.New("an entry without a path")
				break
			}
			q.entries[e.Path] = e
		}
	}
	if err != nil {
		q.entries = map[string]*Entry{}
		aside := q.path + ".damaged"
		if rerr := os.Rename(q.path, aside); rerr != nil {
			return fmt.Errorf("retry queue %s is damaged (%v) and could not be set aside: %w", q.path, err, rerr)
		}
		q.damaged = fmt.Sprintf("the retry queue %s was damaged (%v); it was moved to %s and starts empty", q.path, err, aside)
	}
	return nil
}

// save writes the queue whole: a temporary file, fsync, rename, and an
// fsync of the directory, so a crash leaves the old queue or the new one.
func (q *Queue) save() error {
	st := stateFile{Version: formatVersion, Job: q.job, Entries: q.sorted()}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(q.path)
	tmp, err := os.CreateTemp(dir, ".retry-*.tmp")
	if err != nil {
		return fmt.Errorf("retry queue: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename there is nothing to remove
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("retry queue: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("retry queue: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("retry queue: %w", err)
	}
	if err := os.Rename(tmp.Name(), q.path); err != nil {
		return fmt.Errorf("retry queue: %w", err)
	}
	if runtime.GOOS != "windows" { // a directory cannot be opened for fsync there
		if d, err := os.Open(dir); err == nil {
			d.Sync()
			d.Close()
		}
	}
	return nil
}

func (q *Queue) sorted() []*Entry {
	out := make([]*Entry, 0, len(q.entries))
	for _, e := range q.entries {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func copies(es []*Entry) []Entry {
	out := make([]Entry, len(es))
	for i, e := range es {
		out[i] = *e
	}
	return out
}

// change reads the file again, applies f and writes the result. The
// lock file beside the state file keeps another process (the service and
// a `run` from the command line) from changing the queue in between,
// which would lose the other's entries.
func (q *Queue) change(f func()) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	unlock, err := q.lockOthersOut()
	if err != nil {
		return err
	}
	defer unlock()
	if err := q.load(); err != nil {
		return err
	}
	f()
	return q.save()
}

// lockOthersOut takes the queue's lock between processes. The lock file
// is never removed: removing it would let two processes lock two
// different files of the same name.
func (q *Queue) lockOthersOut() (func(), error) {
	lf, err := os.OpenFile(q.path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("retry queue: %w", err)
	}
	if err := lockFile(lf); err != nil {
		lf.Close()
		return nil, fmt.Errorf("retry queue: locking %s: %w", lf.Name(), err)
	}
	return func() { lf.Close() }, nil
}

// Add queues the failures: a new file with 1 attempt, a queued one with
// one more; either is due again by p.
func (q *Queue) Add(now time.Time, failures []Failure, p Policy) error {
	return q.change(func() { q.add(now, failures, p) })
}

func (q *Queue) add(now time.Time, failures []Failure, p Policy) []Entry {
	var out []Entry
	for _, f := range failures {
		e := q.entries[f.Path]
		if e == nil {
			e = &Entry{Path: f.Path, FirstSeen: now.UTC()}
			q.entries[f.Path] = e
		}
		e.Attempts++
		e.Outcome, e.Reason, e.Holder, e.Error = f.Outcome, f.Reason, f.Holder, f.Error
		e.Next = p.next(now, e.Attempts).UTC()
		out = append(out, *e)
	}
	return out
}

// Resolve removes the files from the queue (stored whole, or gone).
func (q *Queue) Resolve(paths ...string) error {
	return q.change(func() {
		for _, p := range paths {
			delete(q.entries, p)
		}
	})
}

// Update records a run: the entries at or below the paths it tried (a
// full run's sources, or a follow-up's files) that are not among its
// failures leave the queue, and the failures are added.
func (q *Queue) Update(now time.Time, tried []string, failures []Failure, p Policy) (Change, error) {
	var ch Change
	err := q.change(func() {
		failed := map[string]bool{}
		for _, f := range failures {
			failed[f.Path] = true
		}
		for _, e := range q.sorted() {
			if !failed[e.Path] && within(e.Path, tried) {
				ch.Resolved = append(ch.Resolved, *e)
				delete(q.entries, e.Path)
			}
		}
		ch.Queued = q.add(now, failures, p)
	})
	return ch, err
}

// within tells whether p is one of roots or below one.
func within(p string, roots []string) bool {
	for _, r := range roots {
		if p == r {
			return true
		}
		base := strings.TrimRight(r, `/\`)
		if strings.HasPrefix(p, base+"/") || runtime.GOOS == "windows" && strings.HasPrefix(p, base+`\`) {
			return true
		}
	}
	return false
}

// Entries lists the queue, sorted by path.
func (q *Queue) Entries() []Entry {
	q.mu.Lock()
	defer q.mu.Unlock()
	return copies(q.sorted())
}

// Reload reads the state file again (another process may have changed it).
func (q *Queue) Reload() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.lockedLoad()
}

// lockedLoad loads the state file under the lock between processes: on
// Windows a file open for reading cannot be replaced, so a reader outside
// the lock would fail another process's save.
func (q *Queue) lockedLoad() error {
	unlock, err := q.lockOthersOut()
	if err != nil {
		return err
	}
	defer unlock()
	return q.load()
}

// Len is the number of files queued.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.entries)
}

// Due lists the entries whose next attempt is at or before now.
func (q *Queue) Due(now time.Time) []Entry {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []*Entry
	for _, e := range q.sorted() {
		if !e.Next.After(now) {
			out = append(out, e)
		}
	}
	return copies(out)
}

// NextAttempt is the earliest next attempt; zero when the queue is empty.
func (q *Queue) NextAttempt() time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	var t time.Time
	for _, e := range q.entries {
		if t.IsZero() || e.Next.Before(t) {
			t = e.Next
		}
	}
	return t
}
