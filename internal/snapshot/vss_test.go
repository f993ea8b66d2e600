package snapshot

import (
	"context"
	"errors"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
	"github.com/stillpoint-backup/stillpoint/internal/view"
	"github.com/stillpoint-backup/stillpoint/internal/vss"
	"github.com/stillpoint-backup/stillpoint/internal/vss/vsstest"
)

// fakeVolumes maps path prefixes to volumes, and lists mounted folders.
type fakeVolumes struct {
	volumes map[string]string   // path prefix → volume
	mounts  map[string][]string // source → mounted folders below it
	bad     map[string]string   // volume → why VSS cannot snap it
}

func (f fakeVolumes) VolumeOf(p string) (string, error) {
	best, vol := "", ""
	for prefix, v := range f.volumes {
		if strings.HasPrefix(p, prefix) && len(prefix) > len(best) {
			best, vol = prefix, v
		}
	}
	if vol == "" {
		return "", errors.New("no volume")
	}
	return vol, nil
}

func (f fakeVolumes) MountsBelow(dir string) ([]string, error) { return f.mounts[dir], nil }
func (f fakeVolumes) Unsupported(v string) string              { return f.bad[v] }

var (
	testSQLWriter = vsstest.Writer{Name: "SqlServerWriter", Class: vss.GUID{Data1: 0xa65faa63}, Instance: vss.GUID{Data1: 1}}
	testSysWriter = vsstest.Writer{Name: "System Writer", Class: vss.GUID{Data1: 0xe8132975}, Instance: vss.GUID{Data1: 2}}
)

func fakeVSS(f *vsstest.Fake, vols fakeVolumes) *VSS {
	o := vss.DefaultOptions()
	o.Slice, o.Backoff = time.Millisecond, time.Millisecond
	return &VSS{Options: o, Factory: f.Factory(), Volumes: vols, Probe: func() error { return nil }}
}

func TestShadowViewPaths(t *testing.T) {
	rec := &recordingView{}
	root := &shadowView{rules: pathmap.Windows, volume: `C:\`, device: `\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy3`, inner: rec}
	mount := &shadowView{rules: pathmap.Windows, volume: `C:\data\disk2\`, device: `\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy4`, inner: rec}
	for _, c := range []struct {
		v       *shadowView
		in, out string
	}{
		{root, "/C/data/x.db", `\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy3\data\x.db`},
		{root, `C:\data\x.db`, `\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy3\data\x.db`},
		{root, "/c/Data/X.db", `\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy3\Data\X.db`},
		{root, "/C", `\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy3\`}, // the root needs its backslash
		{root, `C:\`, `\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy3\`},
		{root, "/D/other", "/D/other"}, // not this volume: untouched
		{mount, `C:\data\disk2`, `\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy4\`},
		{mount, "/C/data/disk2/a/b", `\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy4\a\b`},
		{mount, "/C/data/disk22/a", "/C/data/disk22/a"}, // whole components only
	} {
		if got := c.v.path(c.in); got != c.out {
			t.Errorf("%s on %s: %q, want %q", c.in, c.v.volume, got, c.out)
		}
	}
	if _, err := root.Open("/C/data/x.db"); err != nil || rec.last != `\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy3\data\x.db` {
		t.Fatalf("Open read %q (%v)", rec.last, err)
	}
}

type recordingView struct{ last string }

func (r *recordingView) Lstat(p string) (*view.Stat, error) { r.last = p; return &view.Stat{}, nil }
func (r *recordingView) ReadDir(p string) ([]string, error) { r.last = p; return nil, nil }
func (r *recordingView) Readlink(p string) (string, error)  { r.last = p; return "", nil }
func (r *recordingView) Xattrs(p string) ([]view.Xattr, error) {
	r.last = p
	return nil, nil
}
func (r *recordingView) Open(p string) (view.File, error) { r.last = p; return nil, nil }
func (r *recordingView) WindowsMeta(p string) (*view.WindowsMeta, error) {
	r.last = p
	return &view.WindowsMeta{SD: []byte{1}}, nil
}
func (r *recordingView) OpenStream(p, name string) (view.File, error) {
	r.last = p + ":" + name
	return &nopFile{}, nil
}

type nopFile struct{}

func (*nopFile) Read([]byte) (int, error)  { return 0, io.EOF }
func (*nopFile) Close() error              { return nil }
func (*nopFile) Stat() (*view.Stat, error) { return &view.Stat{}, nil }

// TestShadowViewWindowsMeta: security descriptors and alternate data
// streams of snapped files come from the shadow copy, through the stamp.
func TestShadowViewWindowsMeta(t *testing.T) {
	rec := &recordingView{}
	var v view.View = &stamped{View: &shadowView{rules: pathmap.Windows, volume: `C:\`, device: `\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy3`, inner: rec}, c: Application}
	wv, ok := v.(view.WindowsMetaView)
	if !ok {
		t.Fatal("a VSS route has no Windows metadata")
	}
	if m, err := wv.WindowsMeta("/C/data/x.db"); err != nil || len(m.SD) != 1 || rec.last != `\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy3\data\x.db` {
		t.Fatalf("WindowsMeta read %q: %+v %v", rec.last, m, err)
	}
	f, err := wv.OpenStream("/C/data/x.db", "Zone.Identifier")
	if err != nil || rec.last != `\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy3\data\x.db:Zone.Identifier` || OriginOf(f) != Application {
		t.Fatalf("OpenStream read %q (%v), origin %s", rec.last, err, OriginOf(f))
	}
}

func TestVSSCreateSetOneSetForEveryVolume(t *testing.T) {
	f := vsstest.New(testSQLWriter, testSysWriter)
	vols := fakeVolumes{
		volumes: map[string]string{`C:\`: `C:\`, `D:\`: `D:\`, `C:\data\disk2`: `C:\data\disk2\`, `C:\data\cd`: `C:\data\cd\`},
		mounts:  map[string][]string{`C:\data`: {`C:\data\disk2\`, `C:\data\cd\`}},
		bad:     map[string]string{`C:\data\cd\`: "VSS does not snap CD or DVD drives; read live"},
	}
	vols.volumes[`C:\data\skip`] = `C:\data\skip\`
	vols.mounts[`C:\data`] = append(vols.mounts[`C:\data`], `C:\data\skip\`)
	p := fakeVSS(f, vols)
	p.Excluded = func(path string) bool { return path == `C:\data\skip` }
	snap, err := p.CreateSet(context.Background(), []string{`C:\data`, `C:\Users\me`, `D:\db`}, Label{})
	if err != nil {
		t.Fatal(err)
	}
	var added []string
	for _, c := range f.Calls() {
		if strings.HasPrefix(c, "AddToSnapshotSet") {
			added = append(added, c)
		}
	}
	want := []string{`AddToSnapshotSet(C:\)`, `AddToSnapshotSet(C:\data\disk2\)`, `AddToSnapshotSet(D:\)`}
	if !slices.Equal(added, want) || f.Attempts() != 1 {
		t.Fatalf("one set of each volume once, the CD and the excluded mount left out: got %v in %d sets", added, f.Attempts())
	}
	if snap.Consistency() != Application || len(snap.(*vssSnapshot).Warnings()) != 0 {
		t.Fatalf("consistency %s, warnings %v", snap.Consistency(), snap.(*vssSnapshot).Warnings())
	}
	if !strings.Contains(strings.Join(snap.Notes(), "\n"), `2 writer(s) checked`) {
		t.Fatalf("notes: %v", snap.Notes())
	}
	if err := snap.Release(); err != nil {
		t.Fatal(err)
	}
	if err := snap.Release(); err != nil {
		t.Fatal("second Release:", err)
	}
	calls := f.Calls()
	if n := len(calls); calls[n-1] != "Release" || !slices.Contains(calls, "BackupComplete") || f.Live() != 0 {
		t.Fatalf("Release must complete the backup and release the components: %v", calls)
	}
	ws := snap.(*vssSnapshot).Writers()
	if len(ws) != 2 || ws[0].State != "VSS_WS_STABLE" || ws[0].Failed {
		t.Fatalf("writers after release: %+v", ws)
	}
}

func TestVSSFailedWriterLowersToCrash(t *testing.T) {
	w := testSQLWriter
	w.FailAt, w.Failure = vss.PhaseDoSnapshotSet, vss.VSS_E_WRITERERROR_NONRETRYABLE
	f := vsstest.New(w, testSysWriter)
	p := fakeVSS(f, fakeVolumes{volumes: map[string]string{`C:\`: `C:\`}})
	snap, err := p.CreateSet(context.Background(), []string{`C:\db`}, Label{})
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	if snap.Consistency() != Crash {
		t.Fatalf("consistency %s, want crash", snap.Consistency())
	}
	warn := strings.Join(snap.(*vssSnapshot).Warnings(), "\n")
	for _, s := range []string{`"SqlServerWriter"`, "VSS_WS_FAILED_AT_FREEZE", "VSS_E_WRITERERROR_NONRETRYABLE", `C:\db`, "crash-consistent", "every source"} {
		if !strings.Contains(warn, s) {
			t.Errorf("warning %q does not say %s", warn, s)
		}
	}
	ws := snap.(*vssSnapshot).Writers()
	if !ws[0].Failed || ws[0].FailedAt != vss.PhaseDoSnapshotSet || ws[0].Failure != "VSS_E_WRITERERROR_NONRETRYABLE" || ws[1].Failed {
		t.Fatalf("writer results: %+v", ws)
	}
}

// routeConsistency is what the view stamps on files below each route.
func routeConsistency(t *testing.T, snap Snapshot) map[string]Consistency {
	t.Helper()
	out := map[string]Consistency{}
	for _, rt := range snap.View().(*router).routes {
		out[rt.prefix] = rt.v.(*stamped).c
	}
	return out
}

// TestVSSFailedWriterLowersOnlyItsSources: a failed SQL writer whose
// files are on D:\sql (its metadata says so, through an environment
// variable) lowers the D:\sql source, not C:\users, and its result names
// exactly the lowered source.
func TestVSSFailedWriterLowersOnlyItsSources(t *testing.T) {
	t.Setenv("STILLPOINT_TEST_SQLROOT", `D:\SQL`)
	w := testSQLWriter
	w.FailAt, w.Failure = vss.PhaseDoSnapshotSet, vss.VSS_E_WRITERERROR_NONRETRYABLE
	w.Files = []vss.FileDesc{{Path: `%STILLPOINT_TEST_SQLROOT%\data`, Filespec: "*.mdf"}, {Path: `D:\sql\log\`, Filespec: "*.ldf"}}
	sys := testSysWriter
	sys.Files = []vss.FileDesc{{Path: `C:\Windows\System32\config`, Filespec: "*"}}
	f := vsstest.New(w, sys)
	vols := fakeVolumes{
		volumes: map[string]string{`C:\`: `C:\`, `D:\`: `D:\`, `D:\sql\disk2`: `D:\sql\disk2\`},
		mounts:  map[string][]string{`D:\sql`: {`D:\sql\disk2\`}},
	}
	snap, err := fakeVSS(f, vols).CreateSet(context.Background(), []string{`C:\users`, `D:\sql`}, Label{})
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	vs := snap.(*vssSnapshot)
	if c := vs.ConsistencyOf(`D:\sql`); c != Crash {
		t.Errorf("D:\\sql holds the failed writer's files: %s, want crash", c)
	}
	if c := vs.ConsistencyOf(`C:\users`); c != Application {
		t.Errorf("C:\\users holds none of them: %s, want application", c)
	}
	if snap.Consistency() != Crash {
		t.Errorf("the snapshot as a whole is %s, want its weakest source's, crash", snap.Consistency())
	}
	// the mounted folder D:\sql\disk2 holds none of the writer's files
	want := map[string]Consistency{`C:\users`: Application, `D:\sql`: Crash, `D:\sql\disk2`: Application}
	if got := routeConsistency(t, snap); !maps.Equal(got, want) {
		t.Errorf("files stamped %v, want %v", got, want)
	}
	ws := vs.Writers()
	if !ws[0].Failed || !slices.Equal(ws[0].Sources, []string{`D:\sql`}) {
		t.Errorf("the failed writer lowered %v, want exactly [D:\\sql]", ws[0].Sources)
	}
	if ws[1].Failed || ws[1].Sources != nil {
		t.Errorf("a writer that did not fail lowered %v", ws[1].Sources)
	}
	warn := strings.Join(vs.Warnings(), "\n")
	if !strings.Contains(warn, `the files of D:\sql are crash-consistent`) || strings.Contains(warn, `C:\users`) {
		t.Errorf("warning %q", warn)
	}
}

// TestVSSFailedWriterWithoutFilesLowersAll: a writer whose metadata names
// no files could hold data anywhere: every source is lowered and named.
func TestVSSFailedWriterWithoutFilesLowersAll(t *testing.T) {
	for name, files := range map[string][]vss.FileDesc{
		"no file descriptors": nil,
		"a volume GUID path":  {{Path: `\\?\Volume{3a7b1c2d-0000-0000-0000-100000000000}\sql`, Filespec: "*"}},
		"an unset variable":   {{Path: `%STILLPOINT_NO_SUCH_VARIABLE%\sql`, Filespec: "*"}},
	} {
		w := testSQLWriter
		w.FailAt, w.Failure, w.Files = vss.PhasePrepareForBackup, vss.VSS_E_WRITERERROR_NONRETRYABLE, files
		f := vsstest.New(w, testSysWriter)
		snap, err := fakeVSS(f, fakeVolumes{volumes: map[string]string{`C:\`: `C:\`, `D:\`: `D:\`}}).
			CreateSet(context.Background(), []string{`C:\users`, `D:\sql`}, Label{})
		if err != nil {
			t.Fatal(err)
		}
		vs := snap.(*vssSnapshot)
		for _, src := range []string{`C:\users`, `D:\sql`} {
			if c := vs.ConsistencyOf(src); c != Crash {
				t.Errorf("%s: %s is %s, want crash", name, src, c)
			}
		}
		if ws := vs.Writers(); !slices.Equal(ws[0].Sources, []string{`C:\users`, `D:\sql`}) || ws[1].Sources != nil {
			t.Errorf("%s: lowered %v and %v", name, ws[0].Sources, ws[1].Sources)
		}
		if warn := strings.Join(vs.Warnings(), "\n"); !strings.Contains(warn, "counts for every source") {
			t.Errorf("%s: warning %q does not say why every source", name, warn)
		}
		if err := snap.Release(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestVSSFailedWriterElsewhereLowersNone: a failed writer whose files are
// on no source lowers nothing, and says so.
func TestVSSFailedWriterElsewhereLowersNone(t *testing.T) {
	w := testSQLWriter
	w.FailAt, w.Failure = vss.PhaseDoSnapshotSet, vss.VSS_E_WRITERERROR_TIMEOUT
	w.Files = []vss.FileDesc{{Path: `E:\sql\data`, Filespec: "*.mdf"}}
	f := vsstest.New(w, testSysWriter)
	p := fakeVSS(f, fakeVolumes{volumes: map[string]string{`C:\`: `C:\`}})
	p.Options.Retries = 0
	snap, err := p.CreateSet(context.Background(), []string{`C:\users`}, Label{})
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	vs := snap.(*vssSnapshot)
	if snap.Consistency() != Application || vs.Writers()[0].Sources != nil || !vs.Writers()[0].Failed {
		t.Fatalf("consistency %s, writers %+v", snap.Consistency(), vs.Writers())
	}
	if warn := strings.Join(vs.Warnings(), "\n"); !strings.Contains(warn, `no source holds its files (E:\sql\data)`) {
		t.Errorf("warning %q", warn)
	}
}

func TestVSSDetect(t *testing.T) {
	f := vsstest.New()
	p := fakeVSS(f, fakeVolumes{volumes: map[string]string{`C:\`: `C:\`, `Z:\`: `Z:\`}, bad: map[string]string{`Z:\`: shareReason}})
	for _, c := range []struct{ path, reason string }{
		{`\\server\share\dir`, shareReason},
		{`\\?\UNC\server\share\dir`, shareReason},
		{`Z:\mapped`, `volume Z:\: ` + shareReason},
	} {
		fit, err := p.Detect(c.path)
		if err != nil || fit.OK || fit.Reason != c.reason {
			t.Errorf("%s: %+v %v, want not fitting: %s", c.path, fit, err, c.reason)
		}
	}
	fit, err := p.Detect(`C:\data`)
	if err != nil || !fit.OK || fit.Consistency != Application {
		t.Fatalf("C:\\data: %+v %v", fit, err)
	}
	notElevated := fakeVSS(f, fakeVolumes{volumes: map[string]string{`C:\`: `C:\`}})
	notElevated.Probe = func() error { return errors.New("VSS needs an elevated process") }
	if fit, _ := notElevated.Detect(`C:\data`); fit.OK || fit.Reason != `volume C:\: VSS needs an elevated process` {
		t.Fatalf("not elevated: %+v", fit)
	}
}

// planWith plans sources (real directories, as NewPlan checks them) with
// a VSS provider that maps the first to C:\ and the second to D:\.
func planWith(t *testing.T, f *vsstest.Fake, policies ...Policy) (*Plan, []string, error) {
	t.Helper()
	var srcs []Source
	var dirs []string
	vols := fakeVolumes{volumes: map[string]string{}}
	for i, pol := range policies {
		d := t.TempDir()
		if i == 1 && runtime.GOOS == "linux" {
			// another filesystem where there is one: still one VSS set
			if shm, err := os.MkdirTemp("/dev/shm", "vss-test-"); err == nil {
				d = shm
				t.Cleanup(func() { os.RemoveAll(shm) })
			}
		}
		dirs = append(dirs, d)
		vols.volumes[d] = []string{`C:\`, `D:\`}[i%2]
		srcs = append(srcs, Source{Path: d, Policy: pol})
	}
	p := fakeVSS(f, vols)
	p.Options.Retries = 0
	plan, err := NewPlan(srcs, Options{Providers: []Provider{p}, KeepLeftovers: true})
	return plan, dirs, err
}

func TestPlanOneVSSSetAcrossFilesystems(t *testing.T) {
	w := testSQLWriter
	w.FailAt, w.Failure = vss.PhasePrepareForBackup, vss.VSS_E_WRITERERROR_OUTOFRESOURCES
	f := vsstest.New(w, testSysWriter)
	plan, dirs, err := planWith(t, f, On, Required)
	if err != nil {
		t.Fatal(err)
	}
	set, err := plan.Create(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if set.Sources[0].FS.Mountpoint == set.Sources[1].FS.Mountpoint {
		t.Logf("both sources on %s: the test does not show one set across filesystems here", set.Sources[0].FS.Mountpoint)
	}
	if f.Attempts() != 1 || len(set.Snapshots()) != 1 {
		t.Fatalf("want one VSS set for both sources, got %d attempts, %d snapshots", f.Attempts(), len(set.Snapshots()))
	}
	for _, sp := range set.Sources {
		if sp.Provider != "vss" || sp.Consistency != Crash {
			t.Errorf("%s: %s %s, want vss crash (a writer failed)", sp.Path, sp.Provider, sp.Consistency)
		}
	}
	if plan.Sources[0].Consistency != Application {
		t.Fatal("the set changed the plan")
	}
	if !strings.Contains(strings.Join(set.Warnings, "\n"), "SqlServerWriter") {
		t.Fatalf("warnings: %v", set.Warnings)
	}
	ws := set.Writers()
	if len(ws) != 2 || !ws[0].Failed || !slices.Equal(ws[0].Sources, dirs) {
		t.Fatalf("writers: %+v", ws)
	}
	if err := set.Release(); err != nil {
		t.Fatal(err)
	}
	if f.Live() != 0 {
		t.Fatal("components left after Release")
	}
}

// The set records each source's own level: a set-level snapshot whose
// writer failed on the second source's files makes that one crash-
// consistent, not the first.
func TestSetKeepsEachSourcesOwnConsistency(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	p := &perSourceProvider{crash: b}
	plan, err := NewPlan([]Source{{Path: a, Policy: On}, {Path: b, Policy: On}}, Options{Providers: []Provider{p}, KeepLeftovers: true})
	if err != nil {
		t.Fatal(err)
	}
	set, err := plan.Create(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer set.Release()
	if p.sets != 1 {
		t.Fatalf("%d sets made, want one for both sources", p.sets)
	}
	got := map[string]Consistency{}
	for _, sp := range set.Sources {
		got[sp.Path] = sp.Consistency
	}
	if got[a] != Application || got[b] != Crash {
		t.Fatalf("consistency by source %v, want %s application and %s crash", got, a, b)
	}
}

// perSourceProvider makes one set for all its sources, of which one is
// crash-consistent (as when a VSS writer of its files failed).
type perSourceProvider struct {
	crash string
	sets  int
}

func (p *perSourceProvider) Name() string { return "perSource" }
func (p *perSourceProvider) Detect(string) (Fit, error) {
	return Fit{Provider: p.Name(), OK: true, Consistency: Application}, nil
}
func (p *perSourceProvider) Create(ctx context.Context, sources []string, l Label) (Snapshot, error) {
	return p.CreateSet(ctx, sources, l)
}
func (p *perSourceProvider) CreateSet(_ context.Context, sources []string, _ Label) (Snapshot, error) {
	p.sets++
	return &perSourceSnapshot{sources: sources, crash: p.crash}, nil
}

type perSourceSnapshot struct {
	sources []string
	crash   string
}

func (s *perSourceSnapshot) Provider() string         { return "perSource" }
func (s *perSourceSnapshot) Consistency() Consistency { return Crash }
func (s *perSourceSnapshot) Sources() []string        { return s.sources }
func (s *perSourceSnapshot) View() view.View          { return &view.Live{} }
func (s *perSourceSnapshot) Notes() []string          { return nil }
func (s *perSourceSnapshot) Release() error           { return nil }
func (s *perSourceSnapshot) ConsistencyOf(src string) Consistency {
	if src == s.crash {
		return Crash
	}
	return Application
}

func TestPlanVSSFailureFallsBackByPolicy(t *testing.T) {
	f := vsstest.New(testSQLWriter, testSysWriter)
	f.Fail("DoSnapshotSet", vss.VSS_E_INSUFFICIENT_STORAGE)
	plan, dirs, err := planWith(t, f, On, Auto)
	if err != nil {
		t.Fatal(err)
	}
	set, err := plan.Create(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer set.Release()
	for _, sp := range set.Sources {
		if sp.Provider != "none" || sp.Consistency != Live || !strings.Contains(sp.Note, "VSS_E_INSUFFICIENT_STORAGE") {
			t.Errorf("%s: %s %s %q, want live with the reason", sp.Path, sp.Provider, sp.Consistency, sp.Note)
		}
	}
	if len(set.Warnings) != 1 || !strings.Contains(set.Warnings[0], dirs[0]) || !strings.Contains(set.Warnings[0], "reading live") {
		t.Fatalf("policy on warns: %v", set.Warnings)
	}
	if !strings.Contains(strings.Join(set.Notes, "\n"), dirs[1]) {
		t.Fatalf("policy auto notes: %v", set.Notes)
	}
	if set.Consistency() != Live {
		t.Fatalf("consistency %s", set.Consistency())
	}
	calls := f.Calls()
	if n := len(calls); !slices.Equal(calls[n-2:], []string{"AbortBackup", "Release"}) || f.Live() != 0 {
		t.Fatalf("calls %v", calls)
	}
}

func TestPlanVSSFailureRequired(t *testing.T) {
	f := vsstest.New(testSQLWriter, testSysWriter)
	f.Fail("AddToSnapshotSet", vss.VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED)
	plan, dirs, err := planWith(t, f, Required, On)
	if err != nil {
		t.Fatal(err)
	}
	_, err = plan.Create(context.Background())
	if err == nil {
		t.Fatal("a required source was read live")
	}
	for _, s := range []string{dirs[0], "policy required", "VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED", "vssadmin delete shadows"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %s", err, s)
		}
	}
	if strings.Contains(err.Error(), dirs[1]) {
		t.Errorf("the source with policy on is not an error: %v", err)
	}
	if f.Live() != 0 {
		t.Fatal("components left")
	}
}

func TestVSSReport(t *testing.T) {
	w := testSQLWriter
	f := vsstest.New(w, testSysWriter)
	f.Shadows = []vss.SnapshotProperties{{ID: vss.GUID{Data1: 9}, DeviceObject: `\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy2`, OriginalVolume: `\\?\Volume{x}\`}}
	rep := vssReport(vss.NewRequester(f.Factory(), fakeVSS(f, fakeVolumes{}).Options), fakeVolumes{}, nil)
	if rep.Error != "" || len(rep.Writers) != 2 || rep.Writers[0].Name != "SqlServerWriter" || rep.Writers[0].State != "VSS_WS_STABLE" ||
		len(rep.Shadows) != 1 || rep.Shadows[0].Device != f.Shadows[0].DeviceObject {
		t.Fatalf("report %+v", rep)
	}
	f.Fail("InitializeForBackup", vss.E_ACCESSDENIED)
	if rep := vssReport(vss.NewRequester(f.Factory(), vss.DefaultOptions()), fakeVolumes{}, nil); !strings.Contains(rep.Error, "E_ACCESSDENIED") {
		t.Fatalf("report %+v", rep)
	}
	if f.Live() != 0 {
		t.Fatal("components left")
	}
}

// TestVSSReportProviders: doctor lists the providers as vssadmin does and,
// for each, which of the paths it was given it can snap, and why not.
func TestVSSReportProviders(t *testing.T) {
	f := vsstest.New(testSysWriter)
	hw := vss.GUID{Data1: 0x4a}
	f.Providers = []vss.ProviderProperties{
		{ID: vss.MicrosoftProvider, Name: "Microsoft Software Shadow Copy provider 1.0", Type: vss.ProviderSystem, Version: "1.0.0.7"},
		{ID: hw, Name: "Array Hardware Provider", Type: vss.ProviderHardware, Version: "3.2"},
	}
	f.Supports = map[vss.GUID][]string{vss.MicrosoftProvider: {`C:\`, `D:\`}, hw: {`D:\`}}
	f.VolumeErrors = map[string]vss.HRESULT{`E:\`: vss.VSS_E_OBJECT_NOT_FOUND}
	vols := fakeVolumes{
		volumes: map[string]string{`C:\`: `C:\`, `D:\`: `D:\`, `E:\`: `E:\`, `R:\`: `R:\`},
		bad:     map[string]string{`R:\`: "VSS does not snap CD or DVD drives; read live"},
	}
	paths := []string{`C:\users`, `D:\sql`, `D:\sql2`, `E:\x`, `R:\disc`, `\\server\share\dir`}
	rep := vssReport(vss.NewRequester(f.Factory(), fakeVSS(f, vols).Options), vols, paths)
	if rep.Error != "" || rep.ProvidersError != "" || len(rep.Providers) != 2 {
		t.Fatalf("report %+v", rep)
	}
	ms, arr := rep.Providers[0], rep.Providers[1]
	if ms.Name != "Microsoft Software Shadow Copy provider 1.0" || ms.ID != "{b5946137-7b9f-4925-af80-51abd60b20d5}" || ms.Type != "System" || ms.Version != "1.0.0.7" {
		t.Errorf("provider %+v", ms)
	}
	if !slices.Equal(ms.Fits, []string{`C:\users`, `D:\sql`, `D:\sql2`}) || !slices.Equal(arr.Fits, []string{`D:\sql`, `D:\sql2`}) {
		t.Errorf("fits: %v and %v", ms.Fits, arr.Fits)
	}
	why := map[string]string{}
	for _, n := range arr.DoesNotFit {
		why[n.Path] = n.Reason
	}
	for path, want := range map[string]string{`C:\users`: `this provider cannot snap volume C:\`, `E:\x`: "VSS_E_OBJECT_NOT_FOUND",
		`R:\disc`: "CD or DVD", `\\server\share\dir`: shareReason} {
		if !strings.Contains(why[path], want) {
			t.Errorf("%s does not fit the hardware provider because %q, want it to say %q", path, why[path], want)
		}
	}
	// every volume once, shares and CDs not asked about
	var asked []string
	for _, c := range f.Calls() {
		if strings.HasPrefix(c, "IsVolumeSupported("+vss.MicrosoftProvider.String()) {
			asked = append(asked, c)
		}
	}
	ms0 := "IsVolumeSupported(" + vss.MicrosoftProvider.String() + ","
	if want := []string{ms0 + `C:\)`, ms0 + `D:\)`, ms0 + `E:\)`}; !slices.Equal(asked, want) {
		t.Errorf("asked %v, want %v", asked, want)
	}
	f.Fail("QueryProviders", vss.E_ACCESSDENIED)
	rep = vssReport(vss.NewRequester(f.Factory(), fakeVSS(f, vols).Options), vols, paths)
	if !strings.Contains(rep.ProvidersError, "E_ACCESSDENIED") || len(rep.Writers) != 1 || rep.Providers == nil {
		t.Fatalf("a failed provider query keeps the writers and says why: %+v", rep)
	}
	if f.Live() != 0 {
		t.Fatal("components left")
	}
}
