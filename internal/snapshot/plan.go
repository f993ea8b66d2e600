package snapshot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/stillpoint-backup/stillpoint/internal/vss"
)

// Source is one backup source and its snapshot policy.
type Source struct {
	Path   string `json:"path"`
	Policy Policy `json:"policy"`
}

// Options tune NewPlan and NewSet.
type Options struct {
	// RunID goes into every label (sanitized; empty gets a time-based id).
	RunID string
	// Providers in order of preference; nil means DefaultProviders().
	// The first provider that fits a source snaps it.
	Providers []Provider
	// KeepLeftovers stops Create from removing what killed runs left on
	// the filesystems it snaps.
	KeepLeftovers bool
	// VSS, when set, tunes every VSS provider of the plan (the job's
	// vss: keys); nil keeps vss.DefaultOptions.
	VSS *vss.Options
	// Excluded tells whether an OS path is excluded from the backup, so
	// that a volume mounted there is not snapped (VSS); nil excludes none.
	Excluded func(osPath string) bool
}

// SourcePlan is the decision made for one source.
type SourcePlan struct {
	Path        string      `json:"path"`
	Policy      Policy      `json:"policy"`
	Provider    string      `json:"provider"`
	Consistency Consistency `json:"consistency"`
	FS          FSInfo      `json:"filesystem"`
	Fits        []Fit       `json:"fits,omitempty"`
	Note        string      `json:"note,omitempty"`
}

// Plan is what NewSet will create; making it touches nothing on disk, so
// policy errors come before anything exists (and before any hook runs).
type Plan struct {
	Sources  []SourcePlan `json:"sources"`
	Notes    []string     `json:"notes,omitempty"`
	Warnings []string     `json:"warnings,omitempty"`

	opts      Options
	providers map[string]Provider

	leftoversDone    bool
	removed          []Leftover
	leftoverWarnings []string
}

// HoldMounts lists the mount points of the filesystems the plan snaps as a
// whole but only crash-consistently (btrfs): holding their writers while
// the set is created makes those snapshots one point in time.
func (p *Plan) HoldMounts() []string {
	var out []string
	for _, g := range p.groups() {
		if g.consistency == Crash && !slices.Contains(out, g.fs.Mountpoint) {
			out = append(out, g.fs.Mountpoint)
		}
	}
	return out
}

// HoldSources lists the sources snapped by the filesystems of HoldMounts.
func (p *Plan) HoldSources() []string {
	var out []string
	for _, g := range p.groups() {
		if g.consistency == Crash {
			out = append(out, g.sources...)
		}
	}
	return out
}

// Mounts lists the mount points of every filesystem the plan snaps.
func (p *Plan) Mounts() []string {
	var out []string
	for _, g := range p.groups() {
		if g.provider.Name() != "none" && !slices.Contains(out, g.fs.Mountpoint) {
			out = append(out, g.fs.Mountpoint)
		}
	}
	return out
}

// RequiredError is returned when a source with policy required cannot be
// snapped.
type RequiredError struct {
	Path, FSType, Reasons string
}

func (e *RequiredError) Error() string {
	return fmt.Sprintf("%s is on %s: no snapshot provider fits (%s); use --snapshot on to read live",
		e.Path, e.FSType, e.Reasons)
}

// NewPlan decides a provider for each source. It fails, naming every
// offending source, when a required source cannot be snapped.
func NewPlan(sources []Source, opts Options) (*Plan, error) {
	if opts.Providers == nil {
		opts.Providers = DefaultProviders()
	}
	p := &Plan{opts: opts, providers: map[string]Provider{"none": None{}}}
	for _, pr := range opts.Providers {
		if v, ok := pr.(*VSS); ok {
			if opts.VSS != nil {
				v.Options = *opts.VSS
			}
			if opts.Excluded != nil {
				v.Excluded = opts.Excluded
			}
		}
		p.providers[pr.Name()] = pr
	}
	var errs []error
	for _, s := range sources {
		sp, err := p.decide(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.Sources = append(p.Sources, sp)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

func (p *Plan) decide(s Source) (SourcePlan, error) {
	path, err := absClean(s.Path)
	if err != nil {
		return SourcePlan{}, err
	}
	pol := s.Policy
	if pol == "" {
		pol = Auto
	}
	if _, err := ParsePolicy(string(pol)); err != nil {
		return SourcePlan{}, fmt.Errorf("source %s: %w", path, err)
	}
	sp := SourcePlan{Path: path, Policy: pol, Provider: "none", Consistency: Live}
	if pol == Off {
		sp.Note = "snapshot policy off: reading live"
		return sp, nil
	}
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		// nothing to snap: the run records the source as missing
		sp.Note = path + " does not exist"
		return sp, nil
	}
	fs, fsErr := filesystemOf(path)
	sp.FS = fs
	var reasons []string
	if fsErr != nil {
		reasons = append(reasons, fsErr.Error())
	} else {
		for _, pr := range p.opts.Providers {
			fit, err := pr.Detect(path)
			if err != nil {
				fit = Fit{Provider: pr.Name(), Reason: err.Error()}
			}
			fit.Provider = pr.Name()
			sp.Fits = append(sp.Fits, fit)
			if fit.OK && fit.Consistency != Live {
				sp.Provider, sp.Consistency = pr.Name(), fit.Consistency
				return sp, nil
			}
			if !fit.OK {
				reasons = append(reasons, pr.Name()+": "+fit.Reason)
			}
		}
	}
	if len(reasons) == 0 {
		reasons = append(reasons, noProviderYet())
	}
	why := strings.Join(reasons, "; ")
	fsType := fs.FSType
	if fsType == "" {
		fsType = "an unknown filesystem"
	}
	switch pol {
	case Required:
		return sp, &RequiredError{Path: path, FSType: fsType, Reasons: why}
	case On:
		sp.Note = fmt.Sprintf("%s is on %s: no snapshot provider fits (%s); reading live", path, fsType, why)
		p.Warnings = append(p.Warnings, sp.Note)
	default:
		sp.Note = fmt.Sprintf("%s is on %s: no snapshot provider fits (%s); reading live", path, fsType, why)
		p.Notes = append(p.Notes, sp.Note)
	}
	return sp, nil
}

// group is the sources one provider snaps in one filesystem.
type group struct {
	provider    Provider
	fs          FSInfo
	consistency Consistency
	sources     []string
}

// groups keeps the order of first appearance, so creation order is stable.
func (p *Plan) groups() []*group {
	var out []*group
	byKey := map[string]*group{}
	for _, s := range p.Sources {
		key := s.Provider
		if _, oneSet := p.providers[s.Provider].(SetCreator); !oneSet && s.Provider != "none" {
			key += "\x00" + s.FS.Mountpoint + "\x00" + s.FS.DevNum
		}
		g := byKey[key]
		if g == nil {
			g = &group{provider: p.providers[s.Provider], fs: s.FS, consistency: s.Consistency}
			byKey[key] = g
			out = append(out, g)
		}
		g.sources = append(g.sources, s.Path)
	}
	return out
}
