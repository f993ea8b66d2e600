package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/view"
)

// reply is one recorded answer of a command: testdata/apfs files for its
// output, and its exit status.
type reply struct {
	stdout, stderr string // file names in testdata/apfs, "" for nothing
	exit           int
}

// replayRunner answers each command ("tmutil listlocalsnapshots", …) with
// its recorded replies in turn, the last one again when they run out, and
// plays mount_apfs and umount on real directories: a mount fills the
// target with the snapshot's files, an unmount empties it.
type replayRunner struct {
	t       *testing.T
	replies map[string][]reply
	calls   []string
	// snapshot is what a successful mount shows below the target:
	// relative path → content.
	snapshot map[string]string
}

func (r *replayRunner) Run(_ context.Context, name string, args ...string) (string, string, error) {
	r.calls = append(r.calls, strings.Join(append([]string{name}, args...), " "))
	key := name
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") && name != "umount" {
		key += " " + args[0]
	}
	rs := r.replies[key]
	if len(rs) == 0 {
		r.t.Fatalf("unexpected command %s %v", name, args)
	}
	rep := rs[0]
	if len(rs) > 1 {
		r.replies[key] = rs[1:]
	}
	out, errOut := r.read(rep.stdout), r.read(rep.stderr)
	if rep.exit != 0 {
		return out, errOut, fmt.Errorf("exit status %d", rep.exit)
	}
	switch name {
	case "mount_apfs":
		dir := args[len(args)-1]
		for p, content := range r.snapshot {
			full := filepath.Join(dir, p)
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				r.t.Fatal(err)
			}
			if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
				r.t.Fatal(err)
			}
		}
	case "umount", "diskutil":
		dir := args[len(args)-1]
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
	return out, errOut, nil
}

func (r *replayRunner) read(name string) string {
	if name == "" {
		return ""
	}
	b, err := os.ReadFile(filepath.Join("testdata", "apfs", name))
	if err != nil {
		r.t.Fatal(err)
	}
	return string(b)
}

// fakeMac is an APFSSystem of temporary directories standing for volumes.
type fakeMac struct {
	vols   []FSInfo
	mounts []MountEntry
	root   bool
	alive  bool
}

func (f *fakeMac) VolumeOf(p string) (FSInfo, error) {
	best := FSInfo{}
	for _, v := range f.vols {
		if within(p, v.Mountpoint) && len(v.Mountpoint) > len(best.Mountpoint) {
			best = v
		}
	}
	if best.Mountpoint == "" {
		return best, fmt.Errorf("statfs %s: no such volume", p)
	}
	return best, nil
}
func (f *fakeMac) Volumes() ([]FSInfo, error)    { return f.vols, nil }
func (f *fakeMac) Mounts() ([]MountEntry, error) { return f.mounts, nil }
func (f *fakeMac) Root() bool                    { return f.root }
func (f *fakeMac) Alive(int, uint64) bool        { return f.alive }

const (
	testDate = "2026-12-01-104512"
	testSnap = "com.apple.TimeMachine.2026-12-01-104512.local"
)

// macFixture is one APFS volume (a temporary directory) with a source
// whose live file says "live" and whose snapshot says "snapshot".
type macFixture struct {
	vol, src string
	sys      *fakeMac
	run      *replayRunner
	apfs     *APFS
	slept    []time.Duration
	label    Label
}

func newMacFixture(t *testing.T) *macFixture {
	t.Helper()
	vol := t.TempDir()
	src := filepath.Join(vol, "Users", "me", "Library", "Mail")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "Envelope Index"), []byte("live"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := &macFixture{vol: vol, src: src, label: NewLabel("nightly")}
	f.sys = &fakeMac{vols: []FSInfo{{Mountpoint: vol, FSType: "apfs", Device: "/dev/disk3s5"}}, root: true}
	f.run = &replayRunner{t: t, replies: map[string][]reply{
		"tmutil listlocalsnapshots":   {{stdout: "tmutil-list-before.txt"}, {stdout: "tmutil-list-after.txt"}},
		"tmutil localsnapshot":        {{stdout: "tmutil-localsnapshot-purgeable.txt"}},
		"mount_apfs":                  {{}},
		"umount":                      {{}},
		"tmutil deletelocalsnapshots": {{stdout: "tmutil-delete.txt"}},
	}, snapshot: map[string]string{"Users/me/Library/Mail/Envelope Index": "snapshot"}}
	f.apfs = &APFS{Runner: f.run, System: f.sys, Sleep: func(d time.Duration) { f.slept = append(f.slept, d) }}
	return f
}

// dir is where the code mounts the snapshot: path.Join, as it joins macOS
// paths (on Windows the temporary volume is C:\..., below it "/")
func (f *macFixture) dir() string { return path.Join(f.vol, SnapshotDir, f.label.Name()) }

func (f *macFixture) mountCall() string {
	return "mount_apfs -o nobrowse,rdonly -s " + testSnap + " " + f.vol + " " + f.dir()
}

func (f *macFixture) assertCalls(t *testing.T, want ...string) {
	t.Helper()
	if !slices.Equal(f.run.calls, want) {
		t.Fatalf("commands\n  %s\nwant\n  %s", strings.Join(f.run.calls, "\n  "), strings.Join(want, "\n  "))
	}
}

// assertNothingLeft: the mount directory, the label and the container are gone.
func (f *macFixture) assertNothingLeft(t *testing.T) {
	t.Helper()
	if _, err := os.Lstat(filepath.Join(f.vol, SnapshotDir)); !errors.Is(err, os.ErrNotExist) {
		ents, _ := os.ReadDir(filepath.Join(f.vol, SnapshotDir))
		t.Fatalf("%s is left (%v): %v", SnapshotDir, err, ents)
	}
}

func readView(t *testing.T, s Snapshot, p string) string {
	t.Helper()
	fh, err := s.View().Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	b, err := io.ReadAll(fh)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAPFSTakeServeRelease: the snapshot is found by the date tmutil
// printed (not the newer one Time Machine made a second later), mounted
// read-only and served under the original path; Release unmounts it and
// deletes it by its date, and leaves nothing.
func TestAPFSTakeServeRelease(t *testing.T) {
	f := newMacFixture(t)
	snap, err := f.apfs.CreateSet(context.Background(), []string{f.src}, f.label)
	if err != nil {
		t.Fatal(err)
	}
	f.assertCalls(t,
		"tmutil listlocalsnapshots "+f.vol,
		"tmutil localsnapshot",
		"tmutil listlocalsnapshots "+f.vol,
		f.mountCall())
	if got := readView(t, snap, filepath.Join(f.src, "Envelope Index")); got != "snapshot" {
		t.Fatalf("read %q through the view, want the snapshot's content", got)
	}
	if snap.Consistency() != Volume || snap.Provider() != "apfs" {
		t.Fatalf("consistency %s, provider %s", snap.Consistency(), snap.Provider())
	}
	st, err := snap.View().Lstat(f.src)
	liveVol, _ := (&view.Live{}).Lstat(f.vol)
	if err != nil || st.Dev != liveVol.Dev {
		t.Fatalf("Lstat %v, dev %d: want the live volume's device %d for incremental matching", err, st.Dev, liveVol.Dev)
	}
	l, err := readAPFSLabel(f.dir() + ".json")
	if err != nil || l.Date != testDate || !l.Owned || l.Volume != f.vol || l.PID != os.Getpid() {
		t.Fatalf("label %+v (%v): want date %s, owned, volume, our pid", l, err, testDate)
	}
	if err := snap.Release(); err != nil {
		t.Fatal(err)
	}
	if err := snap.Release(); err != nil {
		t.Fatal(err)
	}
	f.assertCalls(t,
		"tmutil listlocalsnapshots "+f.vol,
		"tmutil localsnapshot",
		"tmutil listlocalsnapshots "+f.vol,
		f.mountCall(),
		"umount "+f.dir(),
		"tmutil deletelocalsnapshots "+testDate)
	f.assertNothingLeft(t)
}

// TestAPFSNoFullDiskAccess: mount_apfs refused as root is missing Full
// Disk Access: the error says where to grant it and how to fall back, and
// the snapshot already made is deleted.
func TestAPFSNoFullDiskAccess(t *testing.T) {
	f := newMacFixture(t)
	f.run.replies["mount_apfs"] = []reply{{stderr: "mount_apfs-no-full-disk-access.txt", exit: 77}}
	_, err := f.apfs.CreateSet(context.Background(), []string{f.src}, f.label)
	if !errors.Is(err, errFullDiskAccess) {
		t.Fatalf("err %v, want errFullDiskAccess", err)
	}
	for _, want := range []string{"Operation not permitted", "System Settings > Privacy & Security > Full Disk Access", "--snapshot on"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	f.assertCalls(t,
		"tmutil listlocalsnapshots "+f.vol,
		"tmutil localsnapshot",
		"tmutil listlocalsnapshots "+f.vol,
		f.mountCall(),
		"tmutil deletelocalsnapshots "+testDate)
	f.assertNothingLeft(t)
}

// TestAPFSPolicyFallback: through a plan, a failed apfs set reads auto
// sources live with a note naming Full Disk Access, and fails required
// sources saying so.
func TestAPFSPolicyFallback(t *testing.T) {
	for _, pol := range []Policy{Auto, Required} {
		f := newMacFixture(t)
		f.run.replies["mount_apfs"] = []reply{{stderr: "mount_apfs-no-full-disk-access.txt", exit: 77}}
		plan, err := NewPlan([]Source{{Path: f.src, Policy: pol}}, Options{Providers: []Provider{f.apfs, None{}}, KeepLeftovers: true})
		if err != nil {
			t.Fatal(err)
		}
		if plan.Sources[0].Provider != "apfs" {
			t.Fatalf("planned %s for %s", plan.Sources[0].Provider, f.src)
		}
		set, err := plan.Create(context.Background())
		if pol == Required {
			if err == nil || !strings.Contains(err.Error(), "Full Disk Access") || !strings.Contains(err.Error(), "policy required") {
				t.Fatalf("required: err %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if set.Sources[0].Provider != "none" || !strings.Contains(strings.Join(set.Notes, "\n"), "Full Disk Access") {
			t.Fatalf("auto: provider %s, notes %q", set.Sources[0].Provider, set.Notes)
		}
		if got := readView(t, set.Snapshots()[0], filepath.Join(f.src, "Envelope Index")); got != "live" {
			t.Fatalf("auto read %q, want the live file", got)
		}
		set.Release()
	}
}

// TestAPFSAlreadyMounted: a snapshot someone else mounted is read where it
// is mounted and left mounted; ours is still deleted.
func TestAPFSAlreadyMounted(t *testing.T) {
	f := newMacFixture(t)
	f.run.replies["mount_apfs"] = []reply{{stderr: "mount_apfs-busy.txt", exit: 75}}
	elsewhere := filepath.Join(t.TempDir(), "com.apple.TimeMachine.localsnapshots", testSnap)
	mail := filepath.Join(elsewhere, "Users", "me", "Library", "Mail")
	if err := os.MkdirAll(mail, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mail, "Envelope Index"), []byte("theirs"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.sys.mounts = []MountEntry{{From: testSnap + "@/dev/disk3s5", On: elsewhere}}
	snap, err := f.apfs.CreateSet(context.Background(), []string{f.src}, f.label)
	if err != nil {
		t.Fatal(err)
	}
	if got := readView(t, snap, filepath.Join(f.src, "Envelope Index")); got != "theirs" {
		t.Fatalf("read %q, want the content of the existing mount", got)
	}
	if !strings.Contains(strings.Join(snap.Notes(), "\n"), "already mounted at "+elsewhere) {
		t.Fatalf("notes %q", snap.Notes())
	}
	if err := snap.Release(); err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(f.run.calls, func(c string) bool { return strings.HasPrefix(c, "umount") }) {
		t.Fatalf("unmounted someone else's mount: %q", f.run.calls)
	}
	if last := f.run.calls[len(f.run.calls)-1]; last != "tmutil deletelocalsnapshots "+testDate {
		t.Fatalf("last command %q", last)
	}
	f.assertNothingLeft(t)
}

// TestAPFSUnmountBusy: a busy unmount is tried again, then forced, and
// the snapshot is deleted after it; when even the force fails, Release
// keeps the label, deletes nothing, says how to clean up, and the next
// Release finishes.
func TestAPFSUnmountBusy(t *testing.T) {
	f := newMacFixture(t)
	busy := reply{stderr: "umount-busy.txt", exit: 16}
	f.run.replies["umount"] = []reply{busy, busy, busy}
	f.run.replies["diskutil unmount"] = []reply{{stdout: "diskutil-unmount-force.txt"}}
	snap, err := f.apfs.CreateSet(context.Background(), []string{f.src}, f.label)
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Release(); err != nil {
		t.Fatal(err)
	}
	want := []string{"umount " + f.dir(), "umount " + f.dir(), "umount " + f.dir(),
		"diskutil unmount force " + f.dir(), "tmutil deletelocalsnapshots " + testDate}
	if got := f.run.calls[4:]; !slices.Equal(got, want) {
		t.Fatalf("release ran\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if len(f.slept) != unmountTries-1 {
		t.Fatalf("waited %v between tries", f.slept)
	}
	f.assertNothingLeft(t)

	f = newMacFixture(t)
	f.run.replies["umount"] = []reply{busy, busy, busy, {}}
	f.run.replies["diskutil unmount"] = []reply{{stderr: "diskutil-unmount-force-failed.txt", exit: 1}}
	snap, err = f.apfs.CreateSet(context.Background(), []string{f.src}, f.label)
	if err != nil {
		t.Fatal(err)
	}
	err = snap.Release()
	if err == nil || !strings.Contains(err.Error(), "Resource busy") || !strings.Contains(err.Error(), "doctor --cleanup") {
		t.Fatalf("release error %v", err)
	}
	if slices.Contains(f.run.calls, "tmutil deletelocalsnapshots "+testDate) {
		t.Fatal("deleted a snapshot that is still mounted")
	}
	if _, err := os.Stat(f.dir() + ".json"); err != nil {
		t.Fatalf("the label went before the snapshot: %v", err)
	}
	if err := snap.Release(); err != nil {
		t.Fatal(err)
	}
	if last := f.run.calls[len(f.run.calls)-2:]; !slices.Equal(last, []string{"umount " + f.dir(), "tmutil deletelocalsnapshots " + testDate}) {
		t.Fatalf("second release ran %q", last)
	}
	f.assertNothingLeft(t)
}

// TestAPFSNotAPFSNotRoot: a volume that is not APFS, a read-only one, or
// a run without root do not fit, say why, and run no command.
func TestAPFSNotAPFSNotRoot(t *testing.T) {
	for _, tc := range []struct {
		fstype   string
		readOnly bool
		root     bool
		want     string
	}{
		{"hfs", false, true, "not APFS"},
		{"apfs", true, true, "read-only"},
		{"apfs", false, false, "run stillpoint with sudo, or use --snapshot on"},
	} {
		f := newMacFixture(t)
		f.sys.vols[0].FSType, f.sys.vols[0].ReadOnly, f.sys.root = tc.fstype, tc.readOnly, tc.root
		fit, err := f.apfs.Detect(f.src)
		if err != nil || fit.OK || !strings.Contains(fit.Reason, tc.want) {
			t.Errorf("%+v: fit %+v, %v", tc, fit, err)
		}
		if _, err := f.apfs.CreateSet(context.Background(), []string{f.src}, f.label); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: CreateSet %v", tc, err)
		}
		if len(f.run.calls) > 0 {
			t.Errorf("%+v: ran %q", tc, f.run.calls)
		}
	}
	f := newMacFixture(t)
	if fit, err := f.apfs.Detect(f.src); err != nil || !fit.OK || fit.Consistency != Volume {
		t.Fatalf("APFS as root: %+v %v", fit, err)
	}
}

// twoVolumes adds a second APFS volume with a source.
func (f *macFixture) twoVolumes(t *testing.T) (vol2, src2 string) {
	vol2 = t.TempDir()
	src2 = filepath.Join(vol2, "Photos Library.photoslibrary")
	if err := os.MkdirAll(src2, 0o755); err != nil {
		t.Fatal(err)
	}
	f.sys.vols = append(f.sys.vols, FSInfo{Mountpoint: vol2, FSType: "apfs", Device: "/dev/disk5s1"})
	f.run.snapshot["Photos Library.photoslibrary/database/Photos.sqlite"] = "snapshot"
	return vol2, src2
}

// TestAPFSTwoVolumes: both volumes come from one tmutil localsnapshot,
// each mounted, and the notes say they are not one instant.
func TestAPFSTwoVolumes(t *testing.T) {
	f := newMacFixture(t)
	vol2, src2 := f.twoVolumes(t)
	f.run.replies["tmutil listlocalsnapshots"] = []reply{{stdout: "tmutil-list-before.txt"}, {stdout: "tmutil-list-empty.txt"},
		{stdout: "tmutil-list-after.txt"}, {stdout: "tmutil-list-catalina.txt"}}
	snap, err := f.apfs.CreateSet(context.Background(), []string{f.src, src2}, f.label)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range f.run.calls {
		if c == "tmutil localsnapshot" {
			n++
		}
	}
	dir2 := path.Join(vol2, SnapshotDir, f.label.Name())
	if n != 1 || !slices.Contains(f.run.calls, "mount_apfs -o nobrowse,rdonly -s com.apple.TimeMachine.2026-12-01-104512 "+vol2+" "+dir2) {
		t.Fatalf("commands %q: want one localsnapshot and the second volume mounted by its listed name", f.run.calls)
	}
	if got := readView(t, snap, filepath.Join(src2, "database", "Photos.sqlite")); got != "snapshot" {
		t.Fatalf("second volume read %q", got)
	}
	if !strings.Contains(strings.Join(snap.Notes(), "\n"), "not one instant") {
		t.Fatalf("notes %q", snap.Notes())
	}
	if err := snap.Release(); err != nil {
		t.Fatal(err)
	}
	if got := f.run.calls[len(f.run.calls)-3:]; !slices.Equal(got, []string{"umount " + dir2, "umount " + f.dir(), "tmutil deletelocalsnapshots " + testDate}) {
		t.Fatalf("release ran %q", got)
	}
	f.assertNothingLeft(t)
}

// TestAPFSVolumeNotSnapped: a volume tmutil did not snap (Time Machine
// excludes it) fails the set, and the snapshots made elsewhere are
// unmounted and deleted.
func TestAPFSVolumeNotSnapped(t *testing.T) {
	f := newMacFixture(t)
	_, src2 := f.twoVolumes(t)
	f.run.replies["tmutil listlocalsnapshots"] = []reply{{stdout: "tmutil-list-before.txt"}, {stdout: "tmutil-list-empty.txt"},
		{stdout: "tmutil-list-after.txt"}, {stdout: "tmutil-list-empty.txt"}}
	_, err := f.apfs.CreateSet(context.Background(), []string{f.src, src2}, f.label)
	if err == nil || !strings.Contains(err.Error(), "made no snapshot of volume") || !strings.Contains(err.Error(), "Time Machine > Options") {
		t.Fatalf("err %v", err)
	}
	if last := f.run.calls[len(f.run.calls)-1]; last != "tmutil deletelocalsnapshots "+testDate {
		t.Fatalf("calls %q: the snapshot made was not deleted", f.run.calls)
	}
	f.assertNothingLeft(t)
}

// TestAPFSSnapshotNotOurs: a date that a volume listed before tmutil ran
// is not ours: read, never deleted.
func TestAPFSSnapshotNotOurs(t *testing.T) {
	f := newMacFixture(t)
	f.run.replies["tmutil listlocalsnapshots"] = []reply{{stdout: "tmutil-list-after.txt"}}
	snap, err := f.apfs.CreateSet(context.Background(), []string{f.src}, f.label)
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Release(); err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(f.run.calls, func(c string) bool { return strings.Contains(c, "deletelocalsnapshots") }) {
		t.Fatalf("deleted a snapshot it did not make: %q", f.run.calls)
	}
	if !strings.Contains(strings.Join(snap.Notes(), "\n"), "existed before") {
		t.Fatalf("notes %q", snap.Notes())
	}
	f.assertNothingLeft(t)
}

// TestAPFSLocalsnapshotFails: when tmutil makes nothing, nothing is
// deleted and the labels go.
func TestAPFSLocalsnapshotFails(t *testing.T) {
	f := newMacFixture(t)
	f.run.replies["tmutil localsnapshot"] = []reply{{stderr: "mount_apfs-no-full-disk-access.txt", exit: 1}}
	_, err := f.apfs.CreateSet(context.Background(), []string{f.src}, f.label)
	if !errors.Is(err, errFullDiskAccess) {
		t.Fatalf("err %v", err)
	}
	f.assertCalls(t, "tmutil listlocalsnapshots "+f.vol, "tmutil localsnapshot")
	f.assertNothingLeft(t)
}

// TestAPFSDeleteTakesOnlyADate: tmutil deletelocalsnapshots given a mount
// point deletes every snapshot of the volume, so only a date is passed.
func TestAPFSDeleteTakesOnlyADate(t *testing.T) {
	f := newMacFixture(t)
	for _, bad := range []string{"/", f.vol, testSnap, "2026-12-01-104512; rm -rf /", ""} {
		if err := f.apfs.deleteSnapshot(context.Background(), bad); err == nil {
			t.Errorf("deleteSnapshot(%q) did not refuse", bad)
		}
	}
	if len(f.run.calls) > 0 {
		t.Fatalf("ran %q", f.run.calls)
	}
}

func TestParseTmutil(t *testing.T) {
	r := &replayRunner{t: t}
	for _, file := range []string{"tmutil-localsnapshot.txt", "tmutil-localsnapshot-purgeable.txt"} {
		if d, ok := parseCreatedDate(r.read(file)); !ok || d != testDate {
			t.Errorf("%s: date %q %v", file, d, ok)
		}
	}
	if _, ok := parseCreatedDate("Snapshots for disk /:\n"); ok {
		t.Error("found a date in a listing")
	}
	after := parseSnapshots(r.read("tmutil-list-after.txt"))
	if len(after) != 3 || after[1].Name != testSnap || after[1].Date != testDate {
		t.Errorf("after: %+v", after)
	}
	if s := parseSnapshots(r.read("tmutil-list-system.txt")); len(s) != 0 {
		t.Errorf("the header or the sealed system snapshot taken for Time Machine's: %+v", s)
	}
	if s := parseSnapshots(r.read("tmutil-list-catalina.txt")); len(s) != 2 || s[1].Name != "com.apple.TimeMachine.2026-12-01-104512" {
		t.Errorf("catalina: %+v", s)
	}
}

func TestRelInVolume(t *testing.T) {
	for _, tc := range []struct{ src, vol, want string }{
		{"/Users/me/Library/Mail", "/System/Volumes/Data", "Users/me/Library/Mail"}, // firmlink
		{"/System/Volumes/Data/Users/me", "/System/Volumes/Data", "Users/me"},
		{"/Volumes/Photos/Library", "/Volumes/Photos", "Library"},
		{"/Volumes/Photos", "/Volumes/Photos", "."},
	} {
		got, err := relInVolume(tc.src, tc.vol) // macOS paths, on every platform
		if err != nil || got != tc.want {
			t.Errorf("relInVolume(%s, %s) = %q, %v; want %q", tc.src, tc.vol, got, err, tc.want)
		}
	}
	if _, err := relInVolume("/opt/x", "/Volumes/Photos"); err == nil {
		t.Error("a path outside a volume other than Data was placed in it")
	}
}

// TestCommandErrorCauses: "Operation not permitted" means Full Disk Access
// for root and root for anyone else.
func TestCommandErrorCauses(t *testing.T) {
	said := "mount_apfs: volume could not be mounted: Operation not permitted\n"
	if err := commandError("mount_apfs", "", said, errors.New("exit status 77"), true); !errors.Is(err, errFullDiskAccess) {
		t.Errorf("as root: %v", err)
	}
	if err := commandError("mount_apfs", "", said, errors.New("exit status 77"), false); !errors.Is(err, errAPFSNotRoot) {
		t.Errorf("not root: %v", err)
	}
	if err := commandError("tmutil localsnapshot", "", "", errors.New("exit status 1"), true); err.Error() != "apfs: tmutil localsnapshot: exit status 1" {
		t.Errorf("without output: %v", err)
	}
}

// killedRun leaves what a run killed after mounting leaves: the mounted
// snapshot and its label.
func killedRun(t *testing.T, f *macFixture) {
	t.Helper()
	if _, err := f.apfs.CreateSet(context.Background(), []string{f.src}, f.label); err != nil {
		t.Fatal(err)
	}
	f.sys.mounts = []MountEntry{{From: testSnap + "@/dev/disk3s5", On: f.dir()}}
	f.run.calls = nil
	f.run.replies["tmutil listlocalsnapshots"] = []reply{{stdout: "tmutil-list-after.txt"}}
}

// TestAPFSLeftovers: a killed run's snapshot is found by its label; while
// its process lives it is left alone; once gone, cleanup unmounts it,
// deletes the snapshot by the label's date and removes the label.
func TestAPFSLeftovers(t *testing.T) {
	f := newMacFixture(t)
	killedRun(t, f)
	noClones := func(FSInfo) []string { return nil }
	f.sys.alive = true
	los, err := findAPFSLeftovers(f.sys, []string{f.src}, noClones)
	if err != nil || len(los) != 1 || !los[0].InUse || los[0].Kind != "apfs" || los[0].Path != f.dir() {
		t.Fatalf("leftovers %+v, %v", los, err)
	}
	if err := f.apfs.cleanupLeftovers(context.Background(), los); err != nil || len(f.run.calls) > 0 {
		t.Fatalf("cleaned up a live run's snapshot: %v %q", err, f.run.calls)
	}
	f.sys.alive = false
	los, _ = findAPFSLeftovers(f.sys, nil, noClones)
	if len(los) != 1 || los[0].InUse || !strings.Contains(los[0].Reason, "snapshot "+testDate) {
		t.Fatalf("leftovers %+v", los)
	}
	if err := f.apfs.cleanupLeftovers(context.Background(), los); err != nil {
		t.Fatal(err)
	}
	f.assertCalls(t, "umount "+f.dir(), "tmutil listlocalsnapshots "+f.vol, "tmutil deletelocalsnapshots "+testDate)
	f.assertNothingLeft(t)
}

// TestAPFSLeftoverClones: a clonefile staging directory of a killed run is
// found in its container and removed.
func TestAPFSLeftoverClones(t *testing.T) {
	f := newMacFixture(t)
	container := path.Join(f.vol, StagingDir)
	dir := path.Join(container, f.label.Name())
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := writeAPFSLabel(container, apfsLabel{Label: f.label, Volume: f.vol}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "c1"), []byte("clone"), 0o600); err != nil {
		t.Fatal(err)
	}
	los, err := findAPFSLeftovers(f.sys, []string{f.src}, func(v FSInfo) []string { return []string{path.Join(v.Mountpoint, StagingDir)} })
	if err != nil || len(los) != 1 || los[0].Kind != "clonefile" || los[0].InUse {
		t.Fatalf("leftovers %+v %v", los, err)
	}
	if err := f.apfs.cleanupLeftovers(context.Background(), los); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(container); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s left: %v", container, err)
	}
}

// TestAPFSDoctor: doctor lists each volume's snapshots, marks the one a
// stillpoint run left and where it is mounted.
func TestAPFSDoctor(t *testing.T) {
	f := newMacFixture(t)
	killedRun(t, f)
	r := f.apfs.doctor(context.Background(), []string{f.src})
	if len(r.Volumes) != 1 || len(r.Volumes[0].Snapshots) != 3 {
		t.Fatalf("report %+v", r)
	}
	for _, s := range r.Volumes[0].Snapshots {
		ours := s.Date == testDate
		if (s.Stillpoint != "") != ours || (s.MountedAt != "") != ours {
			t.Errorf("snapshot %+v: only %s is stillpoint's and mounted", s, testDate)
		}
	}
	if r.Volumes[0].Snapshots[1].Stillpoint != f.label.Name() || r.Volumes[0].Paths[0] != f.src {
		t.Errorf("report %+v", r.Volumes[0])
	}
}
