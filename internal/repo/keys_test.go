package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
)

var bg = context.Background()

func testConfig() Config {
	cfg := DefaultConfig
	cfg.PackSize = 1 << 20
	return cfg
}

func TestWrongPassword(t *testing.T) {
	be := backend.NewMem()
	if _, err := Init(bg, be, Credential{Password: "right"}, testConfig()); err != nil {
		t.Fatal(err)
	}
	_, err := Open(bg, be, Credential{Password: "wrong"})
	if !errors.Is(err, ErrWrongKey) {
		t.Fatalf("wrong password: %v, want ErrWrongKey", err)
	}
	msg := err.Error()
	for _, want := range []string{"wrong password or key file", "accepts a password", "memory"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not say %q", msg, want)
		}
	}
	if _, err := Open(bg, be, Credential{KeyFile: NewKeyFileSecret()}); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("key file on a password repository: %v", err)
	}
	if _, err := Open(bg, be, Credential{Password: "right"}); err != nil {
		t.Fatalf("right password: %v", err)
	}
}

func TestKeyFileRepository(t *testing.T) {
	be := backend.NewMem()
	secret := NewKeyFileSecret()
	r, err := Init(bg, be, Credential{KeyFile: secret}, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	text := EncodeKeyFile(r.Config().ID, secret)
	if !bytes.Contains(text, []byte(r.Config().ID)) {
		t.Error("key file text does not name its repository")
	}
	got, err := DecodeKeyFile(text)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("key file round trip: %x %v", got, err)
	}
	// CRLF line ends, as after a copy through another system
	crlf := bytes.ReplaceAll(text, []byte("\n"), []byte("\r\n"))
	if got, err := DecodeKeyFile(crlf); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("CRLF key file: %v", err)
	}
	if _, err := Open(bg, be, Credential{KeyFile: got}); err != nil {
		t.Fatalf("open with decoded key file: %v", err)
	}
	_, err = Open(bg, be, Credential{KeyFile: NewKeyFileSecret()})
	if !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), "accepts a key file") {
		t.Fatalf("other key file: %v", err)
	}
	if _, err := Open(bg, be, Credential{Password: "guess"}); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("password on a key file repository: %v", err)
	}
	for name, bad := range map[string]string{
		"not base64": "# comment\nnot*base64!\n",
		"too short":  "AAAA\n",
		"empty":      "# only a comment\n\n",
	} {
		if _, err := DecodeKeyFile([]byte(bad)); err == nil {
			t.Errorf("%s key file accepted", name)
		}
	}
}

func TestAddKeyOpensTheSameData(t *testing.T) {
	be := backend.NewMem()
	secret := NewKeyFileSecret()
	r, err := Init(bg, be, Credential{KeyFile: secret}, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.AddKey(bg, Credential{Password: "second way"}); err != nil {
		t.Fatal(err)
	}
	data := []byte("content saved under the first key")
	id := r.Hash(data)
	if _, err := r.SaveBlob(bg, DataBlob, id, data); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(bg); err != nil {
		t.Fatal(err)
	}
	// a damaged key file entry is skipped, not fatal
	if err := be.Save(bg, backend.Handle{Kind: backend.Keys, Name: NewRandomID().String()}, []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	r2, err := Open(bg, be, Credential{Password: "second way"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := r2.LoadBlob(bg, id)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("blob through the added key: %q %v", got, err)
	}
}

// --- locks ---------------------------------------------------------------

func newTestRepo(t *testing.T) (*Repository, *backend.Mem) {
	t.Helper()
	be := backend.NewMem()
	r, err := Init(bg, be, Credential{KeyFile: NewKeyFileSecret()}, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	return r, be
}

func TestLocksSharedAndExclusive(t *testing.T) {
	r, be := newTestRepo(t)
	a, err := r.Lock(bg, false, "backup")
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Lock(bg, false, "check")
	if err != nil {
		t.Fatalf("second shared lock: %v", err)
	}
	if ls, _ := ListLocks(bg, be); len(ls) != 2 {
		t.Fatalf("%d lock files, want 2", len(ls))
	}
	_, err = r.Lock(bg, true, "prune")
	var le *ErrLocked
	if !errors.As(err, &le) || le.Holder.Exclusive {
		t.Fatalf("exclusive over shared: %v", err)
	}
	if !strings.Contains(err.Error(), "repository is locked") || !strings.Contains(err.Error(), "shared lock by") {
		t.Errorf("unclear message: %v", err)
	}
	if strings.Contains(err.Error(), "stillpoint unlock") {
		t.Errorf("live lock called stale: %v", err)
	}
	// the refused attempt leaves no lock of its own behind
	if ls, _ := ListLocks(bg, be); len(ls) != 2 {
		t.Fatalf("%d lock files after a refused lock, want 2", len(ls))
	}
	a.Unlock()
	b.Unlock()
	if ls, _ := ListLocks(bg, be); len(ls) != 0 {
		t.Fatalf("%d lock files after Unlock", len(ls))
	}
	x, err := r.Lock(bg, true, "prune")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Lock(bg, false, "backup"); !errors.As(err, &le) || !le.Holder.Exclusive || le.Holder.Command != "prune" {
		t.Fatalf("shared over exclusive: %v", err)
	}
	x.Unlock()
	if s, err := r.Lock(bg, false, "backup"); err != nil {
		t.Fatalf("after the exclusive lock is gone: %v", err)
	} else {
		s.Unlock()
	}
}

func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if processAlive(pid) {
		t.Skipf("pid %d was reused already", pid)
	}
	return pid
}

func saveLock(t *testing.T, be backend.Backend, li LockInfo) string {
	t.Helper()
	data, _ := json.Marshal(li)
	name := NewRandomID().String()
	if err := be.Save(bg, backend.Handle{Kind: backend.Locks, Name: name}, data); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestStaleLocks(t *testing.T) {
	r, be := newTestRepo(t)
	host, _ := os.Hostname()
	now := time.Now().UTC()
	dead := saveLock(t, be, LockInfo{Exclusive: true, Host: host, PID: deadPID(t), Command: "prune", Time: now})
	oldRemote := saveLock(t, be, LockInfo{Host: "elsewhere.invalid", PID: 1, Command: "backup", Time: now.Add(-time.Hour)})
	newRemote := saveLock(t, be, LockInfo{Host: "elsewhere.invalid", PID: 1, Command: "backup", Time: now.Add(-time.Minute)})
	live := saveLock(t, be, LockInfo{Host: host, PID: os.Getpid(), Command: "backup", Time: now.Add(-time.Hour)})

	_, err := r.Lock(bg, false, "backup")
	if err == nil || !strings.Contains(err.Error(), "stillpoint unlock") || !strings.Contains(err.Error(), "prune") {
		t.Fatalf("lock over a dead process's exclusive lock: %v (want a hint to run unlock)", err)
	}
	removed, err := RemoveLocks(bg, be, false)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, l := range removed {
		got[l.Name] = true
	}
	if !got[dead] || !got[oldRemote] || got[newRemote] || got[live] || len(removed) != 2 {
		t.Fatalf("removed %v; want exactly the dead-pid and the old remote lock", got)
	}
	left, _ := ListLocks(bg, be)
	if len(left) != 2 {
		t.Fatalf("%d locks left, want 2", len(left))
	}
	l, err := r.Lock(bg, false, "backup")
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	l.Unlock()
	if removed, _ := RemoveLocks(bg, be, true); len(removed) != 2 {
		t.Fatalf("remove all removed %d", len(removed))
	}
	// a damaged lock file is listed, not fatal, and counts as stale
	saveLock(t, be, LockInfo{})
	if err := be.Save(bg, backend.Handle{Kind: backend.Locks, Name: NewRandomID().String()}, []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	if removed, _ := RemoveLocks(bg, be, false); len(removed) != 2 {
		t.Fatalf("damaged locks: removed %d, want 2", len(removed))
	}
}
