package repo

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
)

// kindDrill is the file kind of drill results (drills/), bound into their key.
const kindDrill byte = 'D'

const drillVersion = 1

// DrillResult is what one restore drill of a snapshot found
// (docs/format.md, Drill results). It is written once, after the drill.
type DrillResult struct {
	ID      ID  `json:"-"`
	Version int `json:"version"`
	// Snapshot is the id the snapshot had when it was drilled; Origin its
	// first id (Snapshot.Origin), which a tag rewrite keeps, so the result
	// stays with the snapshot when its manifest is written again.
	Snapshot     ID        `json:"snapshot"`
	Origin       ID        `json:"origin"`
	Time         time.Time `json:"time"`
	Host         string    `json:"host"`
	Level        string    `json:"level"` // check, read, restore
	OK           bool      `json:"ok"`
	DurationSecs float64   `json:"duration_secs"`
	// PacksRead is what the check level read back, and ReadSubset which
	// bucket of the rotation ("3/10").
	ReadSubset string `json:"read_subset,omitempty"`
	PacksRead  int    `json:"packs_read,omitempty"`
	// Files and Bytes are what the read level restored and verified.
	Files int64 `json:"files,omitempty"`
	Bytes int64 `json:"bytes,omitempty"`
	// Steps are the parts of the drill in the order they ran: "check",
	// "restore", then one per verifier.
	Steps []DrillStep `json:"steps"`
}

// DrillStep is one part of a drill: the repository check, the restore,
// or one verifier.
type DrillStep struct {
	Name         string  `json:"name"`           // check, restore, sqlite, postgres, mysql, git, command
	Path         string  `json:"path,omitempty"` // the original path it verified
	Restored     string  `json:"restored,omitempty"`
	OK           bool    `json:"ok"`
	DurationSecs float64 `json:"duration_secs"`
	// Message is the verifier's own word on a failure (or a note on success).
	Message string `json:"message,omitempty"`
	// Problems are the files or objects that failed, when there are several.
	Problems []string `json:"problems,omitempty"`
}

// Verifiers names the verifiers a drill ran, each once, in order.
func (d *DrillResult) Verifiers() []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range d.Steps {
		if s.Name == "check" || s.Name == "restore" || seen[s.Name] {
			continue
		}
		seen[s.Name] = true
		out = append(out, s.Name)
	}
	return out
}

// Origin is the first id a snapshot had: Original when its manifest was
// written again (tag), else its id.
func (s *Snapshot) Origin() ID {
	if s.Original != nil {
		return *s.Original
	}
	return s.ID
}

// DrillLoadError names a drill result that could not be read.
type DrillLoadError struct {
	Name string
	Err  error
}

func (e *DrillLoadError) Error() string { return fmt.Sprintf("drills/%s: %v", e.Name, e.Err) }

// SaveDrill seals and writes d under a new random name.
func (r *Repository) SaveDrill(ctx context.Context, d *DrillResult) error {
	d.Version = drillVersion
	data, err := json.Marshal(d)
	if err != nil {
		return err
	}
	id := NewRandomID()
	if err := r.be.Save(ctx, backend.Handle{Kind: backend.Drills, Name: id.String()}, r.key.sealFile(kindDrill, id, data)); err != nil {
		return fmt.Errorf("write drill result: %w", err)
	}
	d.ID = id
	return nil
}

func (r *Repository) loadDrill(ctx context.Context, name string) (*DrillResult, error) {
	id, err := ParseID(name)
	if err != nil {
		return nil, err
	}
	data, err := backend.ReadAll(ctx, r.be, backend.Handle{Kind: backend.Drills, Name: name})
	if err != nil {
		return nil, err
	}
	plain, err := r.key.openFile(kindDrill, id, data)
	if err != nil {
		return nil, err
	}
	var d DrillResult
	if err := json.Unmarshal(plain, &d); err != nil {
		return nil, fmt.Errorf("damaged: %w", err)
	}
	if d.Version != drillVersion {
		return nil, fmt.Errorf("unknown drill result version %d (this stillpoint reads %d)", d.Version, drillVersion)
	}
	d.ID = id
	return &d, nil
}

// Drills returns every readable drill result, oldest first, and those that
// could not be read. A result removed between the listing and the read
// (a forget) is left out.
func (r *Repository) Drills(ctx context.Context) ([]*DrillResult, []*DrillLoadError, error) {
	var names []string
	if err := r.be.List(ctx, backend.Drills, func(fi backend.FileInfo) error {
		names = append(names, fi.Name)
		return nil
	}); err != nil {
		return nil, nil, fmt.Errorf("list drill results: %w", err)
	}
	var out []*DrillResult
	var bad []*DrillLoadError
	for _, n := range names {
		d, err := r.loadDrill(ctx, n)
		switch {
		case err == nil:
			out = append(out, d)
		case backend.IsNotFound(err):
		default:
			bad = append(bad, &DrillLoadError{Name: n, Err: err})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Time.Equal(out[j].Time) {
			return out[i].ID.String() < out[j].ID.String()
		}
		return out[i].Time.Before(out[j].Time)
	})
	return out, bad, nil
}

// LatestDrills maps each snapshot's id to its newest drill result; a
// snapshot never drilled is missing. Results of snapshots not in snaps
// (forgotten) are ignored.
func LatestDrills(snaps []*Snapshot, drills []*DrillResult) map[ID]*DrillResult {
	byOrigin := map[ID]*DrillResult{}
	for _, d := range drills { // oldest first: the newest wins
		byOrigin[d.Origin] = d
	}
	out := map[ID]*DrillResult{}
	for _, s := range snaps {
		if d, ok := byOrigin[s.Origin()]; ok {
			out[s.ID] = d
		}
	}
	return out
}

// removeOrphanDrills removes the drill results whose snapshot is gone. It
// lists drills/ first, so a repository without drills reads no manifest.
func (r *Repository) removeOrphanDrills(ctx context.Context) error {
	n := 0
	if err := r.be.List(ctx, backend.Drills, func(backend.FileInfo) error {
		n++
		return nil
	}); err != nil || n == 0 {
		return err
	}
	// the manifests first: a drill result is written only after its
	// snapshot exists, so one listed below whose snapshot is not among
	// these belongs to a snapshot that was removed
	snaps, bad, err := r.Snapshots(ctx)
	if err != nil {
		return err
	}
	if len(bad) > 0 {
		return nil // a manifest we cannot read may be the one a result belongs to
	}
	origins := map[ID]bool{}
	for _, s := range snaps {
		origins[s.Origin()] = true
	}
	drills, _, err := r.Drills(ctx)
	if err != nil {
		return err
	}
	for _, d := range drills {
		if origins[d.Origin] {
			continue
		}
		if err := r.be.Remove(ctx, backend.Handle{Kind: backend.Drills, Name: d.ID.String()}); err != nil {
			return fmt.Errorf("remove drill result %s: %w", d.ID.Short(), err)
		}
	}
	return nil
}
