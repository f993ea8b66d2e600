package snapshot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
	"github.com/stillpoint-backup/stillpoint/internal/view"
	"github.com/stillpoint-backup/stillpoint/internal/vss"
)

// VSS snaps Windows volumes with Volume Shadow Copies: one snapshot set
// for every volume of the run (each source's volume and the volumes
// mounted in folders below a source), made by package vss's requester,
// read under the original paths, released (BackupComplete) at the end.
type VSS struct {
	// Options tune the requester: writers, timeouts, retries, provider.
	Options vss.Options
	// Factory makes the backup components; nil is the system's (VssApi.dll).
	Factory vss.Factory
	// Volumes answers volume questions; nil is the system's.
	Volumes Volumes
	// Probe tells whether VSS can work in this process at all; nil is
	// the system's check (elevation, WOW64, VssApi.dll answering).
	Probe func() error
	// Excluded tells whether a folder is excluded from the backup: a
	// volume mounted there is not added to the set.
	Excluded func(osPath string) bool

	probeOnce sync.Once
	probeErr  error
}

// Volumes resolves paths to Windows volumes.
type Volumes interface {
	// VolumeOf returns the root of the volume holding p, with its
	// trailing backslash: `C:\`, or a mounted folder `C:\data\disk2\`.
	VolumeOf(p string) (string, error)
	// MountsBelow returns the folders below dir where other volumes are
	// mounted, each with its trailing backslash.
	MountsBelow(dir string) ([]string, error)
	// Unsupported says why VSS cannot snap the volume (a network drive,
	// a CD), or "" when it can.
	Unsupported(volume string) string
}

// Name implements Provider.
func (*VSS) Name() string { return "vss" }

func (v *VSS) volumes() Volumes {
	if v.Volumes != nil {
		return v.Volumes
	}
	return systemVolumes{}
}

func (v *VSS) factory() vss.Factory {
	if v.Factory != nil {
		return v.Factory
	}
	return systemVSSFactory()
}

func (v *VSS) probe() error {
	v.probeOnce.Do(func() {
		if v.Probe != nil {
			v.probeErr = v.Probe()
		} else {
			v.probeErr = systemVSSProbe()
		}
	})
	return v.probeErr
}

// isShare tells whether p is a UNC path (\\server\share, \\?\UNC\...).
func isShare(p string) bool {
	if strings.HasPrefix(p, `\\?\`) || strings.HasPrefix(p, `\\.\`) {
		return len(p) >= 8 && strings.EqualFold(p[4:8], `UNC\`)
	}
	return strings.HasPrefix(p, `\\`) || strings.HasPrefix(p, "//")
}

const shareReason = "VSS does not snap network shares; read live"

// Detect implements Provider. It fits a local volume when this process
// can make shadow copies; policy errors say why not before anything is
// written.
func (v *VSS) Detect(path string) (Fit, error) {
	if isShare(path) {
		return Fit{Provider: "vss", Reason: shareReason}, nil
	}
	vol, err := v.volumes().VolumeOf(path)
	if err != nil {
		return Fit{}, fmt.Errorf("vss: the volume of %s: %w", path, err)
	}
	if why := v.volumes().Unsupported(vol); why != "" {
		return Fit{Provider: "vss", Reason: "volume " + vol + ": " + why}, nil
	}
	if err := v.probe(); err != nil {
		return Fit{Provider: "vss", Reason: "volume " + vol + ": " + err.Error()}, nil
	}
	return Fit{Provider: "vss", OK: true, Consistency: Application,
		Reason: "shadow copy of volume " + vol + " in one set with the run's other volumes (application-consistent where the writers agree, else crash)"}, nil
}

// Create implements Provider; VSS snaps every volume of a run in one set,
// so Plan.Create calls CreateSet instead.
func (v *VSS) Create(ctx context.Context, sources []string, label Label) (Snapshot, error) {
	return v.CreateSet(ctx, sources, label)
}

// CreateSet implements SetCreator.
func (v *VSS) CreateSet(ctx context.Context, sources []string, _ Label) (Snapshot, error) {
	vols := v.volumes()
	var volumes []string
	addVolume := func(vol string) {
		for _, have := range volumes {
			if strings.EqualFold(have, vol) {
				return
			}
		}
		volumes = append(volumes, vol)
	}
	type mapping struct{ prefix, volume string }
	var maps []mapping
	for _, src := range sources {
		if isShare(src) {
			return nil, fmt.Errorf("%s: %s", src, shareReason)
		}
		vol, err := vols.VolumeOf(src)
		if err != nil {
			return nil, fmt.Errorf("vss: the volume of %s: %w", src, err)
		}
		addVolume(vol)
		maps = append(maps, mapping{src, vol})
		mounts, err := vols.MountsBelow(src)
		if err != nil {
			return nil, fmt.Errorf("vss: the volumes mounted below %s: %w", src, err)
		}
		for _, m := range mounts {
			if vols.Unsupported(m) != "" {
				continue // read live, as the walk finds it
			}
			if v.Excluded != nil && v.Excluded(strings.TrimSuffix(m, `\`)) {
				continue
			}
			addVolume(m)
			maps = append(maps, mapping{strings.TrimSuffix(m, `\`), m})
		}
	}
	set, err := vss.NewRequester(v.factory(), v.Options).Create(ctx, volumes)
	if err != nil {
		return nil, err
	}
	s := newVSSSnapshot(set, sources)
	var routes []route
	live := &view.Live{}
	for _, m := range maps {
		dev, _ := set.Device(m.volume)
		// files keep the live volume's device number, should the platform
		// report one, so the next run still finds them unchanged
		var liveDev uint64
		if st, err := live.Lstat(m.prefix); err == nil {
			liveDev = st.Dev
		}
		// a route's files are as consistent as the writers covering it
		// left them (a mounted folder below a source may be spared)
		c := Application
		if lowered(s.failed, m.prefix) {
			c = Crash
		}
		routes = append(routes, route{m.prefix, &stamped{View: &shadowView{rules: pathmap.Native, volume: m.volume, device: dev, inner: live}, dev: liveDev, c: c}})
	}
	s.view = newRouter(routes, nil)
	s.describe(volumes)
	return s, nil
}

type vssSnapshot struct {
	set     *vss.Set
	sources []string
	// failed are the writers that lower what they cover (failed before
	// the shadow copies were made, not excluded); byWriter has, by writer
	// instance and class, the sources each of them lowered.
	failed          []vss.Writer
	byWriter        map[[2]vss.GUID][]string
	consistency     map[string]Consistency // by source
	view            view.View
	notes, warnings []string
}

// newVSSSnapshot works out which sources the set's failed writers lower:
// those that contain a path of a failed writer's files or lie inside one
// (vss.Writer.Covers); a writer whose files cannot be known lowers every
// source.
func newVSSSnapshot(set *vss.Set, sources []string) *vssSnapshot {
	s := &vssSnapshot{set: set, sources: append([]string(nil), sources...), failed: set.FailedWriters(),
		byWriter: map[[2]vss.GUID][]string{}, consistency: map[string]Consistency{}}
	for _, src := range s.sources {
		s.consistency[src] = Application
		for _, w := range s.failed {
			if w.Covers(src) {
				s.consistency[src] = Crash
				k := [2]vss.GUID{w.Instance, w.Class}
				s.byWriter[k] = append(s.byWriter[k], src)
			}
		}
	}
	return s
}

// lowered tells whether a failed writer covers path.
func lowered(failed []vss.Writer, path string) bool {
	for _, w := range failed {
		if w.Covers(path) {
			return true
		}
	}
	return false
}

func (s *vssSnapshot) describe(volumes []string) {
	ws := s.set.Writers()
	s.notes = append(s.notes, s.set.Notes...)
	s.notes = append(s.notes, fmt.Sprintf("vss: snapshot set %s of %s, %d writer(s) checked", s.set.ID, strings.Join(volumes, ", "), len(ws)))
	for _, w := range s.failed {
		c, _ := w.Failed()
		srcs := s.byWriter[[2]vss.GUID{w.Instance, w.Class}]
		what := "the files of " + strings.Join(srcs, ", ") + " are crash-consistent, not application-consistent"
		switch {
		case len(srcs) == 0:
			what = "no source holds its files (" + filesSummary(w.Files) + "), so none is lowered"
		case !w.FilesKnown || len(w.Files) == 0:
			what += " (its metadata names no files that can be located, so it counts for every source)"
		}
		s.warnings = append(s.warnings, fmt.Sprintf("VSS writer %q (%s) failed at %s: %s, %s (%s); %s",
			w.Name, w.Class, c.Phase, c.State, c.Failure, c.Failure.Advice(), what))
	}
}

// filesSummary names the first paths of a writer's files.
func filesSummary(files []vss.FileDesc) string {
	var paths []string
	for _, f := range files {
		if !slices.ContainsFunc(paths, func(p string) bool { return strings.EqualFold(p, f.Path) }) {
			paths = append(paths, f.Path)
		}
	}
	if len(paths) > 3 {
		return strings.Join(paths[:3], ", ") + fmt.Sprintf(" and %d more", len(paths)-3)
	}
	return strings.Join(paths, ", ")
}

func (s *vssSnapshot) Provider() string { return "vss" }

// Consistency is the weakest of its sources'.
func (s *vssSnapshot) Consistency() Consistency {
	levels := []Consistency{Application}
	for _, c := range s.consistency {
		levels = append(levels, c)
	}
	return Weakest(levels...)
}

// ConsistencyOf is the consistency of one of its sources: crash when a
// failed writer covers it, else application.
func (s *vssSnapshot) ConsistencyOf(source string) Consistency {
	if c, ok := s.consistency[source]; ok {
		return c
	}
	return s.Consistency()
}

func (s *vssSnapshot) Sources() []string { return s.sources }
func (s *vssSnapshot) View() view.View   { return s.view }
func (s *vssSnapshot) Notes() []string   { return s.notes }

// Warnings are the failed writers, for the run's warnings.
func (s *vssSnapshot) Warnings() []string { return s.warnings }

// Writers are the writers' results, for the report and the manifest.
func (s *vssSnapshot) Writers() []WriterResult {
	var out []WriterResult
	for _, w := range s.set.Writers() {
		r := WriterResult{Provider: "vss", Name: w.Name, ID: w.Class.String(), Instance: w.Instance.String(),
			State: w.State().String(), Required: w.Required, Excluded: w.Excluded}
		if w.LowersConsistency() {
			r.Sources = append([]string(nil), s.byWriter[[2]vss.GUID{w.Instance, w.Class}]...)
		}
		if c, ok := w.Failed(); ok {
			r.Failed, r.FailedAt, r.State = true, c.Phase, c.State.String()
			if c.Failure != 0 {
				r.Failure = c.Failure.Name()
			}
		}
		out = append(out, r)
	}
	return out
}

// Release completes the backup (BackupComplete, writer status) and
// releases the components object, which deletes the shadow copies.
func (s *vssSnapshot) Release() error { return s.set.Complete(context.Background()) }

// WriterResult is what one application writer (a VSS writer) did for a
// snapshot: for the summary, the JSON report and the manifest.
type WriterResult struct {
	Provider string `json:"provider"`
	Name     string `json:"name"`
	ID       string `json:"id"`
	Instance string `json:"instance,omitempty"`
	// State is the last state seen (VSS_WS_STABLE), or the failed state.
	State    string `json:"state"`
	Failed   bool   `json:"failed,omitempty"`
	FailedAt string `json:"failed_at,omitempty"` // the phase after which it was seen failed
	Failure  string `json:"failure,omitempty"`   // its HRESULT's name
	Required bool   `json:"required,omitempty"`
	Excluded bool   `json:"excluded,omitempty"`
	// Sources are the sources its failure lowered (crash-consistent, not
	// application-consistent): those holding its files or inside them,
	// every source when its files cannot be known; none when it did not
	// fail before the snapshot, or was excluded.
	Sources []string `json:"sources,omitempty"`
}

// Writers lists the writer results of the set's snapshots (VSS), with
// the states after BackupComplete once the set is released.
func (s *Set) Writers() []WriterResult {
	var out []WriterResult
	for _, sn := range s.snaps {
		if w, ok := sn.(interface{ Writers() []WriterResult }); ok {
			out = append(out, w.Writers()...)
		}
	}
	return out
}

// shadowView reads original paths of one volume from its shadow copy:
// C:\data\x (or its repository path /C/data/x) is read as
// \\?\GLOBALROOT\Device\HarddiskVolumeShadowCopyN\data\x, and the volume's
// root with the trailing backslash the device needs to open as a directory.
type shadowView struct {
	rules  pathmap.Rules
	volume string // `C:\` or `C:\data\disk2\`
	device string
	inner  view.View
}

// path maps an original path to its path in the shadow copy; a path
// outside the volume is returned as it is.
func (v *shadowView) path(p string) string {
	op := p
	if !v.rules.IsAbs(p) {
		if o, ok := v.rules.ToOS(p); ok {
			op = o
		}
	}
	vol := strings.TrimSuffix(v.volume, `\`)
	switch {
	case strings.EqualFold(op, vol) || strings.EqualFold(op, v.volume):
		return v.device + `\`
	case len(op) > len(vol) && strings.EqualFold(op[:len(vol)], vol) && op[len(vol)] == '\\':
		return v.device + op[len(vol):]
	}
	return p
}

func (v *shadowView) Lstat(p string) (*view.Stat, error)    { return v.inner.Lstat(v.path(p)) }
func (v *shadowView) ReadDir(p string) ([]string, error)    { return v.inner.ReadDir(v.path(p)) }
func (v *shadowView) Readlink(p string) (string, error)     { return v.inner.Readlink(v.path(p)) }
func (v *shadowView) Xattrs(p string) ([]view.Xattr, error) { return v.inner.Xattrs(v.path(p)) }
func (v *shadowView) Open(p string) (view.File, error)      { return v.inner.Open(v.path(p)) }

// WindowsMeta implements view.WindowsMetaView: the security descriptor and
// streams as the shadow copy holds them.
func (v *shadowView) WindowsMeta(p string) (*view.WindowsMeta, error) {
	if wv, ok := v.inner.(view.WindowsMetaView); ok {
		return wv.WindowsMeta(v.path(p))
	}
	return nil, nil
}

// OpenStream implements view.WindowsMetaView.
func (v *shadowView) OpenStream(p, name string) (view.File, error) {
	if wv, ok := v.inner.(view.WindowsMetaView); ok {
		return wv.OpenStream(v.path(p), name)
	}
	return nil, errors.New("this view has no alternate data streams")
}

// vssReport asks a requester what vssadmin list writers, list shadows
// and list providers would show, and which of paths each provider fits.
func vssReport(r *vss.Requester, vols Volumes, paths []string) *VSSReport {
	rep := &VSSReport{Writers: []VSSWriterInfo{}, Shadows: []VSSShadowInfo{}, Providers: []VSSProviderInfo{}}
	ws, err := r.ListWriters(context.Background())
	if err != nil {
		rep.Error = err.Error()
		return rep
	}
	for _, w := range ws {
		wi := VSSWriterInfo{Name: w.Name, ID: w.Class.String(), Instance: w.Instance.String(), State: w.State.String()}
		if w.Failure != 0 {
			wi.LastError = w.Failure.Name()
		}
		rep.Writers = append(rep.Writers, wi)
	}
	shadows, err := r.ListShadows()
	if err != nil {
		rep.Error = err.Error()
		return rep
	}
	for _, s := range shadows {
		rep.Shadows = append(rep.Shadows, VSSShadowInfo{ID: s.ID.String(), SetID: s.SetID.String(), Device: s.DeviceObject,
			OriginalVolume: s.OriginalVolume, Created: s.Created})
	}
	rep.Providers, err = providerFits(r, vols, paths)
	if err != nil {
		rep.ProvidersError = err.Error()
	}
	return rep
}

// providerFits lists the providers and, for each, which of paths it can
// snap: a path's volume is asked about (IsVolumeSupported) unless VSS can
// snap no such volume at all (a share, a CD), which then fits no provider.
func providerFits(r *vss.Requester, vols Volumes, paths []string) ([]VSSProviderInfo, error) {
	volumeOf := map[string]string{} // path → volume
	never := map[string]string{}    // path → why no provider fits
	var volumes []string
	for _, p := range paths {
		if isShare(p) {
			never[p] = shareReason
			continue
		}
		vol, err := vols.VolumeOf(p)
		if err != nil {
			never[p] = "its volume: " + err.Error()
			continue
		}
		volumeOf[p] = vol
		if why := vols.Unsupported(vol); why != "" {
			never[p] = why
			continue
		}
		if !slices.ContainsFunc(volumes, func(v string) bool { return strings.EqualFold(v, vol) }) {
			volumes = append(volumes, vol)
		}
	}
	ps, err := r.ListProviders(volumes)
	if err != nil {
		return []VSSProviderInfo{}, err
	}
	out := []VSSProviderInfo{}
	for _, p := range ps {
		info := VSSProviderInfo{Name: p.Name, ID: p.ID.String(), Type: p.Type.String(), Version: p.Version, Fits: []string{}}
		for _, path := range paths {
			vol := volumeOf[path]
			if why, ok := never[path]; ok {
				info.DoesNotFit = append(info.DoesNotFit, VSSNoFit{Path: path, Volume: vol, Reason: why})
				continue
			}
			i := slices.IndexFunc(p.Volumes, func(v vss.VolumeSupport) bool { return strings.EqualFold(v.Volume, vol) })
			switch {
			case i < 0:
				info.DoesNotFit = append(info.DoesNotFit, VSSNoFit{Path: path, Volume: vol, Reason: "VSS was not asked about its volume"})
			case p.Volumes[i].Error != "":
				info.DoesNotFit = append(info.DoesNotFit, VSSNoFit{Path: path, Volume: vol, Reason: p.Volumes[i].Error})
			case !p.Volumes[i].Supported:
				info.DoesNotFit = append(info.DoesNotFit, VSSNoFit{Path: path, Volume: vol, Reason: "this provider cannot snap volume " + vol})
			default:
				info.Fits = append(info.Fits, path)
			}
		}
		out = append(out, info)
	}
	return out, nil
}
