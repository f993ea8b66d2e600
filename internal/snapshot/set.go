package snapshot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/view"
)

// Set is one point in time across all sources of a run.
type Set struct {
	Label   Label        `json:"label"`
	Sources []SourcePlan `json:"sources"`
	// Window is how long creating all snapshots took: the span in which
	// the sources' points in time lie, and the freeze window for writers.
	Window   time.Duration `json:"window_ns"`
	Notes    []string      `json:"notes,omitempty"`
	Warnings []string      `json:"warnings,omitempty"`
	// Removed lists leftovers of killed runs that Create cleaned up.
	Removed []Leftover `json:"removed_leftovers,omitempty"`

	snaps  []Snapshot
	bySrc  map[string]Snapshot
	router *router

	mu       sync.Mutex
	released []bool
}

// NewSet plans and creates a snapshot set in one step. Callers that run
// hooks or freeze writers between planning and creating use NewPlan and
// Plan.Create.
func NewSet(ctx context.Context, sources []Source, opts Options) (*Set, error) {
	p, err := NewPlan(sources, opts)
	if err != nil {
		return nil, err
	}
	return p.Create(ctx)
}

// Create makes every snapshot of the plan, back to back. It is all or
// nothing: when one fails, those already made are released.
func (p *Plan) Create(ctx context.Context) (*Set, error) {
	pr, err := p.Prepare(ctx)
	if err != nil {
		return nil, err
	}
	return pr.Create(ctx)
}

// Prepared is a plan whose providers have done what can come before the
// point in time (see Preparer). Create takes the snapshots; Abort, when
// Create is never called, removes what was prepared.
type Prepared struct {
	set     *Set
	groups  []*group
	pending map[*group]Pending
	used    bool
}

// Prepare removes leftovers, labels the set and prepares every snapshot
// whose provider can be prepared. Callers that freeze writers or hold
// processes call it before the freeze and Prepared.Create inside it.
func (p *Plan) Prepare(ctx context.Context) (*Prepared, error) {
	s := &Set{
		Label:    NewLabel(p.opts.RunID),
		Sources:  append([]SourcePlan(nil), p.Sources...),
		Notes:    append([]string(nil), p.Notes...),
		Warnings: append([]string(nil), p.Warnings...),
		bySrc:    map[string]Snapshot{},
	}
	pr := &Prepared{set: s, groups: p.groups(), pending: map[*group]Pending{}}
	p.RemoveLeftovers()
	s.Removed = append(s.Removed, p.removed...)
	s.Warnings = append(s.Warnings, p.leftoverWarnings...)
	for _, g := range pr.groups {
		pp, ok := g.provider.(Preparer)
		if !ok {
			continue
		}
		if _, set := g.provider.(SetCreator); set {
			continue // a set-level failure reads live; Create decides
		}
		pe, err := pp.Prepare(ctx, g.sources, pr.label(g))
		if err != nil {
			return nil, errors.Join(fmt.Errorf("snapshot set: %s snapshot of %s failed: %w",
				g.provider.Name(), strings.Join(g.sources, ", "), err), pr.Abort())
		}
		pr.pending[g] = pe
	}
	return pr, nil
}

func (pr *Prepared) label(g *group) Label {
	l := pr.set.Label
	l.Provider, l.Sources = g.provider.Name(), g.sources
	return l
}

// Create makes every snapshot, back to back: the prepared ones are only
// taken now. It is all or nothing: when one fails, those already made are
// released, and those prepared are removed.
func (pr *Prepared) Create(ctx context.Context) (*Set, error) {
	if pr.used {
		return nil, errors.New("snapshot set: already created or aborted")
	}
	pr.used = true
	s := pr.set
	fail := func(err error) (*Set, error) {
		return nil, errors.Join(s.abort(err), pr.abortPending())
	}
	start := time.Now()
	for _, g := range pr.groups {
		if err := ctx.Err(); err != nil {
			return fail(fmt.Errorf("snapshot set: cancelled: %w", err))
		}
		if sc, ok := g.provider.(SetCreator); ok {
			if err := s.createSet(ctx, sc, g, pr.label(g)); err != nil {
				return fail(err)
			}
			continue
		}
		var snap Snapshot
		var err error
		if pe := pr.pending[g]; pe != nil {
			delete(pr.pending, g)
			snap, err = pe.Snap(ctx)
		} else {
			snap, err = g.provider.Create(ctx, g.sources, pr.label(g))
		}
		if err != nil {
			return fail(fmt.Errorf("snapshot set: %s snapshot of %s failed: %w",
				g.provider.Name(), strings.Join(g.sources, ", "), err))
		}
		s.add(snap, g.sources)
	}
	s.Window = time.Since(start)
	var routes []route
	for src, snap := range s.bySrc {
		routes = append(routes, route{src, snap.View()})
		s.Notes = append(s.Notes, snap.Notes()...)
	}
	s.router = newRouter(routes, nil)
	return s, nil
}

// Abort removes what Prepare made. After Create it does nothing.
func (pr *Prepared) Abort() error {
	if pr == nil || pr.used {
		return nil
	}
	pr.used = true
	return pr.abortPending()
}

func (pr *Prepared) abortPending() error {
	var errs []error
	for g, pe := range pr.pending {
		if err := pe.Abort(); err != nil {
			errs = append(errs, fmt.Errorf("removing the prepared %s snapshot: %w", g.provider.Name(), err))
		}
		delete(pr.pending, g)
	}
	return errors.Join(errs...)
}

// createSet makes a set-level snapshot of a group. When it fails, the
// group's sources with policy required fail the run, naming each volume
// and the reason; the others are read live, with a warning (on) or a note
// (auto). A snapshot weaker than planned (a VSS writer failed) lowers its
// sources' consistency.
func (s *Set) createSet(ctx context.Context, sc SetCreator, g *group, l Label) error {
	snap, err := sc.CreateSet(ctx, g.sources, l)
	if err == nil {
		s.add(snap, g.sources)
		if w, ok := snap.(interface{ Warnings() []string }); ok {
			s.Warnings = append(s.Warnings, w.Warnings()...)
		}
		for i := range s.Sources {
			if s.bySrc[s.Sources[i].Path] == snap {
				c := snap.Consistency()
				if pc, ok := snap.(interface{ ConsistencyOf(string) Consistency }); ok {
					c = pc.ConsistencyOf(s.Sources[i].Path) // a failed writer lowers only its own sources
				}
				s.Sources[i].Consistency = Weakest(s.Sources[i].Consistency, c)
			}
		}
		return nil
	}
	var errs []error
	for i := range s.Sources {
		sp := &s.Sources[i]
		if sp.Provider != g.provider.Name() {
			continue
		}
		if sp.Policy == Required {
			errs = append(errs, fmt.Errorf("%s (volume %s) has snapshot policy required, but the %s snapshot failed: %w",
				sp.Path, sp.FS.Mountpoint, g.provider.Name(), err))
			continue
		}
		sp.Provider, sp.Consistency = "none", Live
		sp.Note = fmt.Sprintf("%s: the %s snapshot failed (%v); reading live", sp.Path, g.provider.Name(), err)
		if sp.Policy == On {
			s.Warnings = append(s.Warnings, sp.Note)
		} else {
			s.Notes = append(s.Notes, sp.Note)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("snapshot set: %w", errors.Join(errs...))
	}
	snap, _ = None{}.Create(ctx, g.sources, l)
	s.add(snap, g.sources)
	return nil
}

func (s *Set) add(snap Snapshot, sources []string) {
	s.snaps = append(s.snaps, snap)
	s.released = append(s.released, false)
	for _, src := range sources {
		s.bySrc[src] = snap
	}
}

func (s *Set) abort(err error) error {
	if rerr := s.Release(); rerr != nil {
		return errors.Join(err, fmt.Errorf("releasing the snapshots already made: %w", rerr))
	}
	if n := len(s.snaps); n > 0 {
		return fmt.Errorf("%w (released the %d snapshot(s) already made)", err, n)
	}
	return err
}

// RemoveLeftovers removes what killed runs left on the filesystems the
// plan snaps (unless Options.KeepLeftovers). Create calls it; calling it
// first keeps the deletion of old snapshots out of the moment a hold
// stalls the writers. It runs once.
func (p *Plan) RemoveLeftovers() {
	if p.opts.KeepLeftovers || p.leftoversDone {
		return
	}
	p.leftoversDone = true
	var mps []string
	for _, g := range p.groups() {
		if g.provider.Name() != "none" {
			mps = append(mps, g.fs.Mountpoint)
		}
	}
	if len(mps) == 0 {
		return
	}
	found, err := FindLeftovers(mps)
	if err != nil {
		p.leftoverWarnings = append(p.leftoverWarnings, err.Error())
	}
	for _, lo := range found {
		if lo.InUse {
			continue
		}
		if err := Cleanup([]Leftover{lo}); err != nil {
			p.leftoverWarnings = append(p.leftoverWarnings, err.Error())
			continue
		}
		p.removed = append(p.removed, lo)
	}
}

// View serves every source under its original path from its snapshot;
// paths outside all sources are read live.
func (s *Set) View() view.View { return s.router }

// Snapshots returns the snapshots of the set.
func (s *Set) Snapshots() []Snapshot { return append([]Snapshot(nil), s.snaps...) }

// Consistency is the weakest consistency of any source.
func (s *Set) Consistency() Consistency {
	var levels []Consistency
	for _, sp := range s.Sources {
		levels = append(levels, sp.Consistency)
	}
	return Weakest(levels...)
}

// rank orders the levels, strongest highest. Crash ranks above File: it
// is one moment across files, which crash-safe applications need, though a
// file written during it may be torn.
var rank = map[Consistency]int{Application: 5, Volume: 4, Crash: 3, File: 2, Live: 1}

// Weakest is the weakest of levels (Live for none, or an unknown level).
func Weakest(levels ...Consistency) Consistency {
	if len(levels) == 0 {
		return Live
	}
	w := levels[0]
	for _, c := range levels[1:] {
		if rank[c] < rank[w] {
			w = c
		}
	}
	if rank[w] == 0 {
		return Live
	}
	return w
}

// Clone freezes path now if its source's snapshot can clone single files
// (reflink); for other snapshots it does nothing and returns nil.
func (s *Set) Clone(path string) error {
	best := ""
	for src := range s.bySrc {
		if within(path, src) && len(src) > len(best) {
			best = src
		}
	}
	if c, ok := s.bySrc[best].(Cloner); ok && best != "" {
		return c.Clone(path)
	}
	return nil
}

// Release releases every snapshot. It is idempotent and goes on after a
// failure; what failed is retried by the next call and reported joined.
func (s *Set) Release() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for i := len(s.snaps) - 1; i >= 0; i-- {
		if s.released[i] {
			continue
		}
		if err := s.snaps[i].Release(); err != nil {
			errs = append(errs, err)
			continue
		}
		s.released[i] = true
	}
	return errors.Join(errs...)
}

// Locations lists where the set's snapshots are on disk, for hooks.
func (s *Set) Locations() []string {
	var out []string
	for _, sn := range s.snaps {
		if l, ok := sn.(interface{ Location() string }); ok && l.Location() != "" {
			out = append(out, l.Location())
		}
	}
	return out
}
