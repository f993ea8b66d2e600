//go:build linux

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

type keyRow struct {
	ID      string `json:"id"`
	Host    string `json:"host"`
	User    string `json:"user"`
	Kind    string `json:"kind"`
	InUse   bool   `json:"in_use"`
	Damaged string `json:"damaged"`
}

// keys lists the repository's keys through `key list --json`, opened with args.
func (e *env) keys(t *testing.T, args ...string) []keyRow {
	t.Helper()
	res := e.must(t, 0, append(args, "--json", "key", "list")...)
	var ks []keyRow
	if err := json.Unmarshal([]byte(strings.TrimSpace(res.stdout)), &ks); err != nil {
		t.Fatalf("key list --json: %v\n%s", err, res)
	}
	return ks
}

func inUse(ks []keyRow) (keyRow, int) {
	var k keyRow
	n := 0
	for _, r := range ks {
		if r.InUse {
			k, n = r, n+1
		}
	}
	return k, n
}

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// Keys as a user manages them: the key file a first backup made, a second
// password, a second key file, removal and replacement, and every refusal;
// the snapshot written under the first key restores through each key left.
func TestKeyCommands(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "src")
	genTree(t, src, 7, 3<<20)
	want := treeHash(t, src)
	e := newEnv(t)
	e.must(t, 0, "backup", src)
	id := e.snapshotIDs(t)[0]
	defaultKey, _ := filepath.Glob(filepath.Join(e.keyDir, "*.key"))
	if len(defaultKey) != 1 {
		t.Fatalf("key files: %v", defaultKey)
	}

	// list: one key file, in use, with host and user
	ks := e.keys(t)
	k0, n := inUse(ks)
	if len(ks) != 1 || n != 1 || k0.Kind != "key file" || k0.Host == "" || k0.User == "" || len(k0.ID) != 64 {
		t.Fatalf("first key: %+v", ks)
	}
	human := e.must(t, 0, "key", "list")
	if !strings.Contains(human.stdout, "* ") || !strings.Contains(human.stdout, k0.ID[:8]) || !strings.Contains(human.stdout, k0.User) {
		t.Fatalf("key list: %s", human)
	}

	// add a password from a file; it opens the repository and restores
	pwFile := filepath.Join(base, "pw")
	mustWrite(t, pwFile, []byte("correct horse\n"))
	add := e.must(t, 0, "key", "add", "--new-password-file", pwFile)
	if !strings.Contains(add.stdout, "added key") || !strings.Contains(add.stdout, "(password)") {
		t.Fatalf("key add: %s", add)
	}
	byPW := []string{"--password-file", pwFile}
	ks = e.keys(t, byPW...)
	pwKey, n := inUse(ks)
	if len(ks) != 2 || n != 1 || pwKey.Kind != "password" || pwKey.ID == k0.ID {
		t.Fatalf("after key add, opened by the password: %+v", ks)
	}
	pwEnv := *e
	pwEnv.extra = []string{"STILLPOINT_PASSWORD=correct horse"}
	pwEnv.restoreAndCompare(t, id, src, want)

	// add a key file; it is 0600 and opens the repository
	kf := filepath.Join(base, "second.key")
	add = e.must(t, 0, "key", "add", "--new-key-file", kf)
	if !strings.Contains(add.stdout, kf) || !strings.Contains(add.stdout, "KEEP A COPY") {
		t.Fatalf("key add --new-key-file: %s", add)
	}
	if m := mode(t, kf); m != 0o600 {
		t.Fatalf("new key file has mode %v, want 0600", m)
	}
	e.must(t, 0, "--key-file", kf, "snapshots")
	// an existing file is never overwritten, and no key is added
	before, _ := os.ReadFile(kf)
	res := e.must(t, 1, "key", "add", "--new-key-file", kf)
	oneLine(t, res, kf, "already exists", "never overwritten")
	if after, _ := os.ReadFile(kf); string(after) != string(before) {
		t.Fatal("an existing key file was changed")
	}
	if got := len(e.keys(t)); got != 3 {
		t.Fatalf("%d keys after a refused add, want 3", got)
	}

	// the new password from the environment
	envAdd := *e
	envAdd.extra = []string{"STILLPOINT_NEW_PASSWORD=from the environment"}
	envAdd.must(t, 0, "key", "add")
	viaEnv := *e
	viaEnv.extra = []string{"STILLPOINT_PASSWORD=from the environment"}
	viaEnv.must(t, 0, "snapshots")

	// usage errors: exit 2, nothing added
	oneLine(t, e.must(t, 2, "key", "add"), "no new key given", "--new-password-file", "--new-key-file")
	oneLine(t, e.must(t, 2, "key", "add", "--new-password-file", pwFile, "--new-key-file", filepath.Join(base, "x.key")), "not both")
	e.must(t, 2, "key")
	e.must(t, 2, "key", "remove")
	e.must(t, 2, "key", "remove", "a", "b")
	if _, err := os.Stat(filepath.Join(base, "x.key")); err == nil {
		t.Error("a refused key add wrote a key file")
	}
	if got := len(e.keys(t)); got != 4 {
		t.Fatalf("%d keys after usage errors, want 4", got)
	}

	// remove: unknown id, the key in use without --force: refused, nothing removed
	oneLine(t, e.must(t, 1, "key", "remove", "zzzz"), "no key has an id starting with", "nothing removed")
	oneLine(t, e.must(t, 1, "key", "remove", k0.ID[:8]), "in use", "--force")
	if got := len(e.keys(t)); got != 4 {
		t.Fatalf("%d keys after refused removes, want 4", got)
	}

	// opened by the password, the first key file is not in use: it goes
	rm := e.must(t, 0, append(byPW, "key", "remove", k0.ID[:8])...)
	if !strings.Contains(rm.stdout, "removed key "+k0.ID[:8]) {
		t.Fatalf("key remove: %s", rm)
	}
	oneLine(t, e.must(t, 1, "snapshots"), "wrong password or key file")
	e.must(t, 0, "--key-file", kf, "snapshots")

	// passwd: the password in use is replaced; the old one no longer opens
	newPW := filepath.Join(base, "pw2")
	mustWrite(t, newPW, []byte("battery staple"))
	pw := e.must(t, 0, append(byPW, "key", "passwd", "--new-password-file", newPW)...)
	if !strings.Contains(pw.stdout, "removed key "+pwKey.ID[:8]) || !strings.Contains(pw.stdout, "the one in use") {
		t.Fatalf("key passwd: %s", pw)
	}
	oneLine(t, e.must(t, 1, append(byPW, "snapshots")...), "wrong password or key file")
	byNew := []string{"--password-file", newPW}
	ks = e.keys(t, byNew...)
	if _, n := inUse(ks); len(ks) != 3 || n != 1 {
		t.Fatalf("after passwd: %+v", ks)
	}
	pw2Env := *e
	pw2Env.extra = []string{"STILLPOINT_PASSWORD=battery staple"}
	pw2Env.restoreAndCompare(t, id, src, want)

	// passwd from a key file to a new key file
	kf3 := filepath.Join(base, "third.key")
	e.must(t, 0, "--key-file", kf, "key", "passwd", "--new-key-file", kf3)
	if m := mode(t, kf3); m != 0o600 {
		t.Fatalf("passwd key file mode %v", m)
	}
	oneLine(t, e.must(t, 1, "--key-file", kf, "snapshots"), "wrong password or key file")
	e.must(t, 0, "--key-file", kf3, "snapshots")

	// down to the last key: removed with --force while others are left,
	// never the last one
	for _, k := range e.keys(t, byNew...) {
		if !k.InUse {
			e.must(t, 0, append(byNew, "key", "remove", k.ID)...)
		}
	}
	ks = e.keys(t, byNew...)
	if len(ks) != 1 {
		t.Fatalf("keys left: %+v", ks)
	}
	oneLine(t, e.must(t, 1, append(byNew, "key", "remove", "--force", ks[0].ID[:8])...), "last key")
	pw2Env.restoreAndCompare(t, id, src, want)
	res = pw2Env.must(t, 0, "check", "--read-data")
	if !strings.Contains(res.stdout, "no errors") {
		t.Fatalf("check after the key changes: %s", res)
	}
}

// A key in use goes only with --force, and only while another key is left.
func TestKeyRemoveForce(t *testing.T) {
	base := t.TempDir()
	e := newEnv(t)
	e.must(t, 0, "init")
	pwFile := filepath.Join(base, "pw")
	mustWrite(t, pwFile, []byte("second"))
	e.must(t, 0, "key", "add", "--new-password-file", pwFile)
	self, _ := inUse(e.keys(t))
	res := e.must(t, 0, "key", "remove", "--force", self.ID[:10])
	if !strings.Contains(res.stdout, "it was the key in use") {
		t.Fatalf("forced remove: %s", res)
	}
	oneLine(t, e.must(t, 1, "snapshots"), "wrong password or key file", "accepts a password")
	e.must(t, 0, "--password-file", pwFile, "snapshots")
}

// openPTY returns a new pseudo-terminal: its controlling side and the
// terminal a child reads from.
func openPTY(t *testing.T) (ctl, tty *os.File) {
	t.Helper()
	ctl, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { ctl.Close() })
	if err := unix.IoctlSetPointerInt(int(ctl.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ctl.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	return ctl, tty
}

// onTerminal runs the binary with stdin on a terminal that has typed
// already.
func (e *env) onTerminal(t *testing.T, typed string, args ...string) result {
	t.Helper()
	ctl, tty := openPTY(t)
	if _, err := ctl.WriteString(typed); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := e.command(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, &out, &errb
	err := cmd.Run()
	res := result{stdout: out.String(), stderr: errb.String(), args: args}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		res.code = ee.ExitCode()
	default:
		t.Fatalf("%v: %v", args, err)
	}
	return res
}

// On a terminal the new password is asked for twice; typed differently,
// nothing is added.
func TestKeyAddAsksOnATerminal(t *testing.T) {
	e := newEnv(t)
	e.must(t, 0, "init")
	res := e.onTerminal(t, "typed twice\ntyped twice\n", "key", "add")
	if res.code != 0 || !strings.Contains(res.stderr, "new password: ") || !strings.Contains(res.stderr, "repeat the new password: ") {
		t.Fatalf("asked on a terminal: %s", res)
	}
	if strings.Contains(res.stdout+res.stderr, "typed twice") {
		t.Errorf("the password was echoed: %s", res)
	}
	typed := *e
	typed.extra = []string{"STILLPOINT_PASSWORD=typed twice"}
	typed.must(t, 0, "snapshots")

	res = e.onTerminal(t, "one\nanother\n", "key", "add")
	if res.code != 1 || !strings.Contains(res.stderr, "the passwords differ; nothing changed") {
		t.Fatalf("passwords that differ: %s", res)
	}
	res = e.onTerminal(t, "\n", "key", "passwd")
	if res.code != 1 || !strings.Contains(res.stderr, "empty") {
		t.Fatalf("empty password: %s", res)
	}
	if got := len(e.keys(t)); got != 2 {
		t.Fatalf("%d keys, want 2", got)
	}
}

// A key written before keys recorded their user lists "-" as its user.
func TestKeyListOldKeyWithoutUser(t *testing.T) {
	e := newEnv(t)
	e.must(t, 0, "init")
	self, _ := inUse(e.keys(t))
	data, err := os.ReadFile(filepath.Join(e.repo, "keys", self.ID))
	if err != nil {
		t.Fatal(err)
	}
	var entry map[string]any
	if err := json.Unmarshal(data, &entry); err != nil {
		t.Fatal(err)
	}
	delete(entry, "user")
	old, _ := json.Marshal(entry)
	oldID := strings.Repeat("0", 63) + "1"
	if err := os.WriteFile(filepath.Join(e.repo, "keys", oldID), old, 0o600); err != nil {
		t.Fatal(err)
	}
	res := e.must(t, 0, "key", "list")
	var line string
	for _, l := range strings.Split(res.stdout, "\n") {
		if strings.Contains(l, oldID[:8]) {
			line = l
		}
	}
	// the copy may be the key in use: it opens with the same key file
	f := strings.Fields(strings.TrimPrefix(line, "*"))
	// ID, date, time, host, user, kind…
	if len(f) < 6 || f[4] != "-" || f[5] != "key" {
		t.Fatalf("old key's line %q in:\n%s", line, res.stdout)
	}
	if !strings.Contains(res.stdout, "2 keys; * is the one in use") {
		t.Errorf("key list: %s", res)
	}
	// the copy opens the repository like the original
	e.must(t, 0, "key", "remove", "--force", self.ID[:8])
	e.must(t, 0, "snapshots")
}
