package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
)

// kindMark is the file kind of prune marks (gc/), bound into their key.
const kindMark byte = 'G'

const markVersion = 1

// Mark is a prune's list of packs to delete once every lock holder it
// lists is gone (docs/format.md, Prune). A mark is written twice: first
// without its locks, then, once that is durable, with the locks listed
// after it (Completes names the first, which is then removed).
type Mark struct {
	ID          ID         `json:"-"`
	Version     int        `json:"version"`
	Time        time.Time  `json:"time"`
	Host        string     `json:"host"`
	Packs       []ID       `json:"packs"`
	Bytes       int64      `json:"bytes"`
	LocksListed bool       `json:"locks_listed"`
	Locks       []MarkLock `json:"locks,omitempty"`
	Completes   *ID        `json:"completes,omitempty"`
}

// MarkLock names a lock holder a mark waits for.
type MarkLock struct {
	Session string    `json:"session"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Command string    `json:"command"`
	Time    time.Time `json:"time"`
}

func (m MarkLock) String() string {
	return fmt.Sprintf("%q (pid %d on %s, lock of %s)", m.Command, m.PID, m.Host, m.Time.Local().Format(time.DateTime))
}

// MarkLoadError names a mark that could not be read.
type MarkLoadError struct {
	Name string
	Err  error
}

func (e *MarkLoadError) Error() string { return fmt.Sprintf("gc/%s: %v", e.Name, e.Err) }

// Marks returns the prune marks read with the index.
func (r *Repository) Marks() []*Mark { return r.marks }

// MarkProblems lists the marks that could not be read. While there are
// any, no pack from an index file counts as stored: a backup writes again
// what it needs rather than trust a pack such a mark may name.
func (r *Repository) MarkProblems() []*MarkLoadError { return r.markProblems }

// saveMark seals and writes m under a new random name.
func (r *Repository) saveMark(ctx context.Context, m *Mark) error {
	m.Version = markVersion
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	id := NewRandomID()
	if err := r.be.Save(ctx, backend.Handle{Kind: backend.Marks, Name: id.String()}, r.key.sealFile(kindMark, id, data)); err != nil {
		return fmt.Errorf("write prune mark: %w", err)
	}
	m.ID = id
	return nil
}

func (r *Repository) loadMark(ctx context.Context, name string) (*Mark, error) {
	id, err := ParseID(name)
	if err != nil {
		return nil, err
	}
	data, err := backend.ReadAll(ctx, r.be, backend.Handle{Kind: backend.Marks, Name: name})
	if err != nil {
		return nil, err
	}
	plain, err := r.key.openFile(kindMark, id, data)
	if err != nil {
		return nil, err
	}
	var m Mark
	if err := json.Unmarshal(plain, &m); err != nil {
		return nil, fmt.Errorf("damaged: %w", err)
	}
	if m.Version != markVersion {
		return nil, fmt.Errorf("unknown mark version %d (this stillpoint reads %d)", m.Version, markVersion)
	}
	m.ID = id
	return &m, nil
}

// readMarks lists and reads gc/. A mark gone between the listing and the
// read was replaced (a completed mark is written before the one it
// completes is removed) or swept: the folder is listed again.
func (r *Repository) readMarks(ctx context.Context) ([]*Mark, []*MarkLoadError, error) {
	var (
		marks []*Mark
		bad   []*MarkLoadError
		done  = map[string]bool{}
	)
	for round := 0; ; round++ {
		var names []string
		if err := r.be.List(ctx, backend.Marks, func(fi backend.FileInfo) error {
			if !done[fi.Name] {
				names = append(names, fi.Name)
			}
			return nil
		}); err != nil {
			return nil, nil, fmt.Errorf("list prune marks: %w", err)
		}
		gone := false
		for _, n := range names {
			done[n] = true
			m, err := r.loadMark(ctx, n)
			switch {
			case err == nil:
				marks = append(marks, m)
			case backend.IsNotFound(err):
				gone = true
			default:
				bad = append(bad, &MarkLoadError{Name: n, Err: err})
			}
		}
		if !gone || round == 10 {
			return marks, bad, ctx.Err()
		}
	}
}

// loadMarks reads the marks into the repository and tells the index which
// packs they name. Call it before loading the index.
func (r *Repository) loadMarks(ctx context.Context) error {
	marks, bad, err := r.readMarks(ctx)
	if err != nil {
		return err
	}
	r.marks, r.markProblems = marks, bad
	r.index.distrust = len(bad) > 0
	for _, m := range marks {
		r.index.setMarked(m.Packs)
	}
	return nil
}

// reloadView reads the marks and then every index file afresh.
func (r *Repository) reloadView(ctx context.Context) ([]*IndexLoadError, error) {
	r.index = NewIndex()
	if err := r.loadMarks(ctx); err != nil {
		return nil, err
	}
	return r.LoadIndex(ctx)
}

// refreshView is called once a lock is durable: from then on, a mark a
// prune writes is either seen here or waits for this lock (docs/format.md,
// Prune). It reads the marks, then lists the index once: it loads only the
// new index files when no pack was marked and no index file removed since
// the index was loaded, else all of them. A repository opened with
// ViewAtLock reads its view here for the first time.
func (r *Repository) refreshView(ctx context.Context) error {
	if r.viewPending {
		bad, err := r.reloadView(ctx)
		if err != nil {
			return err
		}
		r.viewPending = false
		r.indexProblems = bad
		for _, p := range bad {
			if r.onIndexProblem != nil {
				r.onIndexProblem(p)
				continue
			}
			r.note(p.Error() + "; the data it lists is treated as missing (run `stillpoint check`)")
		}
		return nil
	}
	marks, bad, err := r.readMarks(ctx)
	if err != nil {
		return err
	}
	full := len(bad) > 0 && !r.index.distrust
	for _, m := range marks {
		for _, p := range m.Packs {
			if !r.index.IsMarked(p) {
				full = true
			}
		}
	}
	listing, err := r.listIndex(ctx)
	if err != nil {
		return err
	}
	if !full {
		listed := make(map[string]bool, len(listing))
		for _, fi := range listing {
			listed[fi.Name] = true
		}
		for _, n := range r.index.fileNames() {
			if !listed[n] {
				full = true // a prune replaced it
				break
			}
		}
	}
	if full {
		r.index = NewIndex()
		r.indexProblems = nil
	}
	r.marks, r.markProblems = marks, bad
	r.index.distrust = r.index.distrust || len(bad) > 0
	for _, m := range marks {
		r.index.setMarked(m.Packs)
	}
	more, err := r.loadIndex(ctx, listing, true)
	r.indexProblems = append(r.indexProblems, more...)
	return err
}

// holderKey identifies a lock holder across the lock's rewrites: its
// session, or for a lock written without one, its host and pid.
func holderKey(session, host string, pid int) string {
	if session != "" {
		return session
	}
	return fmt.Sprintf("%s/%d", host, pid)
}

// liveHolders lists the holders of the locks that exist and are not stale,
// other than own.
func liveHolders(ctx context.Context, be backend.Backend, own string) (map[string]*LockInfo, error) {
	locks, err := ListLocks(ctx, be)
	if err != nil {
		return nil, fmt.Errorf("read locks: %w", err)
	}
	out := map[string]*LockInfo{}
	for _, l := range locks {
		k := holderKey(l.Session, l.Host, l.PID)
		if k == own || l.Stale() {
			continue
		}
		out[k] = l
	}
	return out, nil
}

func markLocks(holders map[string]*LockInfo) []MarkLock {
	out := make([]MarkLock, 0, len(holders))
	for k, l := range holders {
		out = append(out, MarkLock{Session: k, Host: l.Host, PID: l.PID, Command: l.Command, Time: l.Time})
	}
	return out
}

// waitingFor returns the holders m still waits for.
func (m *Mark) waitingFor(holders map[string]*LockInfo) []MarkLock {
	var out []MarkLock
	for _, l := range m.Locks {
		if _, ok := holders[l.Session]; ok {
			out = append(out, l)
		}
	}
	return out
}

// writeCompleteMark writes the mark with the locks listed now (after the
// packs list was durable) and removes the incomplete one. It returns the
// complete mark.
func (r *Repository) writeCompleteMark(ctx context.Context, first *Mark, own string) (*Mark, error) {
	holders, err := liveHolders(ctx, r.be, own)
	if err != nil {
		return nil, err
	}
	id := first.ID
	m := &Mark{Time: first.Time, Host: first.Host, Packs: first.Packs, Bytes: first.Bytes,
		LocksListed: true, Locks: markLocks(holders), Completes: &id}
	if err := r.saveMark(ctx, m); err != nil {
		return nil, err
	}
	if err := r.be.Remove(ctx, backend.Handle{Kind: backend.Marks, Name: first.ID.String()}); err != nil {
		return nil, fmt.Errorf("remove gc/%s: %w", first.ID.Short(), err)
	}
	return m, nil
}

var errNoPacks = errors.New("nothing to mark")

// writeMark writes a mark for packs: first the list, then, once it is
// durable, the locks of that moment.
func (r *Repository) writeMark(ctx context.Context, packs []ID, bytes int64, own string) (*Mark, error) {
	if len(packs) == 0 {
		return nil, errNoPacks
	}
	host, _ := os.Hostname()
	first := &Mark{Time: time.Now().UTC(), Host: host, Packs: packs, Bytes: bytes}
	if err := r.saveMark(ctx, first); err != nil {
		return nil, err
	}
	pruneHook("marked")
	return r.writeCompleteMark(ctx, first, own)
}
