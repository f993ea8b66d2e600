package run_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/archiver"
	"github.com/stillpoint-backup/stillpoint/internal/livefile"
	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/run"
	"github.com/stillpoint-backup/stillpoint/internal/snapshot"
	"golang.org/x/sys/unix"
)

// holdFile is a child process: it opens path for writing and, with mode
// "flock", takes an exclusive lock; it holds on until stdin closes.
func holdFile(path, mode string) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		os.Exit(2)
	}
	if mode == "flock" {
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			os.Exit(3)
		}
	}
	os.Stdout.WriteString("ready\n")
	io.Copy(io.Discard, os.Stdin)
}

// startHolder starts a holder child and returns its pid.
func startHolder(t *testing.T, path, mode string) int {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "STILLPOINT_TEST_HOLDER="+path, "STILLPOINT_TEST_HOLD_MODE="+mode)
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	buf := make([]byte, 6)
	if _, err := io.ReadFull(out, buf); err != nil || string(buf) != "ready\n" {
		t.Fatalf("holder did not start: %q %v", buf, err)
	}
	return cmd.Process.Pid
}

func backupLive(t *testing.T, r *repo.Repository, strategy livefile.Strategy, retries int, logDir string, paths ...string) *run.BackupResult {
	t.Helper()
	lf := livefile.DefaultConfig()
	lf.Strategy, lf.Retries, lf.StagingDir = strategy, retries, filepath.Join(t.TempDir(), "staging")
	var sources []run.Source
	for _, p := range paths {
		sources = append(sources, run.Source{Path: p, Snapshot: snapshot.Off, OpenFiles: lf})
	}
	plan, err := run.PlanSnapshots(sources, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := run.Backup(context.Background(), r, run.BackupOptions{Sources: sources, Plan: plan, LogDir: logDir})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestLockedFileFailsAndKeepsPreviousVersion(t *testing.T) {
	src := t.TempDir()
	locked := filepath.Join(src, "mail.box")
	os.WriteFile(locked, []byte("version 1"), 0o644)
	os.WriteFile(filepath.Join(src, "other"), []byte("fine"), 0o644)
	r := newRepo(t)
	first := backupLive(t, r, livefile.StrategyRetry, 1, "", src)
	if first.Snapshot.Partial {
		t.Fatalf("first backup partial: %+v", first.Problems)
	}

	os.WriteFile(locked, []byte("version 2, being written"), 0o644)
	pid := startHolder(t, locked, "flock")
	logDir := t.TempDir()
	second := backupLive(t, r, livefile.StrategyRetry, 2, logDir, src)
	if second.ExitCode() != 3 || !second.Snapshot.Partial {
		t.Fatalf("exit %d partial %v", second.ExitCode(), second.Snapshot.Partial)
	}
	if len(second.Problems) != 1 {
		t.Fatalf("problems: %+v", second.Problems)
	}
	// the locked file was neither read nor unchanged: only its neighbour is
	if st := second.Snapshot.Stats; st.Files != 2 || st.FilesRead != 0 || second.FilesUnchanged != 1 {
		t.Errorf("second backup: %d files, %d read, %d unchanged; want 2, 0, 1", st.Files, st.FilesRead, second.FilesUnchanged)
	}
	p := second.Problems[0]
	holder := "run.test[" + strconv.Itoa(pid) + "]"
	if p.Path != locked || p.Outcome != outcome.Failed || p.Reason != outcome.ReasonLocked || p.Holder != holder {
		t.Fatalf("problem %+v, want failed/locked by %s", p, holder)
	}
	sentence := run.OutcomeSentence(second.Snapshot.OutcomeCounts(), second.Problems)
	if want := "unable to back up 1 file (locked by " + holder + ")"; !strings.Contains(sentence, want) {
		t.Errorf("summary %q lacks %q", sentence, want)
	}
	// the previous version is kept, marked stale, not dropped as deleted
	data, oc := restoreFile(t, r, second.Snapshot, locked)
	if string(data) != "version 1" || oc != outcome.Stale {
		t.Fatalf("restored %q (%s), want the previous version, stale", data, oc)
	}
	// one line per non-ok file, letter first, with the holder
	log, err := os.ReadFile(second.FileLog)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(log, []byte("F "+locked+"\tlocked\t"+holder)) {
		t.Fatalf("file log:\n%s", log)
	}
}

// skip: a file being written is not read in the first pass; in the second
// pass it is tried once more and, still changing, stays skipped-open and is
// not stored. A file merely held open, not written, is read in the second
// pass and stored whole. On a loaded machine the writer may not run during
// a second-pass read; that read is then whole and may be stored, so the
// backup is repeated until the writer was caught changing the file (every
// run must be honest).
func TestSkipStrategyDefersAndStaysHonest(t *testing.T) {
	src := t.TempDir()
	busy := filepath.Join(src, "busy.db")
	startPageWriter(t, busy)
	idle := filepath.Join(src, "idle.log")
	os.WriteFile(idle, []byte("held open, quiet"), 0o644)
	startHolder(t, idle, "open")
	r := newRepo(t)
	skipped := false
	for i := 0; i < 20 && !skipped; i++ {
		res := backupLive(t, r, livefile.StrategySkip, 0, "", src)
		tree := treeAt(t, r, res.Snapshot.Tree, src)
		n := tree.Find("busy.db")
		switch {
		case n == nil:
			t.Fatalf("run %d: busy.db is not in the snapshot", i)
		case n.Outcome == outcome.SkippedOpen:
			if len(n.Content) != 0 || res.ExitCode() != 3 || res.Snapshot.OutcomeCounts()[outcome.SkippedOpen] != 1 {
				t.Fatalf("run %d: skipped busy.db %+v, exit %d, outcomes %v", i, n, res.ExitCode(), res.Snapshot.Outcomes)
			}
			skipped = true
		case n.Outcome.Whole():
			// read whole in the second pass while the writer did not run
			if data, _ := restoreFile(t, r, res.Snapshot, busy); checkPages(data) != nil {
				t.Fatalf("run %d: busy.db stored as %s but torn: %v", i, n.Outcome, checkPages(data))
			}
		default:
			t.Fatalf("run %d: busy.db %s, want skipped-open or whole", i, n.Outcome)
		}
		data, oc := restoreFile(t, r, res.Snapshot, idle)
		if string(data) != "held open, quiet" || !oc.Whole() {
			t.Fatalf("run %d: idle open file: %q %s", i, data, oc)
		}
	}
	if !skipped {
		t.Fatal("a file written all the time was never skipped in 20 backups")
	}
}

func TestStageStrategyReadsACopyAndCleansUp(t *testing.T) {
	src := t.TempDir()
	busy := filepath.Join(src, "app", "state.db")
	os.MkdirAll(filepath.Dir(busy), 0o755)
	os.WriteFile(busy, bytes.Repeat([]byte("state "), 1000), 0o644)
	startHolder(t, busy, "open")
	r := newRepo(t)
	staging := filepath.Join(t.TempDir(), "staging")
	lf := livefile.DefaultConfig()
	lf.Strategy, lf.StagingDir = livefile.StrategyStage, staging
	sources := []run.Source{{Path: src, Snapshot: snapshot.Off, OpenFiles: lf}}
	plan, err := run.PlanSnapshots(sources, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	var problems []archiver.Problem
	res, err := run.Backup(context.Background(), r, run.BackupOptions{Sources: sources, Plan: plan,
		OnProblem: func(p archiver.Problem) { problems = append(problems, p) }})
	if err != nil {
		t.Fatal(err)
	}
	data, oc := restoreFile(t, r, res.Snapshot, busy)
	if !bytes.Equal(data, bytes.Repeat([]byte("state "), 1000)) || !oc.Whole() {
		t.Fatalf("staged file restored as %d bytes, %s; problems %+v", len(data), oc, problems)
	}
	left, _ := os.ReadDir(staging)
	if len(left) != 0 {
		t.Fatalf("staging directory not emptied: %v", left)
	}
}

// A file locked in two backups in a row has no stored version to keep: the
// second backup must record it as failed again, not carry the first one's
// empty placeholder forward as an "older version".
func TestFileLockedTwiceIsNotKeptAsAnEmptyVersion(t *testing.T) {
	src := t.TempDir()
	locked := filepath.Join(src, "bank.db")
	os.WriteFile(locked, []byte("never read whole"), 0o644)
	startHolder(t, locked, "flock")
	r := newRepo(t)
	backupLive(t, r, livefile.StrategyRetry, 1, "", src)
	second := backupLive(t, r, livefile.StrategyRetry, 2, "", src)
	n := treeAt(t, r, second.Snapshot.Tree, src).Find("bank.db")
	if n == nil || n.Outcome != outcome.Failed || len(n.Content) != 0 {
		t.Fatalf("second backup recorded %+v, want failed with no content (no version was ever stored)", n)
	}
}
