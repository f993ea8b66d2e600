package livefile

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
	"github.com/stillpoint-backup/stillpoint/internal/view"
	"golang.org/x/sys/windows"
)

// Access denied is failed: permission, not retried.
func TestAccessDeniedIsPermission(t *testing.T) {
	v := newFakeView(10)
	v.open = windows.ERROR_ACCESS_DENIED
	res := newReader(t, Config{Strategy: StrategyRetry, Retries: 2, Clock: &fakeClock{}}).Read(context.Background(), v, `C:\data\f`, readAll(new(int)))
	if res.Outcome != outcome.Failed || res.Reason != outcome.ReasonPermission || res.Attempts != 1 {
		t.Fatalf("%+v, want failed/permission after 1 attempt", res)
	}
}

// holdOpen opens path in this process as another program would, with the
// given access and share mode.
func holdOpen(t *testing.T, path string, access, share uint32) {
	t.Helper()
	h, err := windows.CreateFile(windows.StringToUTF16Ptr(path), access, share, nil, windows.OPEN_EXISTING, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { windows.CloseHandle(h) })
}

// The live view opens sharing read, write and delete: a file a writer holds
// with delete access (as programs that save by rename do) is read whole; one opened
// sharing nothing is failed: locked. Change detection sees the Windows
// change time and file index.
func TestLiveWindowsFilesOpenAndLocked(t *testing.T) {
	dir := t.TempDir()
	written, held := filepath.Join(dir, "written.log"), filepath.Join(dir, "held.db")
	for _, p := range []string{written, held} {
		if err := os.WriteFile(p, []byte("data of "+filepath.Base(p)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour)
	os.Chtimes(written, old, old)
	// a writer that may also delete or rename the file: only opens that
	// share delete get in (Go's os.Open does not)
	holdOpen(t, written, windows.GENERIC_WRITE|windows.DELETE, windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE|windows.FILE_SHARE_DELETE)
	if f, err := os.Open(written); err == nil {
		f.Close()
		t.Log("os.Open shares delete here: the share-delete case proves nothing on this system")
	}
	holdOpen(t, held, windows.GENERIC_READ|windows.GENERIC_WRITE, 0)

	v := &view.Live{}
	rd := newReader(t, Config{Strategy: StrategyRetry, Retries: 1, Clock: &fakeClock{}})
	repoPath := func(p string) string {
		rp, err := pathmap.Native.ToRepo(p)
		if err != nil {
			t.Fatal(err)
		}
		return rp
	}
	var got string
	var st *view.Stat
	res := rd.Read(context.Background(), v, repoPath(written), func(f view.File, s *view.Stat) error {
		b, err := io.ReadAll(f)
		got, st = string(b), s
		return err
	})
	if res.Outcome != outcome.OK || got != "data of written.log" {
		t.Fatalf("file held by a writer: %+v, read %q", res, got)
	}
	if st.Ino == 0 || st.Ctime.IsZero() || st.Attrs == 0 {
		t.Errorf("stat of a Windows file without file index, change time or attributes: %+v", st)
	}
	res = rd.Read(context.Background(), v, repoPath(held), readAll(new(int)))
	if res.Outcome != outcome.Failed || res.Reason != outcome.ReasonLocked {
		t.Fatalf("file opened sharing nothing: %+v, want failed: locked", res)
	}
}
