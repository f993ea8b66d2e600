package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
)

// scanLabelled lists the labelled directories of runs in container (the
// apfs mount directories or the clonefile staging directories of a
// volume); a name that is not a label name is not ours.
func scanLabelled(container, kind, mp string, alive func(int, uint64) bool) []Leftover {
	ents, err := os.ReadDir(container)
	if err != nil {
		return nil
	}
	names := map[string]bool{}
	for _, e := range ents {
		n := strings.TrimSuffix(strings.TrimSuffix(e.Name(), ".tmp"), ".json")
		if _, _, ok := parseName(n); ok {
			names[n] = true
		}
	}
	var out []Leftover
	for n := range names {
		pid, created, _ := parseName(n)
		p := path.Join(container, n)
		al, err := readAPFSLabel(p + ".json")
		l := al.Label
		if err != nil || l.PID != pid {
			l = Label{PID: pid, Created: created} // label lost: trust the name
		}
		lo := Leftover{Path: p, Kind: kind, Mountpoint: mp, Label: l, InUse: alive(l.PID, l.PIDStart)}
		if lo.InUse {
			lo.Reason = fmt.Sprintf("process %d that made it still runs", l.PID)
		} else {
			lo.Reason = fmt.Sprintf("process %d that made it is gone", l.PID)
		}
		if kind == "apfs" {
			switch {
			case al.Date != "" && al.Owned:
				lo.Reason += "; Time Machine local snapshot " + al.Date
			case al.Date != "":
				lo.Reason += "; it read snapshot " + al.Date + ", which it did not make (kept)"
			default:
				lo.Reason += fmt.Sprintf("; killed before tmutil said the snapshot's date: a snapshot made about %s may be left (tmutil listlocalsnapshots %s; macOS thins them within a day)",
					l.Created.Local().Format("2006-01-02 15:04:05"), mp)
			}
		}
		out = append(out, lo)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// findAPFSLeftovers lists the apfs and clonefile leftovers on the volumes
// holding paths, or on every local volume when paths is empty.
func findAPFSLeftovers(sys APFSSystem, paths []string, cloneContainers func(FSInfo) []string) ([]Leftover, error) {
	var vols []FSInfo
	var errs []error
	if len(paths) == 0 {
		all, err := sys.Volumes()
		if err != nil {
			return nil, fmt.Errorf("listing the volumes: %w", err)
		}
		vols = all
	}
	for _, p := range paths {
		v, err := sys.VolumeOf(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("looking for leftovers of %s: %w", p, err))
			continue
		}
		vols = append(vols, v)
	}
	seen := map[string]bool{}
	var out []Leftover
	for _, v := range vols {
		if seen[v.Mountpoint] {
			continue
		}
		seen[v.Mountpoint] = true
		out = append(out, scanLabelled(path.Join(v.Mountpoint, SnapshotDir), "apfs", v.Mountpoint, sys.Alive)...)
		for _, c := range cloneContainers(v) {
			out = append(out, scanLabelled(c, "clonefile", v.Mountpoint, sys.Alive)...)
		}
	}
	return out, errors.Join(errs...)
}

// cleanupLeftovers removes stale leftovers, re-checking that the owner is
// still gone. It goes on after a failure and joins the errors.
func (a *APFS) cleanupLeftovers(ctx context.Context, los []Leftover) error {
	var errs []error
	for _, lo := range los {
		if lo.InUse || a.system().Alive(lo.Label.PID, lo.Label.PIDStart) {
			continue
		}
		if _, _, ok := parseName(path.Base(lo.Path)); !ok {
			errs = append(errs, fmt.Errorf("cleanup: %s is not a stillpoint snapshot name; not touching it", lo.Path))
			continue
		}
		var err error
		if lo.Kind == "apfs" {
			err = a.cleanupSnapshot(ctx, lo)
		} else if err = os.RemoveAll(lo.Path); err != nil {
			err = fmt.Errorf("clonefile: removing staging directory %s: %w", lo.Path, err)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, f := range []string{lo.Path + ".json", lo.Path + ".json.tmp"} {
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("cleanup: %w", err))
			}
		}
		os.Remove(path.Dir(lo.Path)) // the container, when empty
	}
	return errors.Join(errs...)
}

// cleanupSnapshot unmounts a killed run's snapshot, removes its mount
// directory and deletes the snapshot when the label says the run made it
// and the volume still lists it.
func (a *APFS) cleanupSnapshot(ctx context.Context, lo Leftover) error {
	for _, m := range a.mounts() {
		if m.On == lo.Path {
			if err := a.unmount(ctx, lo.Path); err != nil {
				return err
			}
		}
	}
	// os.Remove, never RemoveAll: a directory that is not empty may be a
	// mount the table did not show
	if err := os.Remove(lo.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("apfs: removing %s: %w", lo.Path, err)
	}
	l, err := readAPFSLabel(lo.Path + ".json")
	if err != nil || l.Date == "" || !l.Owned {
		return nil
	}
	vol := l.Volume
	if vol == "" {
		vol = lo.Mountpoint
	}
	snaps, err := a.listSnapshots(ctx, vol)
	if err != nil {
		return err
	}
	if findSnapshot(snaps, l.Date) == nil {
		return nil // macOS thinned it, or a release got that far
	}
	return a.deleteSnapshot(ctx, l.Date)
}

func (a *APFS) mounts() []MountEntry {
	ms, _ := a.system().Mounts()
	return ms
}

// APFSReport is what doctor shows of the APFS volumes of the paths it was
// given (macOS only): their Time Machine local snapshots, which stillpoint
// left, and which are mounted.
type APFSReport struct {
	Volumes []APFSVolumeReport `json:"volumes"`
	Error   string             `json:"error,omitempty"`
}

// APFSVolumeReport is one volume.
type APFSVolumeReport struct {
	Volume    string              `json:"volume"`
	FSType    string              `json:"fs_type"`
	Device    string              `json:"device,omitempty"`
	Paths     []string            `json:"paths,omitempty"`
	Snapshots []APFSLocalSnapshot `json:"snapshots"`
	Error     string              `json:"error,omitempty"`
}

// APFSLocalSnapshot is one Time Machine local snapshot of a volume.
type APFSLocalSnapshot struct {
	Name      string `json:"name"`
	Date      string `json:"date"`
	MountedAt string `json:"mounted_at,omitempty"`
	// Stillpoint is the label of the run that made it, when one did.
	Stillpoint string `json:"stillpoint_label,omitempty"`
}

func (a *APFS) doctor(ctx context.Context, paths []string) *APFSReport {
	r := &APFSReport{Volumes: []APFSVolumeReport{}}
	byVol := map[string]*APFSVolumeReport{}
	var order []string
	add := func(v FSInfo, path string) {
		vr := byVol[v.Mountpoint]
		if vr == nil {
			vr = &APFSVolumeReport{Volume: v.Mountpoint, FSType: v.FSType, Device: v.Device, Snapshots: []APFSLocalSnapshot{}}
			byVol[v.Mountpoint] = vr
			order = append(order, v.Mountpoint)
		}
		if path != "" {
			vr.Paths = append(vr.Paths, path)
		}
	}
	if len(paths) == 0 {
		vols, err := a.system().Volumes()
		if err != nil {
			r.Error = err.Error()
		}
		for _, v := range vols {
			if v.FSType == "apfs" && !v.ReadOnly {
				add(v, "")
			}
		}
	}
	for _, p := range paths {
		v, err := a.system().VolumeOf(p)
		if err != nil {
			r.Error = strings.TrimPrefix(r.Error+"; "+err.Error(), "; ")
			continue
		}
		add(v, p)
	}
	mounts := a.mounts()
	for _, mp := range order {
		vr := byVol[mp]
		if vr.FSType == "apfs" {
			a.doctorVolume(ctx, vr, mounts)
		}
		r.Volumes = append(r.Volumes, *vr)
	}
	return r
}

func (a *APFS) doctorVolume(ctx context.Context, vr *APFSVolumeReport, mounts []MountEntry) {
	snaps, err := a.listSnapshots(ctx, vr.Volume)
	if err != nil {
		vr.Error = err.Error()
		return
	}
	ours := map[string]string{}
	container := path.Join(vr.Volume, SnapshotDir)
	if ents, err := os.ReadDir(container); err == nil {
		for _, e := range ents {
			if !strings.HasSuffix(e.Name(), ".json") {
				continue
			}
			if l, err := readAPFSLabel(path.Join(container, e.Name())); err == nil && l.Date != "" && l.Owned {
				ours[l.Date] = strings.TrimSuffix(e.Name(), ".json")
			}
		}
	}
	for _, sn := range snaps {
		ls := APFSLocalSnapshot{Name: sn.Name, Date: sn.Date, Stillpoint: ours[sn.Date]}
		for _, m := range mounts {
			if from, _, _ := strings.Cut(m.From, "@"); from == sn.Name {
				ls.MountedAt = m.On
			}
		}
		vr.Snapshots = append(vr.Snapshots, ls)
	}
}
