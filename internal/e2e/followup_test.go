//go:build linux

package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/snapshot"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/ci"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/loopfs"
)

// lockWithChild has flock(1) hold an exclusive lock on path in a child
// process until the function it returns ends it.
func lockWithChild(t *testing.T, path string) func() {
	t.Helper()
	if _, err := exec.LookPath("flock"); err != nil {
		if ci.Enabled() {
			t.Fatal("flock (util-linux) is needed to hold a file locked")
		}
		t.Skip("flock (util-linux) is needed to hold a file locked")
	}
	cmd := exec.Command("flock", "-x", path, "sh", "-c", "echo ready; read x")
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := false
	release := func() {
		if !done {
			done = true
			stdin.Close()
			cmd.Wait()
		}
	}
	t.Cleanup(release)
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("flock did not take the lock: %q %v", line, err)
	}
	return release
}

// queueFile reads a job's retry queue as the state file holds it.
func queueFile(t *testing.T, stateDir, job string) map[string]int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(stateDir, job+".retry.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Entries []struct {
			Path     string `json:"path"`
			Attempts int    `json:"attempts"`
			Outcome  string `json:"outcome"`
		} `json:"entries"`
	}
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatalf("queue file: %v\n%s", err, data)
	}
	out := map[string]int{}
	for _, e := range st.Entries {
		if e.Outcome != "failed" && e.Outcome != "skipped-open" {
			t.Errorf("queued %s as %s", e.Path, e.Outcome)
		}
		out[e.Path] = e.Attempts
	}
	return out
}

func writeNamedJob(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Files locked by another process during `stillpoint run` are queued; a
// follow-up, each a new process reading the queue from its file, stores
// the ones released since (restore latest has them), keeps the one still
// locked queued with one attempt more, and empties the queue once that
// one is released too.
func TestFollowUpBacksUpReleasedFiles(t *testing.T) {
	src := filepath.Join(t.TempDir(), "data")
	os.MkdirAll(src, 0o755)
	mail, bank, notes := filepath.Join(src, "mail.box"), filepath.Join(src, "bank.db"), filepath.Join(src, "notes.txt")
	mustWrite(t, mail, []byte("mail, locked during the run"))
	mustWrite(t, bank, []byte("bank, locked longer"))
	mustWrite(t, notes, []byte("notes, version 1"))
	jobs, state := t.TempDir(), t.TempDir()
	writeNamedJob(t, jobs, "mailjob", fmt.Sprintf("version: 1\nsources:\n  - path: %s\n    snapshot: off\n    open-files: retry\n    retries: 0\n", src))
	e := newEnv(t)
	e.must(t, 0, "init")
	runJob := func(code int, args ...string) result {
		t.Helper()
		return e.must(t, code, append([]string{"run", "--jobs", jobs, "--state-dir", state}, args...)...)
	}

	releaseMail := lockWithChild(t, mail)
	releaseBank := lockWithChild(t, bank)
	first := summary(t, runJob(3, "--json", "mailjob").stdout)
	retry, _ := first["retry"].(map[string]any)
	if retry == nil || !strings.Contains(fmt.Sprint(retry["sentence"]), "unable to back up 2 files (next attempt within 15 minutes)") || len(retry["queued"].([]any)) != 2 {
		t.Fatalf("summary of the first run: %v", first)
	}
	if q := queueFile(t, state, "mailjob"); len(q) != 2 || q[mail] != 1 || q[bank] != 1 {
		t.Fatalf("queue after the run: %v", q)
	}

	releaseMail()
	mustWrite(t, notes, []byte("notes, version 2: the follow-up does not read it"))
	second := runJob(3, "mailjob", "--follow-up")
	for _, want := range []string{"(a follow-up of ", "1 file backed up on retry", "unable to back up 1 file (next attempt within 30 minutes)"} {
		if !strings.Contains(second.stdout, want) {
			t.Errorf("follow-up output lacks %q:\n%s", want, second.stdout)
		}
	}
	if q := queueFile(t, state, "mailjob"); len(q) != 1 || q[bank] != 2 {
		t.Fatalf("queue after the follow-up: %v, want only bank.db with 2 attempts", q)
	}
	dst := t.TempDir()
	if res := e.must(t, 0, "restore", "latest", "--target", dst); !strings.Contains(res.stderr, bank+": not restored") {
		t.Errorf("restore latest does not say that bank.db has no version yet:\n%s", res)
	}
	for p, want := range map[string]string{mail: "mail, locked during the run", notes: "notes, version 1"} {
		if got, err := os.ReadFile(filepath.Join(dst, p)); err != nil || string(got) != want {
			t.Errorf("restore latest: %s is %q (%v), want %q", p, got, err, want)
		}
	}

	releaseBank()
	third := summary(t, runJob(0, "--json", "mailjob", "--follow-up").stdout)
	retry, _ = third["retry"].(map[string]any)
	if retry == nil || retry["backed_up_on_retry"] != 1.0 || retry["left"] != 0.0 || third["partial"] != false || third["followup_of"] == nil {
		t.Fatalf("summary of the last follow-up: %v", third)
	}
	if q := queueFile(t, state, "mailjob"); len(q) != 0 {
		t.Fatalf("queue after every file was stored: %v", q)
	}
	dst = t.TempDir()
	e.must(t, 0, "restore", "latest", "--target", dst)
	if got, _ := os.ReadFile(filepath.Join(dst, bank)); string(got) != "bank, locked longer" {
		t.Errorf("restore latest: bank.db is %q", got)
	}
	if ids := e.snapshotIDs(t); len(ids) != 3 {
		t.Errorf("%d snapshots, want the run and two follow-ups", len(ids))
	}
	// nothing queued: a follow-up says so and writes nothing
	if out := runJob(0, "mailjob", "--follow-up"); !strings.Contains(out.stdout, "no file is queued") {
		t.Errorf("follow-up of an empty queue:\n%s", out)
	}
	e.must(t, 0, "check")
}

// SIGTERM during `stillpoint run` of a job on btrfs: the run stops, its
// snapshot set is released, the job's on-error hook runs, and nothing is
// written: no snapshot, no retry queue entries, no leftovers.
func TestSigtermDuringRunReleasesAndRunsOnError(t *testing.T) {
	ci.NeedRoot(t)
	mnt := loopfs.Btrfs(t, 512)
	src := filepath.Join(mnt, "data")
	os.MkdirAll(src, 0o755)
	buf := make([]byte, 4<<20)
	for i := range 48 {
		rand.Read(buf)
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("f%02d", i)), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	jobs, state := t.TempDir(), t.TempDir()
	marker := filepath.Join(t.TempDir(), "on-error-ran")
	writeNamedJob(t, jobs, "btrfsjob", fmt.Sprintf("version: 1\nsources:\n  - path: %s\n    snapshot: required\nhooks:\n  on-error: echo \"$STILLPOINT_ERROR\" > %s\n", src, marker))
	e := newEnv(t)
	e.must(t, 0, "init")
	cmd := e.command(context.Background(), "run", "--quiet", "--jobs", jobs, "--state-dir", state, "btrfsjob")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if los, _ := snapshot.FindLeftovers([]string{mnt}); len(los) > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err == nil {
		t.Skip("the run finished before the signal arrived")
	}
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(stderr.String(), "interrupted") {
		t.Fatalf("exit %d, stderr %q", cmd.ProcessState.ExitCode(), stderr.String())
	}
	if los, _ := snapshot.FindLeftovers([]string{mnt}); len(los) != 0 {
		t.Fatalf("the interrupted run left its snapshot set: %+v", los)
	}
	if entries, _ := os.ReadDir(filepath.Join(mnt, ".stillpoint-snapshots")); len(entries) != 0 {
		t.Fatalf("snapshot directory not empty: %v", entries)
	}
	if got, err := os.ReadFile(marker); err != nil || len(strings.TrimSpace(string(got))) == 0 {
		t.Fatalf("on-error hook: %q %v, want it run with the error", got, err)
	}
	if ids := e.snapshotIDs(t); len(ids) != 0 {
		t.Fatalf("the interrupted run wrote snapshots %v", ids)
	}
	if _, err := os.Stat(filepath.Join(state, "btrfsjob.retry.json")); err == nil {
		if q := queueFile(t, state, "btrfsjob"); len(q) != 0 {
			t.Fatalf("the interrupted run queued %v", q)
		}
	}
	e.must(t, 0, "check")
}
