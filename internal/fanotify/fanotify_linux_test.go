package fanotify

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/testutil/ci"
)

// events drains w until want events under dir arrived or a second passed.
func events(t *testing.T, w *Watch, dir string, settle time.Duration) []Event {
	t.Helper()
	var out []Event
	deadline := time.Now().Add(settle)
	for time.Now().Before(deadline) {
		if err := w.Drain(func(ev Event) {
			if ev.Lost || filepath.Dir(ev.Path) == dir {
				out = append(out, ev)
			}
		}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return out
}

func TestWritesOfOthersOnlyAndNotTheClosesOfOurChildren(t *testing.T) {
	ci.NeedRoot(t)
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w, err := Open([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	// our own write
	if err := os.WriteFile(filepath.Join(dir, "own"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// a file we opened for writing, whose last descriptor a child closes:
	// the kernel reports that close as the child's (as when a child forks
	// while we write a file and execs after we closed it)
	f, err := os.Create(filepath.Join(dir, "inherited"))
	if err != nil {
		t.Fatal(err)
	}
	closer := exec.Command("sh", "-c", "sleep 0.2; exec 3>&-; sleep 0.3")
	closer.ExtraFiles = []*os.File{f}
	if err := closer.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// a child's real write
	writer := exec.Command("sh", "-c", `echo data > "$0"`, filepath.Join(dir, "child"))
	if out, err := writer.CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	got := events(t, w, dir, 700*time.Millisecond)
	if err := closer.Wait(); err != nil {
		t.Fatal(err)
	}

	var childWrites int
	for _, ev := range got {
		switch filepath.Base(ev.Path) {
		case "child":
			childWrites++
			if ev.Pid != int32(writer.Process.Pid) {
				t.Errorf("write of child by pid %d, want %d", ev.Pid, writer.Process.Pid)
			}
		default:
			t.Errorf("event %+v reported", ev)
		}
	}
	if childWrites == 0 {
		t.Errorf("the child's write was not reported: %+v", got)
	}
}

func TestMarkErrorNamesThePath(t *testing.T) {
	ci.NeedRoot(t)
	missing := filepath.Join(t.TempDir(), "missing")
	_, err := Open([]string{missing})
	var me *MarkError
	if err == nil || !errors.As(err, &me) || me.Path != missing {
		t.Fatalf("err %v", err)
	}
}
