package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/moby/sys/mountinfo"
)

// DefaultProviders is the preference order on Linux: a btrfs snapshot,
// else reflink clones (opened files cloned on open), else live.
func DefaultProviders() []Provider {
	return []Provider{Btrfs{}, Reflink{CloneOnOpen: true}, None{}}
}

func subvolumeOf(path string, fs FSInfo) (string, *Subvolume) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil || fs.FSType != "btrfs" {
		return real, nil
	}
	root, err := subvolRoot(real, fs.Mountpoint)
	if err != nil {
		return real, nil
	}
	sv, err := statSubvol(root)
	if err != nil {
		return real, &Subvolume{Root: root}
	}
	return real, &Subvolume{ID: sv.id, Root: root}
}

// Filesystems where no run of ours can have left anything, or where even
// looking may hang (network, automount).
var skipFS = map[string]bool{"proc": true, "sysfs": true, "cgroup": true, "cgroup2": true,
	"devpts": true, "devtmpfs": true, "mqueue": true, "debugfs": true, "tracefs": true,
	"securityfs": true, "pstore": true, "bpf": true, "configfs": true, "fusectl": true,
	"hugetlbfs": true, "autofs": true, "binfmt_misc": true, "nsfs": true, "rpc_pipefs": true,
	"nfs": true, "nfs4": true, "cifs": true, "smb3": true, "fuse.sshfs": true, "efivarfs": true}

// FindLeftovers lists the snapshot and staging directories of runs on the
// filesystems holding paths, or on every mount when paths is empty. Those
// whose process is gone are stale (InUse false) and Cleanup removes them.
func FindLeftovers(paths []string) ([]Leftover, error) {
	mps, err := mountpoints(paths)
	var out []Leftover
	for _, mp := range mps {
		out = append(out, scan(filepath.Join(mp, SnapshotDir), "btrfs", mp)...)
		out = append(out, scan(filepath.Join(mp, StagingDir), "reflink", mp)...)
	}
	return out, err
}

func mountpoints(paths []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	var errs []error
	add := func(mp string) {
		if !seen[mp] {
			seen[mp] = true
			out = append(out, mp)
		}
	}
	if len(paths) == 0 {
		ms, err := mountinfo.GetMounts(nil)
		if err != nil {
			return nil, fmt.Errorf("reading the mount table: %w", err)
		}
		for _, m := range ms {
			if !skipFS[m.FSType] {
				add(m.Mountpoint)
			}
		}
		return out, nil
	}
	for _, p := range paths {
		real, err := filepath.EvalSymlinks(p)
		if err == nil {
			var m *mountinfo.Info
			if m, err = mountOf(real); err == nil {
				add(m.Mountpoint)
				continue
			}
		}
		errs = append(errs, fmt.Errorf("looking for leftovers of %s: %w", p, err))
	}
	return out, errors.Join(errs...)
}

// scan reads one container: entries are <name> directories and their
// <name>.json labels; a name that is not a label name is not ours.
func scan(container, kind, mp string) []Leftover {
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
		p := filepath.Join(container, n)
		l, err := readLabel(p + ".json")
		if err != nil || l.PID != pid {
			l = Label{PID: pid, Created: created} // label lost: trust the name
		}
		lo := Leftover{Path: p, Kind: kind, Mountpoint: mp, Label: l}
		lo.InUse = alive(l.PID, l.PIDStart)
		if lo.InUse {
			lo.Reason = fmt.Sprintf("process %d that made it still runs", l.PID)
		} else {
			lo.Reason = fmt.Sprintf("process %d that made it is gone", l.PID)
		}
		out = append(out, lo)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Cleanup removes stale leftovers (those not InUse), re-checking that the
// owner is still gone. It goes on after a failure and joins the errors.
func Cleanup(los []Leftover) error {
	var errs []error
	for _, lo := range los {
		if lo.InUse || alive(lo.Label.PID, lo.Label.PIDStart) {
			continue
		}
		if _, _, ok := parseName(filepath.Base(lo.Path)); !ok {
			errs = append(errs, fmt.Errorf("cleanup: %s is not a stillpoint snapshot name; not touching it", lo.Path))
			continue
		}
		var err error
		if lo.Kind == "btrfs" {
			err = removeSnapDir(lo.Path)
		} else if err = os.RemoveAll(lo.Path); err != nil {
			err = fmt.Errorf("reflink: removing staging directory %s: %w", lo.Path, err)
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
		os.Remove(filepath.Dir(lo.Path)) // the container, when empty
	}
	return errors.Join(errs...)
}
