package vss_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/vss"
	"github.com/stillpoint-backup/stillpoint/internal/vss/vsstest"
)

var (
	sqlWriter = vsstest.Writer{Name: "SqlServerWriter", Class: vss.GUID{Data1: 0xa65faa63}, Instance: vss.GUID{Data1: 1}}
	regWriter = vsstest.Writer{Name: "Registry Writer", Class: vss.GUID{Data1: 0xafbab4a2}, Instance: vss.GUID{Data1: 2}}
)

// fastOptions keep the tests quick: short slices and back-off.
func fastOptions() vss.Options {
	o := vss.DefaultOptions()
	o.Slice = 5 * time.Millisecond
	o.Backoff = 20 * time.Millisecond
	o.PhaseTimeout = 2 * time.Second
	o.Timeout = 10 * time.Second
	return o
}

// attempt is the calls of one successful set, after "Create".
func attempt(volumes ...string) []string {
	c := []string{"InitializeForBackup", "SetContext(0)", "SetBackupState(false,false,5,false)",
		"GatherWriterMetadata", "GetWriterMetadataCount", "GetWriterMetadata(0)", "GetWriterMetadata(1)", "FreeWriterMetadata",
		"StartSnapshotSet"}
	for _, v := range volumes {
		c = append(c, "AddToSnapshotSet("+v+")")
	}
	status := []string{"GatherWriterStatus", "GetWriterStatusCount", "GetWriterStatus(0)", "GetWriterStatus(1)", "FreeWriterStatus"}
	c = append(c, "PrepareForBackup")
	c = append(c, status...)
	c = append(c, "DoSnapshotSet")
	c = append(c, status...)
	for range volumes {
		c = append(c, "GetSnapshotProperties")
	}
	return c
}

func complete() []string {
	return []string{"BackupComplete", "GatherWriterStatus", "GetWriterStatusCount", "GetWriterStatus(0)", "GetWriterStatus(1)", "FreeWriterStatus", "Release"}
}

func concat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func wantCalls(t *testing.T, f *vsstest.Fake, want []string) {
	t.Helper()
	got := f.Calls()
	if !slices.Equal(got, want) {
		t.Fatalf("calls:\n got  %s\n want %s", strings.Join(got, " "), strings.Join(want, " "))
	}
	if f.Live() != 0 {
		t.Fatalf("%d components not released", f.Live())
	}
}

// wantAbortedAttempts asserts that every attempt but a successful last
// one ended with AbortBackup then Release (when it got past
// StartSnapshotSet) or Release alone.
func wantAbortedAttempts(t *testing.T, calls []string, lastSucceeded bool) {
	t.Helper()
	var attempts [][]string
	for _, c := range calls {
		if c == "Create" {
			attempts = append(attempts, nil)
		}
		attempts[len(attempts)-1] = append(attempts[len(attempts)-1], c)
	}
	for i, a := range attempts {
		if lastSucceeded && i == len(attempts)-1 {
			continue
		}
		n := len(a)
		// a set exists once StartSnapshotSet succeeded (a call follows it other than the final Release)
		i := slices.Index(a, "StartSnapshotSet")
		started := i >= 0 && i < n-2
		if a[n-1] != "Release" {
			t.Fatalf("attempt %d does not end with Release: %v", i+1, a)
		}
		if started && a[n-2] != "AbortBackup" {
			t.Fatalf("attempt %d got past StartSnapshotSet but was not aborted before Release: %v", i+1, a)
		}
		if !started && slices.Contains(a, "AbortBackup") {
			t.Fatalf("attempt %d aborted before a set was started: %v", i+1, a)
		}
	}
}

func TestSetOfTwoVolumesInOneSet(t *testing.T) {
	f := vsstest.New(sqlWriter, regWriter)
	set, err := vss.NewRequester(f.Factory(), fastOptions()).Create(context.Background(), []string{`C:\`, `D:\`})
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := set.Device(`c:\`); !ok || !strings.HasPrefix(d, `\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy`) {
		t.Fatalf("device of C: = %q, %v", d, ok)
	}
	if len(set.Snapshots) != 2 || set.Snapshots[0].Device == set.Snapshots[1].Device {
		t.Fatalf("want two shadow copies of one set, got %+v", set.Snapshots)
	}
	if set.Attempts != 1 || len(set.FailedWriters()) != 0 {
		t.Fatalf("attempts %d, failed writers %v", set.Attempts, set.FailedWriters())
	}
	if f.Live() != 1 {
		t.Fatal("the components object must live until the backup has read the files")
	}
	if err := set.Complete(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := set.Complete(context.Background()); err != nil {
		t.Fatal("second Complete:", err)
	}
	wantCalls(t, f, concat([]string{"Create"}, attempt(`C:\`, `D:\`), complete()))
	for _, w := range set.Writers() {
		var phases []string
		for _, c := range w.Checks {
			phases = append(phases, c.Phase+"="+c.State.String())
		}
		want := "PrepareForBackup=VSS_WS_STABLE DoSnapshotSet=VSS_WS_WAITING_FOR_BACKUP_COMPLETE BackupComplete=VSS_WS_STABLE"
		if strings.Join(phases, " ") != want {
			t.Fatalf("writer %s checks: %v, want %s", w.Name, phases, want)
		}
	}
}

func TestWriterFailsAtPrepareLowersConsistency(t *testing.T) {
	w := sqlWriter
	w.FailAt, w.Failure = vss.PhasePrepareForBackup, vss.VSS_E_WRITERERROR_NONRETRYABLE
	f := vsstest.New(w, regWriter)
	set, err := vss.NewRequester(f.Factory(), fastOptions()).Create(context.Background(), []string{`C:\`})
	if err != nil {
		t.Fatal(err)
	}
	failed := set.FailedWriters()
	if len(failed) != 1 || failed[0].Name != "SqlServerWriter" {
		t.Fatalf("failed writers: %+v", failed)
	}
	c, _ := failed[0].Failed()
	if c.Phase != vss.PhasePrepareForBackup || c.State != vss.WriterFailedAtPrepareBackup || c.Failure != vss.VSS_E_WRITERERROR_NONRETRYABLE {
		t.Fatalf("failed check: %+v", c)
	}
	if err := set.Complete(context.Background()); err != nil {
		t.Fatal(err)
	}
	calls := f.Calls()
	if slices.Contains(calls, "AbortBackup") || calls[len(calls)-1] != "Release" || f.Attempts() != 1 {
		t.Fatalf("a writer that fails for good is not retried and does not abort the set: %v", calls)
	}
}

func TestRequiredWriterFailsAtFreeze(t *testing.T) {
	w := sqlWriter
	w.FailAt, w.Failure = vss.PhaseDoSnapshotSet, vss.VSS_E_WRITERERROR_NONRETRYABLE
	f := vsstest.New(w, regWriter)
	o := fastOptions()
	o.Require = []string{"sqlserverwriter"}
	_, err := vss.NewRequester(f.Factory(), o).Create(context.Background(), []string{`C:\`})
	if err == nil {
		t.Fatal("a required writer failed to freeze, and the set was made")
	}
	for _, s := range []string{"DoSnapshotSet", `"SqlServerWriter"`, "VSS_WS_FAILED_AT_FREEZE", "VSS_E_WRITERERROR_NONRETRYABLE (0x800423F4)", "required"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %s", err, s)
		}
	}
	calls := f.Calls()
	if n := len(calls); calls[n-2] != "AbortBackup" || calls[n-1] != "Release" || f.Live() != 0 {
		t.Fatalf("want AbortBackup then Release: %v", calls)
	}
}

func TestRetryableWriterErrorRetriesTheSet(t *testing.T) {
	w := sqlWriter
	w.FailAt, w.Failure, w.FailTimes = vss.PhaseDoSnapshotSet, vss.VSS_E_WRITERERROR_RETRYABLE, 1
	f := vsstest.New(w, regWriter)
	set, err := vss.NewRequester(f.Factory(), fastOptions()).Create(context.Background(), []string{`C:\`})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Complete(context.Background())
	if set.Attempts != 2 || len(set.FailedWriters()) != 0 {
		t.Fatalf("attempts %d, failed %v", set.Attempts, set.FailedWriters())
	}
	if len(set.Notes) != 1 || !strings.Contains(set.Notes[0], "SqlServerWriter") || !strings.Contains(set.Notes[0], "1 of 2") {
		t.Fatalf("notes: %q", set.Notes)
	}
	wantAbortedAttempts(t, f.Calls(), true)
}

func TestRetryableWriterErrorExhausted(t *testing.T) {
	w := sqlWriter
	w.FailAt, w.Failure = vss.PhasePrepareForBackup, vss.VSS_E_WRITERERROR_TIMEOUT
	f := vsstest.New(w, regWriter)
	o := fastOptions()
	o.Retries = 1
	set, err := vss.NewRequester(f.Factory(), o).Create(context.Background(), []string{`C:\`})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Complete(context.Background())
	// the last attempt takes the set without the writer
	if set.Attempts != 2 || len(set.FailedWriters()) != 1 {
		t.Fatalf("attempts %d, failed %v", set.Attempts, set.FailedWriters())
	}
}

func TestSnapshotSetInProgressTwiceThenSuccess(t *testing.T) {
	f := vsstest.New(sqlWriter, regWriter)
	f.Fail("DoSnapshotSet", vss.VSS_E_SNAPSHOT_SET_IN_PROGRESS, vss.VSS_E_SNAPSHOT_SET_IN_PROGRESS)
	o := fastOptions()
	o.Retries = 0 // in-progress waits do not count as retries
	start := time.Now()
	set, err := vss.NewRequester(f.Factory(), o).Create(context.Background(), []string{`C:\`})
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 3*o.Backoff {
		t.Fatalf("backed off %s, want at least %s (20 ms, then 40 ms)", el, 3*o.Backoff)
	}
	if set.Attempts != 3 || len(set.Notes) != 2 || !strings.Contains(set.Notes[1], "after 40ms") {
		t.Fatalf("attempts %d, notes %q", set.Attempts, set.Notes)
	}
	if err := set.Complete(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantAbortedAttempts(t, f.Calls(), true)
	if f.Live() != 0 {
		t.Fatal("components left")
	}
}

func TestSnapshotSetInProgressPastTheDeadline(t *testing.T) {
	f := vsstest.New(sqlWriter, regWriter)
	f.Fail("StartSnapshotSet", slices.Repeat([]vss.HRESULT{vss.VSS_E_SNAPSHOT_SET_IN_PROGRESS}, 50)...)
	o := fastOptions()
	o.Timeout = 200 * time.Millisecond
	_, err := vss.NewRequester(f.Factory(), o).Create(context.Background(), []string{`C:\`})
	if err == nil || !strings.Contains(err.Error(), "VSS_E_SNAPSHOT_SET_IN_PROGRESS") || !strings.Contains(err.Error(), "gave up") ||
		!strings.Contains(err.Error(), "another backup") {
		t.Fatalf("want a give-up error naming the other set, got %v", err)
	}
	wantAbortedAttempts(t, f.Calls(), false)
	if f.Live() != 0 {
		t.Fatal("components left")
	}
}

func TestProviderHangsPastThePhaseTimeout(t *testing.T) {
	f := vsstest.New(sqlWriter, regWriter)
	f.Hang("DoSnapshotSet")
	o := fastOptions()
	o.PhaseTimeout = 100 * time.Millisecond
	start := time.Now()
	_, err := vss.NewRequester(f.Factory(), o).Create(context.Background(), []string{`C:\`})
	if err == nil {
		t.Fatal("a hanging DoSnapshotSet made a set")
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("the timeout took %s", el)
	}
	for _, s := range []string{"DoSnapshotSet did not finish within 100ms", "vss.phase-timeout", "cancelled and aborted"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
	calls := f.Calls()
	if n := len(calls); !slices.Equal(calls[n-3:], []string{"DoSnapshotSet.Cancel", "AbortBackup", "Release"}) {
		t.Fatalf("want Cancel, AbortBackup, Release at the end: %v", calls)
	}
	if f.Attempts() != 1 || f.Live() != 0 {
		t.Fatalf("attempts %d, live %d", f.Attempts(), f.Live())
	}
}

func TestHangingSetEndsWithTheRun(t *testing.T) {
	f := vsstest.New(sqlWriter, regWriter)
	f.Hang("PrepareForBackup")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := vss.NewRequester(f.Factory(), fastOptions()).Create(ctx, []string{`C:\`})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "PrepareForBackup") {
		t.Fatalf("want a cancelled PrepareForBackup, got %v", err)
	}
	calls := f.Calls()
	if n := len(calls); !slices.Equal(calls[n-3:], []string{"PrepareForBackup.Cancel", "AbortBackup", "Release"}) {
		t.Fatalf("calls: %v", calls)
	}
}

func TestUnexpectedProviderError(t *testing.T) {
	f := vsstest.New(sqlWriter, regWriter)
	f.Fail("DoSnapshotSet", vss.VSS_E_UNEXPECTED_PROVIDER_ERROR)
	_, err := vss.NewRequester(f.Factory(), fastOptions()).Create(context.Background(), []string{`C:\`, `E:\`})
	if err == nil {
		t.Fatal("want an error")
	}
	for _, s := range []string{"VSS DoSnapshotSet", "0x8004230F", "third-party", "provider: microsoft"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
	if vss.Code(err) != vss.VSS_E_UNEXPECTED_PROVIDER_ERROR {
		t.Fatalf("Code(err) = %v", vss.Code(err))
	}
	if f.Attempts() != 1 {
		t.Fatal("0x8004230F is not retried")
	}
	wantAbortedAttempts(t, f.Calls(), false)
}

func TestMaximumShadowCopiesReached(t *testing.T) {
	f := vsstest.New(sqlWriter, regWriter)
	f.Fail("AddToSnapshotSet", vss.S_OK, vss.VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED)
	_, err := vss.NewRequester(f.Factory(), fastOptions()).Create(context.Background(), []string{`C:\`, `D:\`})
	if err == nil {
		t.Fatal("want an error")
	}
	for _, s := range []string{`AddToSnapshotSet of D:\`, "VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED", "64", "vssadmin delete shadows"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
	wantAbortedAttempts(t, f.Calls(), false)
	if f.Live() != 0 {
		t.Fatal("components left")
	}
}

func TestAccessDeniedNotElevated(t *testing.T) {
	f := vsstest.New(sqlWriter, regWriter)
	f.Fail("InitializeForBackup", vss.E_ACCESSDENIED)
	_, err := vss.NewRequester(f.Factory(), fastOptions()).Create(context.Background(), []string{`C:\`})
	if err == nil || !strings.Contains(err.Error(), "InitializeForBackup: E_ACCESSDENIED (0x80070005)") || !strings.Contains(err.Error(), "Administrator") {
		t.Fatalf("want an access-denied error that says to elevate, got %v", err)
	}
	wantCalls(t, f, []string{"Create", "InitializeForBackup", "Release"})
}

func TestCreateFails(t *testing.T) {
	f := vsstest.New()
	f.CreateError = vss.E_NOTIMPL
	_, err := vss.NewRequester(f.Factory(), fastOptions()).Create(context.Background(), []string{`C:\`})
	if err == nil || !strings.Contains(err.Error(), "CreateVssBackupComponents: E_NOTIMPL") || !strings.Contains(err.Error(), "read live") {
		t.Fatalf("got %v", err)
	}
	wantCalls(t, f, []string{"Create"})
}

func TestProviderVetoRetriedThenFails(t *testing.T) {
	f := vsstest.New(sqlWriter, regWriter)
	f.Fail("DoSnapshotSet", vss.VSS_E_PROVIDER_VETO, vss.VSS_E_PROVIDER_VETO, vss.VSS_E_PROVIDER_VETO)
	_, err := vss.NewRequester(f.Factory(), fastOptions()).Create(context.Background(), []string{`C:\`})
	if err == nil || !strings.Contains(err.Error(), "VSS_E_PROVIDER_VETO") || !strings.Contains(err.Error(), "after 3 attempts") {
		t.Fatalf("got %v", err)
	}
	if f.Attempts() != 3 {
		t.Fatalf("attempts %d, want 1 + 2 retries", f.Attempts())
	}
	wantAbortedAttempts(t, f.Calls(), false)
}

func TestRequiredWriterMissing(t *testing.T) {
	f := vsstest.New(sqlWriter, regWriter)
	o := fastOptions()
	o.Require = []string{"Microsoft Exchange Writer"}
	_, err := vss.NewRequester(f.Factory(), o).Create(context.Background(), []string{`C:\`})
	if err == nil || !strings.Contains(err.Error(), `"Microsoft Exchange Writer" is not on this system (writers: SqlServerWriter, Registry Writer)`) {
		t.Fatalf("got %v", err)
	}
	if slices.Contains(f.Calls(), "StartSnapshotSet") {
		t.Fatal("a set was started although a required writer is missing")
	}
	wantAbortedAttempts(t, f.Calls(), false)
}

func TestExcludedWriterIsDisabledAndIgnored(t *testing.T) {
	w := sqlWriter
	w.FailAt, w.Failure = vss.PhaseDoSnapshotSet, vss.VSS_E_WRITERERROR_NONRETRYABLE
	f := vsstest.New(w, regWriter)
	o := fastOptions()
	o.Exclude = []string{w.Class.String()}
	o.Provider = vss.MicrosoftProvider
	o.BackupType = vss.BackupFull
	set, err := vss.NewRequester(f.Factory(), o).Create(context.Background(), []string{`C:\`})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Complete(context.Background())
	if len(set.FailedWriters()) != 0 {
		t.Fatalf("an excluded writer's failure counts: %v", set.FailedWriters())
	}
	calls := f.Calls()
	for _, c := range []string{"DisableWriterClasses(" + w.Class.String() + ")", "SetBackupState(false,false,1,false)",
		`AddToSnapshotSet(C:\,{b5946137-7b9f-4925-af80-51abd60b20d5})`} {
		if !slices.Contains(calls, c) {
			t.Errorf("no call %s in %v", c, calls)
		}
	}
	if slices.Index(calls, "DisableWriterClasses("+w.Class.String()+")") > slices.Index(calls, "GatherWriterMetadata") {
		t.Fatal("writers must be disabled before GatherWriterMetadata: VSS ignores it afterwards")
	}
	if f.Attempts() != 1 {
		t.Fatal("a writer excluded by its id needs no look-up")
	}
}

func TestExcludeByNameLooksTheClassUpFirst(t *testing.T) {
	w := sqlWriter
	w.FailAt, w.Failure = vss.PhasePrepareForBackup, vss.VSS_E_WRITERERROR_NONRETRYABLE
	f := vsstest.New(w, regWriter)
	o := fastOptions()
	o.Exclude = []string{"sqlserverwriter", "Exchange Writer"}
	set, err := vss.NewRequester(f.Factory(), o).Create(context.Background(), []string{`C:\`})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Complete(context.Background())
	lookup := []string{"Create", "InitializeForBackup", "SetBackupState(false,false,5,false)", "GatherWriterMetadata",
		"GetWriterMetadataCount", "GetWriterMetadata(0)", "GetWriterMetadata(1)", "FreeWriterMetadata", "Release",
		"Create", "InitializeForBackup", "SetContext(0)", "SetBackupState(false,false,5,false)",
		"DisableWriterClasses(" + w.Class.String() + ")", "GatherWriterMetadata", "GetWriterMetadataCount", "GetWriterMetadata(0)"}
	if calls := f.Calls(); !slices.Equal(calls[:len(lookup)], lookup) {
		t.Fatalf("calls:\n got  %v\n want %v ...", calls[:len(lookup)], lookup)
	}
	if len(set.FailedWriters()) != 0 {
		t.Fatalf("the excluded writer failed the set: %v", set.FailedWriters())
	}
	ws := set.Writers()
	if len(ws) != 2 || ws[0].Name != "SqlServerWriter" || !ws[0].Excluded || len(ws[0].Checks) != 0 || ws[1].Name != "Registry Writer" {
		t.Fatalf("writers %+v", ws)
	}
	if len(set.Notes) != 1 || !strings.Contains(set.Notes[0], `"Exchange Writer"`) {
		t.Fatalf("an exclusion that matches nothing is said: %q", set.Notes)
	}
}

func TestBackupCompleteFailureStillReleases(t *testing.T) {
	f := vsstest.New(sqlWriter, regWriter)
	f.Fail("BackupComplete", vss.VSS_E_UNEXPECTED)
	set, err := vss.NewRequester(f.Factory(), fastOptions()).Create(context.Background(), []string{`C:\`})
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Complete(context.Background()); err == nil || !strings.Contains(err.Error(), "BackupComplete") {
		t.Fatalf("got %v", err)
	}
	calls := f.Calls()
	if n := len(calls); !slices.Equal(calls[n-2:], []string{"AbortBackup", "Release"}) || f.Live() != 0 {
		t.Fatalf("calls %v", calls)
	}
}

func TestAbortReleases(t *testing.T) {
	f := vsstest.New(sqlWriter, regWriter)
	set, err := vss.NewRequester(f.Factory(), fastOptions()).Create(context.Background(), []string{`C:\`})
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := set.Complete(context.Background()); err != nil {
		t.Fatal(err)
	}
	calls := f.Calls()
	if n := len(calls); !slices.Equal(calls[n-2:], []string{"AbortBackup", "Release"}) || f.Live() != 0 || slices.Contains(calls, "BackupComplete") {
		t.Fatalf("calls %v", calls)
	}
}

func TestEveryCodeHasANameAndAdvice(t *testing.T) {
	seen := map[string]bool{}
	for _, h := range vss.KnownCodes() {
		n, a := h.Name(), h.Advice()
		if strings.HasPrefix(n, "HRESULT") || seen[n] {
			t.Errorf("0x%08X: name %q (unknown or repeated)", uint32(h), n)
		}
		seen[n] = true
		if len(a) < 20 {
			t.Errorf("%s: advice %q is no sentence", n, a)
		}
	}
	if len(seen) < 50 {
		t.Fatalf("only %d codes known", len(seen))
	}
	if got := vss.HRESULT(0x80071234).Error(); got != "HRESULT 0x80071234" {
		t.Fatalf("unknown code: %q", got)
	}
}

func TestGUID(t *testing.T) {
	g, err := vss.ParseGUID("b5946137-7b9f-4925-af80-51abd60b20d5")
	if err != nil || g != vss.MicrosoftProvider {
		t.Fatalf("%v %v", g, err)
	}
	if _, err := vss.ParseGUID("{b5946137-7b9f-4925-af80}"); err == nil {
		t.Fatal("a short GUID parsed")
	}
	if _, err := vss.ParseGUID("{x5946137-7b9f-4925-af80-51abd60b20d5}"); err == nil {
		t.Fatal("a non-hex GUID parsed")
	}
}

// TestWriterFilesRecorded: the files a writer's metadata names are kept
// with its record, environment variables expanded, and tell which paths
// its failure lowers.
func TestWriterFilesRecorded(t *testing.T) {
	t.Setenv("STILLPOINT_TEST_SQL", `D:\sql`)
	w := sqlWriter
	w.FailAt, w.Failure = vss.PhaseDoSnapshotSet, vss.VSS_E_WRITERERROR_NONRETRYABLE
	w.Files = []vss.FileDesc{{Path: `%STILLPOINT_TEST_SQL%\data`, Filespec: "*.mdf"}, {Path: `D:\sql\log`, Filespec: "*.ldf"}}
	reg := regWriter
	reg.FilesError = vss.E_UNEXPECTED
	reg.Files = []vss.FileDesc{{Path: `C:\Windows\System32\config`}}
	f := vsstest.New(w, reg)
	set, err := vss.NewRequester(f.Factory(), fastOptions()).Create(context.Background(), []string{`C:\`, `D:\`})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Complete(context.Background())
	ws := set.Writers()
	if !ws[0].FilesKnown || len(ws[0].Files) != 2 || ws[0].Files[0].Path != `D:\sql\data` || ws[0].Files[0].Filespec != "*.mdf" {
		t.Fatalf("SQL writer files %+v (known %v)", ws[0].Files, ws[0].FilesKnown)
	}
	if !ws[0].Covers(`D:\sql`) || ws[0].Covers(`C:\users`) {
		t.Fatal("the SQL writer covers D:\\sql and not C:\\users")
	}
	if ws[1].FilesKnown || !ws[1].Covers(`C:\users`) || !ws[1].Covers(`D:\sql`) {
		t.Fatalf("a writer whose metadata could not be read covers everything: %+v", ws[1])
	}
	if failed := set.FailedWriters(); len(failed) != 1 || !failed[0].LowersConsistency() || failed[0].Name != "SqlServerWriter" {
		t.Fatalf("failed writers %+v", failed)
	}
}
