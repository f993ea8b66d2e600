package snapshot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/view"
)

// APFS snaps APFS volumes (macOS) with Time Machine local snapshots:
// `tmutil localsnapshot` snaps every local APFS volume Time Machine does
// not exclude, under one date; the snapshot of each volume the run needs
// is found by that date in `tmutil listlocalsnapshots VOLUME` (never "the
// newest", which may be Time Machine's own) and mounted read-only with
// `mount_apfs -o nobrowse,rdonly -s NAME VOLUME DIR` into the labelled
// directory <volume>/.stillpoint-snapshots/<label name>. Release unmounts
// it and deletes the snapshot by its date. Needs root, and Full Disk Access
// for the app that runs stillpoint (the snapshot holds every user's files).
//
// The command layer is behind Runner and the system questions behind
// APFSSystem, so the sequence is tested on any platform against recorded
// outputs (testdata/apfs).
type APFS struct {
	// Runner runs tmutil, mount_apfs, umount and diskutil; nil runs them.
	Runner Runner
	// System answers volume, process and mount questions; nil is the
	// system's (macOS only).
	System APFSSystem
	// Sleep waits between tries of a busy unmount; nil is time.Sleep.
	Sleep func(time.Duration)
}

// Runner runs a system command and returns what it printed.
type Runner interface {
	Run(ctx context.Context, name string, args ...string) (stdout, stderr string, err error)
}

// APFSSystem is what the apfs provider asks the system.
type APFSSystem interface {
	// VolumeOf returns the mounted volume holding path (statfs).
	VolumeOf(path string) (FSInfo, error)
	// Volumes lists the mounted local volumes.
	Volumes() ([]FSInfo, error)
	// Mounts lists every mount: what is mounted (a snapshot mount is
	// "NAME@/dev/diskXsY") and where.
	Mounts() ([]MountEntry, error)
	// Root tells whether this process runs as root.
	Root() bool
	// Alive tells whether the process that wrote a label still runs.
	Alive(pid int, start uint64) bool
}

// MountEntry is one line of the mount table.
type MountEntry struct {
	From string `json:"from"`
	On   string `json:"on"`
}

// commandPaths are the absolute paths the default runner uses: stillpoint
// runs as root, so a command is never looked up in $PATH.
var commandPaths = map[string]string{
	"tmutil":     "/usr/bin/tmutil",
	"mount_apfs": "/sbin/mount_apfs",
	"umount":     "/sbin/umount",
	"diskutil":   "/usr/sbin/diskutil",
}

type execRunner struct{}

func (execRunner) Run(ctx context.Context, name string, args ...string) (string, string, error) {
	path := commandPaths[name]
	if path == "" {
		return "", "", fmt.Errorf("%s: not a command stillpoint runs", name)
	}
	cmd := exec.CommandContext(ctx, path, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// apfsCommandTimeout bounds each command: tmutil waits for backupd, which
// can be slow while a Time Machine backup runs, but never forever.
const apfsCommandTimeout = 2 * time.Minute

// Name implements Provider.
func (*APFS) Name() string { return "apfs" }

func (a *APFS) runner() Runner {
	if a.Runner != nil {
		return a.Runner
	}
	return execRunner{}
}

func (a *APFS) system() APFSSystem {
	if a.System != nil {
		return a.System
	}
	return systemAPFS()
}

func (a *APFS) sleep(d time.Duration) {
	if a.Sleep != nil {
		a.Sleep(d)
		return
	}
	time.Sleep(d)
}

func (a *APFS) run(ctx context.Context, name string, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(ctx, apfsCommandTimeout)
	defer cancel()
	return a.runner().Run(ctx, name, args...)
}

// Why apfs does not fit, or failed: the fixes a user can apply.
var (
	errAPFSNotRoot = errors.New("APFS snapshots need root (mounting and deleting a snapshot are privileged): " +
		"run stillpoint with sudo, or use --snapshot on to read live")
	errFullDiskAccess = errors.New("mounting a snapshot needs Full Disk Access for the app that runs stillpoint: " +
		"turn it on in System Settings > Privacy & Security > Full Disk Access (for Terminal, iTerm, " +
		"or the stillpoint binary when launchd runs it) and run again, or use --snapshot on to read live")
)

// Detect implements Provider. Full Disk Access cannot be told before a
// mount is tried (a stat of a protected file passes without it), so a
// missing grant shows when the set is created, where it falls back by
// policy.
func (a *APFS) Detect(path string) (Fit, error) {
	vol, err := a.system().VolumeOf(path)
	if err != nil {
		return Fit{}, err
	}
	if why := a.unfit(path, vol); why != "" {
		return Fit{Provider: "apfs", Reason: why}, nil
	}
	return Fit{Provider: "apfs", OK: true, Consistency: Volume,
		Reason: "Time Machine local snapshot of APFS volume " + vol.Mountpoint + ", mounted read-only"}, nil
}

func (a *APFS) unfit(path string, vol FSInfo) string {
	switch {
	case vol.FSType != "apfs":
		return fmt.Sprintf("%s is on %s (%s), not APFS", path, vol.FSType, vol.Mountpoint)
	case vol.ReadOnly:
		return fmt.Sprintf("volume %s is mounted read-only (the sealed system volume, or a read-only disk): its files do not change; read live", vol.Mountpoint)
	case !a.system().Root():
		return errAPFSNotRoot.Error()
	}
	return ""
}

// Create implements Provider; the sources of every APFS volume of a run
// are snapped by one tmutil call, so Plan.Create calls CreateSet.
func (a *APFS) Create(ctx context.Context, sources []string, label Label) (Snapshot, error) {
	return a.CreateSet(ctx, sources, label)
}

// apfsVolume is one volume of a set and what was done on it, so Release
// undoes exactly that.
type apfsVolume struct {
	FSInfo
	dev       uint64 // st_dev of the live volume, stamped on the snapshot's files
	sources   []string
	rels      []string // each source below the volume's root
	container string   // <volume>/.stillpoint-snapshots
	dir       string   // where this run mounts the snapshot
	snapName  string   // as tmutil lists it: com.apple.TimeMachine.<date>.local
	mountedAt string   // where the snapshot is read: dir, or someone else's mount of it

	labelWritten, dirMade, mounted bool
}

// CreateSet implements SetCreator: every volume of sources is snapped by
// one `tmutil localsnapshot`. It is all or nothing: what was made before a
// failure is released.
func (a *APFS) CreateSet(ctx context.Context, sources []string, label Label) (Snapshot, error) {
	s := &apfsSnapshot{a: a, label: label, sources: append([]string(nil), sources...)}
	byVol := map[string]*apfsVolume{}
	for _, src := range sources {
		vol, err := a.system().VolumeOf(src)
		if err != nil {
			return nil, fmt.Errorf("apfs: %s: %w", src, err)
		}
		if why := a.unfit(src, vol); why != "" {
			return nil, fmt.Errorf("apfs: %s: %s", src, why)
		}
		// symlinks resolved (/tmp is /private/tmp); firmlinks stay, and
		// relInVolume maps them
		real, err := evalSymlinks(src)
		if err != nil {
			return nil, fmt.Errorf("apfs: %w", err)
		}
		rel, err := relInVolume(real, macPath(vol.Mountpoint))
		if err != nil {
			return nil, err
		}
		v := byVol[vol.Mountpoint]
		if v == nil {
			v = &apfsVolume{FSInfo: vol, container: path.Join(vol.Mountpoint, SnapshotDir)}
			v.dir = path.Join(v.container, label.Name())
			if st, err := (&view.Live{}).Lstat(vol.Mountpoint); err == nil {
				v.dev = st.Dev
			}
			byVol[vol.Mountpoint] = v
			s.vols = append(s.vols, v)
		}
		v.sources, v.rels = append(v.sources, src), append(v.rels, rel)
	}
	if len(s.vols) == 0 {
		return nil, errors.New("apfs: no sources")
	}
	if err := s.take(ctx); err != nil {
		return nil, errors.Join(err, s.Release())
	}
	return s, nil
}

// dataVolume is where macOS (10.15 and later) keeps what users write; the
// firmlinks /Users, /Applications, /Library, /private, /usr/local … lead
// into it under the same names.
const dataVolume = "/System/Volumes/Data"

// relInVolume is where src lies below the root of volume, for reading it
// from the volume's snapshot. Both are macOS paths: slash paths, whatever
// platform the tests run on.
func relInVolume(src, volume string) (string, error) {
	src, volume = path.Clean(src), path.Clean(volume)
	switch {
	case src == volume:
		return ".", nil
	case strings.HasPrefix(src, strings.TrimSuffix(volume, "/")+"/"):
		return strings.TrimPrefix(src, strings.TrimSuffix(volume, "/")+"/"), nil
	case volume == dataVolume:
		return strings.TrimPrefix(src, "/"), nil // a firmlink: /Users/x is Users/x of the Data volume
	}
	return "", fmt.Errorf("apfs: %s is on volume %s but not below it: cannot tell where it is in the volume's snapshot", src, volume)
}

// take makes the snapshot and mounts it on every volume, recording each
// step so Release undoes exactly what was done.
func (s *apfsSnapshot) take(ctx context.Context) error {
	a := s.a
	for _, v := range s.vols {
		if err := os.MkdirAll(v.container, 0o700); err != nil {
			return fmt.Errorf("apfs: creating %s: %w", v.container, err)
		}
		if err := writeAPFSLabel(v.container, apfsLabel{Label: s.label, Volume: v.Mountpoint}); err != nil {
			return fmt.Errorf("apfs: writing the label in %s: %w", v.container, err)
		}
		v.labelWritten = true
	}
	// what each volume had before, so a date tmutil reports for a snapshot
	// that already existed (Time Machine's, of the same second) is never
	// taken for ours and deleted
	before := map[string][]tmSnapshot{}
	for _, v := range s.vols {
		snaps, err := a.listSnapshots(ctx, v.Mountpoint)
		if err != nil {
			return err
		}
		before[v.Mountpoint] = snaps
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	start := time.Now()
	out, errOut, err := a.run(ctx, "tmutil", "localsnapshot")
	if err != nil {
		return commandError("tmutil localsnapshot", out, errOut, err, a.system().Root())
	}
	date, ok := parseCreatedDate(out)
	if !ok {
		return fmt.Errorf("apfs: tmutil localsnapshot printed no snapshot date: %q", strings.TrimSpace(out+errOut))
	}
	s.date, s.owned, s.took = date, true, time.Since(start)
	for _, v := range s.vols {
		if findSnapshot(before[v.Mountpoint], date) != nil {
			s.owned = false
		}
	}
	for _, v := range s.vols {
		if err := writeAPFSLabel(v.container, apfsLabel{Label: s.label, Volume: v.Mountpoint, Date: date, Owned: s.owned}); err != nil {
			return fmt.Errorf("apfs: writing the label in %s: %w", v.container, err)
		}
	}
	if !s.owned {
		s.notes = append(s.notes, fmt.Sprintf("apfs: tmutil localsnapshot gave the date %s of a snapshot that existed before (Time Machine's, of the same second): read from it and left in place", date))
	}
	for _, v := range s.vols {
		snaps, err := a.listSnapshots(ctx, v.Mountpoint)
		if err != nil {
			return err
		}
		sn := findSnapshot(snaps, date)
		if sn == nil {
			return fmt.Errorf("apfs: tmutil localsnapshot made no snapshot of volume %s (Time Machine snaps only the local APFS volumes it does not exclude: "+
				"check System Settings > General > Time Machine > Options), or use --snapshot on to read live", v.Mountpoint)
		}
		v.snapName = sn.Name
	}
	for _, v := range s.vols {
		if err := s.mount(ctx, v); err != nil {
			return err
		}
	}
	var routes []route
	for _, v := range s.vols {
		for i, src := range v.sources {
			root := path.Join(v.mountedAt, v.rels[i])
			if _, err := os.Lstat(root); err != nil {
				return fmt.Errorf("apfs: %s is not in the snapshot of %s mounted at %s: %w", src, v.Mountpoint, v.mountedAt, err)
			}
			routes = append(routes, route{src, &stamped{&view.Live{Strip: src, Root: root}, v.dev, Volume}})
		}
	}
	s.view = newRouter(routes, nil)
	if len(s.vols) > 1 {
		var names []string
		for _, v := range s.vols {
			names = append(names, v.Mountpoint)
		}
		s.notes = append(s.notes, fmt.Sprintf("apfs: volumes %s were snapped one after the other by one tmutil localsnapshot (within %s): each is a point in time, but together they are not one instant",
			strings.Join(names, ", "), s.took.Round(time.Millisecond)))
	}
	return nil
}

// mount mounts v's snapshot read-only on v.dir. A snapshot someone else
// has mounted already (Time Machine during a backup) is read where it is.
func (s *apfsSnapshot) mount(ctx context.Context, v *apfsVolume) error {
	if err := os.Mkdir(v.dir, 0o700); err != nil {
		return fmt.Errorf("apfs: creating %s: %w", v.dir, err)
	}
	v.dirMade = true
	args := []string{"-o", "nobrowse,rdonly", "-s", v.snapName, v.Mountpoint, v.dir}
	out, errOut, err := s.a.run(ctx, "mount_apfs", args...)
	if err == nil {
		v.mounted, v.mountedAt = true, v.dir
		return nil
	}
	if busy(out + errOut) {
		if at := s.a.mountOf(v.snapName, v.Device); at != "" {
			v.mountedAt = at
			s.notes = append(s.notes, fmt.Sprintf("apfs: snapshot %s of %s was already mounted at %s: read there and left mounted", v.snapName, v.Mountpoint, at))
			return nil
		}
	}
	return commandError("mount_apfs "+strings.Join(args, " "), out, errOut, err, s.a.system().Root())
}

// mountOf is where snapshot name of device is mounted, or "".
func (a *APFS) mountOf(name, device string) string {
	ms, err := a.system().Mounts()
	if err != nil {
		return ""
	}
	for _, m := range ms {
		from, dev, _ := strings.Cut(m.From, "@")
		if from == name && (device == "" || dev == "" || dev == device) {
			return m.On
		}
	}
	return ""
}

// unmountTries and unmountWait: a busy mount is mostly Spotlight or a
// Finder window passing by; after that it is forced (it is read-only and
// ours).
const (
	unmountTries = 3
	unmountWait  = time.Second
)

func (a *APFS) unmount(ctx context.Context, dir string) error {
	var out, errOut string
	var err error
	for i := 0; i < unmountTries; i++ {
		if i > 0 {
			a.sleep(unmountWait)
		}
		out, errOut, err = a.run(ctx, "umount", dir)
		if err == nil || notMounted(out+errOut) {
			return nil
		}
		if !busy(out + errOut) {
			return commandError("umount "+dir, out, errOut, err, a.system().Root())
		}
	}
	fout, ferrOut, ferr := a.run(ctx, "diskutil", "unmount", "force", dir)
	if ferr == nil || notMounted(fout+ferrOut) {
		return nil
	}
	return errors.Join(commandError("umount "+dir, out, errOut, err, a.system().Root()),
		commandError("diskutil unmount force "+dir, fout, ferrOut, ferr, a.system().Root()))
}

// deleteSnapshot deletes the snapshots of date on every volume. tmutil
// also takes a mount point here, and then deletes every snapshot of the
// volume: anything but a bare date is refused before a command runs.
func (a *APFS) deleteSnapshot(ctx context.Context, date string) error {
	if !snapshotDate.MatchString(date) {
		return fmt.Errorf("apfs: %q is not a snapshot date; not deleting anything", date)
	}
	out, errOut, err := a.run(ctx, "tmutil", "deletelocalsnapshots", date)
	if err != nil {
		return commandError("tmutil deletelocalsnapshots "+date, out, errOut, err, a.system().Root())
	}
	return nil
}

type apfsSnapshot struct {
	a       *APFS
	label   Label
	sources []string
	vols    []*apfsVolume
	date    string // as tmutil printed it: 2026-12-01-104512
	owned   bool   // made by this run: deleted at Release
	took    time.Duration
	view    view.View
	notes   []string

	mu      sync.Mutex
	deleted bool
	done    bool
}

func (s *apfsSnapshot) Provider() string         { return "apfs" }
func (s *apfsSnapshot) Consistency() Consistency { return Volume }
func (s *apfsSnapshot) Sources() []string        { return s.sources }
func (s *apfsSnapshot) View() view.View          { return s.view }
func (s *apfsSnapshot) Notes() []string          { return s.notes }

// Location is where the first volume's snapshot is read.
func (s *apfsSnapshot) Location() string {
	if len(s.vols) == 0 {
		return ""
	}
	return s.vols[0].mountedAt
}

// Release unmounts every snapshot, deletes them (when this run made
// them) and then the labels, so an interrupted release leaves a labelled
// leftover. It is idempotent and retries what failed.
func (s *apfsSnapshot) Release() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return nil
	}
	ctx := context.Background()
	var errs []error
	for i := len(s.vols) - 1; i >= 0; i-- {
		v := s.vols[i]
		if v.mounted {
			if err := s.a.unmount(ctx, v.dir); err != nil {
				errs = append(errs, err)
				continue
			}
			v.mounted = false
		}
		if v.dirMade {
			if err := os.Remove(v.dir); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("apfs: removing %s: %w", v.dir, err))
				continue
			}
			v.dirMade = false
		}
	}
	if len(errs) == 0 && s.date != "" && s.owned && !s.deleted {
		if err := s.a.deleteSnapshot(ctx, s.date); err != nil {
			errs = append(errs, err)
		} else {
			s.deleted = true
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w (stillpoint doctor --cleanup removes what is left)", errors.Join(errs...))
	}
	for _, v := range s.vols {
		if v.labelWritten {
			if err := os.Remove(path.Join(v.container, s.label.Name()+".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("apfs: removing label: %w", err))
				continue
			}
			v.labelWritten = false
		}
		os.Remove(v.container) // only when empty: other runs may share it
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	s.done = true
	return nil
}

// tmSnapshot is one Time Machine local snapshot of a volume.
type tmSnapshot struct {
	Name string // com.apple.TimeMachine.2026-12-01-104512.local
	Date string // 2026-12-01-104512
}

var (
	snapshotDate = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}-\d{6}$`)
	// macOS 10.13–10.15 list the name without ".local"
	snapshotName = regexp.MustCompile(`^com\.apple\.TimeMachine\.(\d{4}-\d{2}-\d{2}-\d{6})(\.local)?$`)
	createdDate  = regexp.MustCompile(`(?m)^Created local snapshot with date:\s*(\d{4}-\d{2}-\d{2}-\d{6})\s*$`)
)

// parseCreatedDate reads the date from tmutil localsnapshot's output.
func parseCreatedDate(out string) (string, bool) {
	m := createdDate.FindStringSubmatch(out)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// parseSnapshots reads tmutil listlocalsnapshots: every line must be a
// Time Machine snapshot name, so the "Snapshots for disk /:" header of
// newer macOS and the sealed system's com.apple.os.update-… are skipped.
func parseSnapshots(out string) []tmSnapshot {
	var snaps []tmSnapshot
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if m := snapshotName.FindStringSubmatch(line); m != nil {
			snaps = append(snaps, tmSnapshot{Name: line, Date: m[1]})
		}
	}
	return snaps
}

func findSnapshot(snaps []tmSnapshot, date string) *tmSnapshot {
	for i := range snaps {
		if snaps[i].Date == date {
			return &snaps[i]
		}
	}
	return nil
}

func (a *APFS) listSnapshots(ctx context.Context, volume string) ([]tmSnapshot, error) {
	out, errOut, err := a.run(ctx, "tmutil", "listlocalsnapshots", volume)
	if err != nil {
		return nil, commandError("tmutil listlocalsnapshots "+volume, out, errOut, err, a.system().Root())
	}
	return parseSnapshots(out), nil
}

func busy(out string) bool {
	return strings.Contains(out, "Resource busy") || strings.Contains(out, "Operation already in progress")
}

func notMounted(out string) bool { return strings.Contains(out, "not currently mounted") }

// commandError says what failed with the command's own words and, where
// the output shows a cause a user can fix, the fix.
func commandError(cmd, out, errOut string, err error, root bool) error {
	said := strings.TrimSpace(strings.TrimSpace(errOut) + "\n" + strings.TrimSpace(out))
	said = strings.Join(strings.Fields(said), " ")
	if said == "" {
		said = err.Error()
	}
	var fix error
	switch {
	case strings.Contains(said, "Operation not permitted") && root:
		fix = errFullDiskAccess
	case strings.Contains(said, "Operation not permitted"), strings.Contains(said, "Permission denied"),
		strings.Contains(said, "requires root"), strings.Contains(said, "must be run as root"):
		fix = errAPFSNotRoot
	}
	if fix != nil {
		return fmt.Errorf("apfs: %s: %s: %w", cmd, said, fix)
	}
	return fmt.Errorf("apfs: %s: %s", cmd, said)
}

// apfsLabel is the label of an apfs snapshot directory, with what a later
// run needs to remove a killed run's snapshot: the volume and the date.
type apfsLabel struct {
	Label
	Volume string `json:"apfs_volume"`
	// Date is "" when the run was killed before tmutil answered: the
	// snapshot, if any, cannot be told from Time Machine's.
	Date  string `json:"apfs_snapshot_date,omitempty"`
	Owned bool   `json:"apfs_owned,omitempty"`
}

// writeAPFSLabel stores l as dir/<name>.json, durably and atomically.
func writeAPFSLabel(dir string, l apfsLabel) error {
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	p := path.Join(dir, l.Name()+".json")
	tmp := p + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

func readAPFSLabel(p string) (apfsLabel, error) {
	var l apfsLabel
	b, err := os.ReadFile(p)
	if err != nil {
		return l, err
	}
	err = json.Unmarshal(b, &l)
	return l, err
}
