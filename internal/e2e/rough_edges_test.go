//go:build linux

package e2e

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// oneLine fails unless stderr is exactly one line that contains every want.
func oneLine(t *testing.T, res result, want ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(res.stderr, "\n"), "\n")
	if len(lines) != 1 {
		t.Errorf("want one line on stderr: %s", res)
		return
	}
	for _, w := range want {
		if !strings.Contains(lines[0], w) {
			t.Errorf("stderr lacks %q: %s", w, res)
		}
	}
}

// A path to back up that does not exist is missing. When none exists there
// is nothing to back up: exit 1, no snapshot (and no repository made for
// it); when some exist, the snapshot is written with the others failed
// (missing) and the exit code is 3.
func TestBackupOfMissingPaths(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "src")
	mustWrite(t, filepath.Join(src, "a"), []byte("a"))
	gone, deeper := filepath.Join(base, "gone"), filepath.Join(base, "nope", "deeper")
	e := newEnv(t)

	res := e.must(t, 1, "backup", gone)
	oneLine(t, res, "nothing to back up", gone, "does not exist")
	if _, err := os.Stat(e.repo); err == nil {
		t.Errorf("a backup of nothing created the repository %s", e.repo)
	}
	e.must(t, 0, "init")
	oneLine(t, e.must(t, 1, "backup", gone, deeper), "nothing to back up", gone, deeper)
	oneLine(t, e.must(t, 1, "--json", "backup", gone), gone)
	if ids := e.snapshotIDs(t); len(ids) != 0 {
		t.Fatalf("backups of nothing wrote snapshots %v", ids)
	}

	res = e.must(t, 3, "backup", src, gone, deeper)
	for _, p := range []string{gone, deeper} {
		if !strings.Contains(res.stdout, "    "+p+" (missing)\n") || !strings.Contains(res.stderr, p+": failed (missing)") {
			t.Errorf("%s not reported as missing: %s", p, res)
		}
	}
	if strings.Contains(res.stdout+res.stderr, "vanished") {
		t.Errorf("a path that never existed is called vanished: %s", res)
	}
	js := e.must(t, 3, "--json", "backup", src, gone)
	sum := summary(t, js.stdout)
	probs, _ := sum["problems"].([]any)
	if len(probs) != 1 {
		t.Fatalf("problems %v, want the missing path", probs)
	}
	if p := probs[0].(map[string]any); p["path"] != gone || p["outcome"] != "failed" || p["reason"] != "missing" {
		t.Fatalf("problem %v, want %s failed (missing)", p, gone)
	}
	// the snapshot holds src, and no empty directory on the way to nope/deeper
	ls := e.must(t, 0, "ls", "latest", base)
	if !strings.Contains(ls.stdout, src+"/a\n") || strings.Contains(ls.stdout, "nope") {
		t.Errorf("ls of the snapshot:\n%s", ls.stdout)
	}
}

// ls -l prints modes as ls does: setuid and setgid as s/S, sticky as t/T.
func TestLsLongModes(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	modes := map[string]os.FileMode{
		"tmp":      os.ModeDir | os.ModeSticky | 0o777,
		"sticky-T": os.ModeDir | os.ModeSticky | 0o754,
		"setgid":   os.ModeDir | os.ModeSetgid | 0o2775,
		"suid":     os.ModeSetuid | 0o755,
		"suid-S":   os.ModeSetuid | 0o644,
		"sgid-S":   os.ModeSetgid | 0o644,
		"plain":    0o640,
	}
	want := map[string]string{
		"tmp": "drwxrwxrwt", "sticky-T": "drwxr-xr-T", "setgid": "drwxrwsr-x",
		"suid": "-rwsr-xr-x", "suid-S": "-rwSr--r--", "sgid-S": "-rw-r-Sr--", "plain": "-rw-r-----",
	}
	for name, m := range modes {
		p := filepath.Join(src, name)
		if m.IsDir() {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		} else {
			mustWrite(t, p, []byte(name))
		}
		if err := os.Chmod(p, m); err != nil {
			t.Fatal(err)
		}
	}
	e := newEnv(t)
	e.must(t, 0, "backup", src)
	ls := e.must(t, 0, "ls", "-l", "latest", src)
	for name, mode := range want {
		line := ""
		for _, l := range strings.Split(ls.stdout, "\n") {
			if strings.HasSuffix(l, " "+filepath.Join(src, name)) {
				line = l
			}
		}
		if !strings.HasPrefix(line, mode+" ") {
			t.Errorf("%s: %q, want mode %s", name, line, mode)
		}
	}
}

// runMerged runs the binary with stdout and stderr on one pipe, as on a
// terminal, and returns what came out in order.
func (e *env) runMerged(t *testing.T, code int, args ...string) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := e.command(context.Background(), args...)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	out, _ := io.ReadAll(r)
	err = cmd.Wait()
	got := 0
	if ee, ok := err.(*exec.ExitError); ok {
		got = ee.ExitCode()
	}
	if got != code {
		t.Fatalf("stillpoint %v: exit %d, want %d:\n%s", args, got, code, out)
	}
	return string(out)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// check's progress lines come before its verdict, on one terminal too.
func TestCheckVerdictComesLast(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	genTree(t, src, 11, 8<<20)
	e := newEnv(t)
	e.must(t, 0, "backup", src)
	for _, args := range [][]string{{"check"}, {"check", "--read-data"}} {
		out := e.runMerged(t, 0, args...)
		if !strings.Contains(out, "loading index") || !strings.HasPrefix(lastLine(out), "no errors:") {
			t.Errorf("%v: the verdict is not the last line:\n%s", args, out)
		}
		js := e.runMerged(t, 0, append([]string{"--json"}, args...)...)
		if !strings.Contains(lastLine(js), `"type":"summary"`) {
			t.Errorf("%v --json: the summary is not the last line:\n%s", args, js)
		}
	}
	packs, _ := filepath.Glob(filepath.Join(e.repo, "data", "*", "*"))
	if len(packs) == 0 {
		t.Fatal("no packs")
	}
	if err := os.Remove(packs[0]); err != nil {
		t.Fatal(err)
	}
	out := e.runMerged(t, 1, "check")
	if !strings.HasPrefix(lastLine(out), "stillpoint: the repository has ") {
		t.Errorf("damaged: the verdict is not the last line:\n%s", out)
	}
}

// A file that changes while read is listed with what changed: never with
// empty parentheses.
func TestChangedFileSaysWhatChanged(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	busy := filepath.Join(src, "busy.log")
	writeRandom(t, busy, 5, 256<<20)
	e := newEnv(t)
	e.must(t, 0, "init")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		f, err := os.OpenFile(busy, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
				f.WriteString("x")
			}
		}
	}()
	res := e.must(t, 3, "backup", "--snapshot", "off", "--open-files", "read", src)
	close(stop)
	<-done
	if strings.Contains(res.stdout+res.stderr, "()") {
		t.Errorf("empty parentheses in the report: %s", res)
	}
	if !strings.Contains(res.stdout, "  changed:\n    "+busy+" (") || !strings.Contains(res.stdout, "changed while read") {
		t.Errorf("the changed file is not listed with what changed: %s", res)
	}
	ls := e.must(t, 0, "ls", "-l", "latest", busy)
	if !strings.Contains(ls.stdout, "[changed: ") || strings.Contains(ls.stdout, "[changed]") {
		t.Errorf("ls -l does not say what changed: %s", ls)
	}
}

// --repo naming something that is not a repository says what it is and
// what to do, in one line.
func TestRepositoryLocationErrors(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	mustWrite(t, filepath.Join(src, "a"), []byte("a"))
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	mustWrite(t, file, []byte("not a repository"))
	other := filepath.Join(dir, "other")
	mustWrite(t, filepath.Join(other, "notes.txt"), []byte("mine"))

	e := newEnv(t)
	e.repo = file
	for _, args := range [][]string{{"snapshots"}, {"backup", src}, {"check"}, {"init"}} {
		oneLine(t, e.must(t, 1, args...), file+" is a file, not a repository", "stillpoint init --repo DIR")
	}
	e.repo = other
	oneLine(t, e.must(t, 1, "snapshots"), "no stillpoint repository at "+other, "stillpoint init --repo DIR")
	e.repo = filepath.Join(dir, "none")
	oneLine(t, e.must(t, 1, "ls", "latest"), "no stillpoint repository at "+e.repo)
	if _, err := os.Stat(e.repo); err == nil {
		t.Errorf("ls created %s", e.repo)
	}
}

// Mistakes on the command line exit 2 with one line naming the command and
// its usage; nothing is created.
func TestUsageErrors(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	mustWrite(t, filepath.Join(src, "a"), []byte("a"))
	e := newEnv(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"snapshot"}, "did you mean: snapshots"},
		{[]string{"backup", "--bogus", src}, "unknown flag: --bogus"},
		{[]string{"backup"}, "name the paths to back up"},
		{[]string{"backup", "--retries", "99", src}, "--retries 99"},
		{[]string{"backup", "--retries", "many", src}, "--retries"},
		{[]string{"backup", "--snapshot", "sometimes", src}, "sometimes"},
		{[]string{"backup", "--exclude", "[", src}, `--exclude: bad pattern "["`},
		{[]string{"init", "--compression", "ultra"}, `--compression "ultra"`},
		{[]string{"ls"}, "usage: stillpoint ls SNAPSHOT [PATH]"},
		{[]string{"restore", "latest"}, `"target"`},
		{[]string{"diff", "latest"}, "usage: stillpoint diff SNAPSHOT1 SNAPSHOT2"},
		{[]string{"check", "extra"}, `takes no arguments, got "extra"`},
		{[]string{"ls", "--outcome", "bad", "latest"}, `unknown outcome "bad"`},
	} {
		oneLine(t, e.must(t, 2, c.args...), c.want)
	}
	if _, err := os.Stat(e.repo); err == nil {
		t.Errorf("a usage error created the repository")
	}
	e.must(t, 0, "backup", src)
	oneLine(t, e.must(t, 1, "ls", "latest", "/no/such/path"), "holds no /no/such/path", src)
	oneLine(t, e.must(t, 1, "ls", "deadbeef99"), `no snapshot "deadbeef99"`)
	oneLine(t, e.must(t, 0, "restore", "latest", "--target", t.TempDir(), "--include", "/no/such/path"), "nothing restored")
	oneLine(t, e.must(t, 1, "doctor", "/no/such/path"), "/no/such/path: no such file or directory")
	file := filepath.Join(src, "a")
	oneLine(t, e.must(t, 1, "restore", "latest", "--target", filepath.Join(file, "below")), file+" is a file, not a directory")
	oneLine(t, e.must(t, 1, "restore", "latest", "--target", file), "restore target "+file+" is a file, not a directory")
}

// interruptWhen starts the binary and sends it SIGINT once it has read and
// written more than bytes (rchar + wchar), then waits for it.
func (e *env) interruptWhen(t *testing.T, bytes int64, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := e.command(ctx, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		if n, err := procIO(cmd.Process.Pid); err == nil && n > bytes {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("stillpoint %v ended (%v) before it moved %d bytes: test too small for this machine", args, err, bytes)
		case <-time.After(time.Millisecond):
		}
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	err := <-done
	res := result{stdout: out.String(), stderr: errb.String(), args: args}
	if ee, ok := err.(*exec.ExitError); ok {
		res.code = ee.ExitCode()
	}
	return res
}

// procIO is how many bytes process pid has read and written.
func procIO(pid int) (int64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		return 0, err
	}
	var total int64
	for _, line := range strings.Split(string(data), "\n") {
		for _, key := range []string{"rchar: ", "wchar: "} {
			if v, ok := strings.CutPrefix(line, key); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				total += n
			}
		}
	}
	return total, nil
}

// Ctrl-C says in one line what the interruption left, and a restore it
// cut short is not reported as damage and finishes when run again.
func TestInterruptSaysWhatItLeft(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	writeRandom(t, filepath.Join(src, "big"), 9, 512<<20)
	mustWrite(t, filepath.Join(src, "small"), []byte("small"))
	e := newEnv(t)
	e.must(t, 0, "init")

	res := e.interruptWhen(t, 32<<20, "backup", src)
	if res.code != 1 {
		t.Fatalf("interrupted backup: %s", res)
	}
	oneLine(t, res, "stillpoint: interrupted: no snapshot was written")
	if ids := e.snapshotIDs(t); len(ids) != 0 {
		t.Fatalf("an interrupted backup wrote snapshots %v", ids)
	}
	e.must(t, 0, "check")
	e.must(t, 0, "backup", src)

	target := t.TempDir()
	res = e.interruptWhen(t, 32<<20, "restore", "latest", "--target", target)
	if res.code != 1 {
		t.Fatalf("interrupted restore: %s", res)
	}
	oneLine(t, res, "stillpoint: interrupted: the restore is incomplete", "--overwrite if-changed")
	e.must(t, 0, "restore", "latest", "--target", target, "--overwrite", "if-changed")
	if d := diffTrees(treeHash(t, filepath.Join(target, src)), treeHash(t, src)); d != "" {
		t.Fatalf("the restore run again does not finish it: %s", d)
	}
}
