package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"runtime"
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
	for _, want := range []string{"wrong password or key file", "the key of", "did not open", "accepts a password", "memory"} {
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
	removed, err := RemoveLocks(bg, be, StaleLocks)
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
	if removed, _ := RemoveLocks(bg, be, AllLocks); len(removed) != 2 {
		t.Fatalf("remove all removed %d", len(removed))
	}
	// a damaged lock file is listed, not fatal, and counts as stale
	saveLock(t, be, LockInfo{})
	if err := be.Save(bg, backend.Handle{Kind: backend.Locks, Name: NewRandomID().String()}, []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	if removed, _ := RemoveLocks(bg, be, StaleLocks); len(removed) != 2 {
		t.Fatalf("damaged locks: removed %d, want 2", len(removed))
	}
}

// --- keyring -------------------------------------------------------------

// removeHook runs after each Remove of a key, as another process would.
type removeHook struct {
	backend.Backend
	failRemove bool
	after      func()
}

func (b *removeHook) Remove(ctx context.Context, h backend.Handle) error {
	if b.failRemove && h.Kind == backend.Keys {
		return errors.New("injected: remove failed")
	}
	if err := b.Backend.Remove(ctx, h); err != nil {
		return err
	}
	if b.after != nil && h.Kind == backend.Keys {
		b.after()
	}
	return nil
}

func keyCount(t *testing.T, be backend.Backend) int {
	t.Helper()
	n := 0
	if err := be.List(bg, backend.Keys, func(backend.FileInfo) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// saveTestBlob stores one blob through r and returns its id.
func saveTestBlob(t *testing.T, r *Repository, data []byte) ID {
	t.Helper()
	id := r.Hash(data)
	if _, err := r.SaveBlob(bg, DataBlob, id, data); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(bg); err != nil {
		t.Fatal(err)
	}
	return id
}

func mustReadBlob(t *testing.T, be backend.Backend, cred Credential, id ID, want []byte) {
	t.Helper()
	r, err := Open(bg, be, cred)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	got, err := r.LoadBlob(bg, id)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("blob through this key: %q %v", got, err)
	}
}

func TestKeyringListAddRemove(t *testing.T) {
	be := backend.NewMem()
	first := Credential{KeyFile: NewKeyFileSecret()}
	r, err := Init(bg, be, first, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("saved before any key was added")
	blob := saveTestBlob(t, r, data)

	kr, err := OpenKeyring(bg, be, first)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kr.List(bg)
	if err != nil || len(keys) != 1 {
		t.Fatalf("list: %v %v", keys, err)
	}
	host, _ := os.Hostname()
	k0 := keys[0]
	if !k0.InUse || k0.ID != kr.InUse() || k0.Kind != KeyKindFile || k0.Host != host || k0.User == "" || k0.Created.IsZero() {
		t.Fatalf("first key: %+v", k0)
	}

	pw := Credential{Password: "second way"}
	added, err := kr.Add(bg, pw)
	if err != nil {
		t.Fatal(err)
	}
	if added.Kind != KeyKindPassword || added.InUse || added.User == "" {
		t.Fatalf("added: %+v", added)
	}
	// an older key without a user, and a damaged one: listed, not fatal
	old := &keyEntry{}
	*old = mustEntry(t, Credential{KeyFile: NewKeyFileSecret()}, r.key)
	old.User = ""
	oldName, err := saveKey(bg, be, old)
	if err != nil {
		t.Fatal(err)
	}
	damaged := NewRandomID().String()
	if err := be.Save(bg, backend.Handle{Kind: backend.Keys, Name: damaged}, []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	keys, err = kr.List(bg)
	if err != nil || len(keys) != 4 {
		t.Fatalf("list after adding: %d keys, %v", len(keys), err)
	}
	byID := map[string]KeyInfo{}
	inUse := 0
	for _, k := range keys {
		byID[k.ID] = k
		if k.InUse {
			inUse++
		}
	}
	if inUse != 1 || !byID[k0.ID].InUse {
		t.Fatalf("%d keys in use, want exactly the first: %+v", inUse, keys)
	}
	if byID[oldName].User != "" || byID[oldName].Kind != KeyKindFile {
		t.Fatalf("old key: %+v", byID[oldName])
	}
	if byID[damaged].Damaged == "" || byID[damaged].Kind != "" {
		t.Fatalf("damaged key: %+v", byID[damaged])
	}

	// refusals remove nothing
	_, err = kr.Remove(bg, k0.ID[:8], false)
	if !errors.Is(err, ErrKeyInUse) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("remove key in use: %v", err)
	}
	for _, bad := range []string{"", "zz", NewRandomID().String()} {
		if _, err := kr.Remove(bg, bad, true); err == nil || !strings.Contains(err.Error(), "key") {
			t.Fatalf("remove %q: %v", bad, err)
		}
	}
	if n := keyCount(t, be); n != 4 {
		t.Fatalf("%d keys after refusals, want 4", n)
	}

	// the damaged one can be removed; then the old key, by a prefix
	if k, err := kr.Remove(bg, damaged[:10], false); err != nil || k.ID != damaged {
		t.Fatalf("remove damaged: %+v %v", k, err)
	}
	if _, err := kr.Remove(bg, strings.ToUpper(oldName[:12]), false); err != nil {
		t.Fatalf("remove by upper-case prefix: %v", err)
	}
	mustReadBlob(t, be, pw, blob, data)
	mustReadBlob(t, be, first, blob, data)

	// the key in use goes with --force; the password is left and still reads
	if _, err := kr.Remove(bg, k0.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(bg, be, first); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("removed key still opens: %v", err)
	}
	mustReadBlob(t, be, pw, blob, data)

	// never the last key, with or without --force
	kr2, err := OpenKeyring(bg, be, pw)
	if err != nil {
		t.Fatal(err)
	}
	_, err = kr2.Remove(bg, added.ID[:8], true)
	if err == nil || !strings.Contains(err.Error(), "last key") {
		t.Fatalf("remove last key: %v", err)
	}
	if n := keyCount(t, be); n != 1 {
		t.Fatalf("%d keys, want 1", n)
	}
	mustReadBlob(t, be, pw, blob, data)
}

func mustEntry(t *testing.T, c Credential, mk *MasterKey) keyEntry {
	t.Helper()
	e, err := newKeyEntry(c, mk)
	if err != nil {
		t.Fatal(err)
	}
	return *e
}

func TestKeyringAmbiguousPrefix(t *testing.T) {
	be := backend.NewMem()
	first := Credential{KeyFile: NewKeyFileSecret()}
	if _, err := Init(bg, be, first, testConfig()); err != nil {
		t.Fatal(err)
	}
	kr, err := OpenKeyring(bg, be, first)
	if err != nil {
		t.Fatal(err)
	}
	// 17 keys: two of them share a first hex digit
	seen := map[byte]string{}
	var a, b string
	for range 17 {
		k, err := kr.Add(bg, Credential{KeyFile: NewKeyFileSecret()})
		if err != nil {
			t.Fatal(err)
		}
		if o, ok := seen[k.ID[0]]; ok && a == "" {
			a, b = o, k.ID
		}
		seen[k.ID[0]] = k.ID
	}
	n := keyCount(t, be)
	_, err = kr.Remove(bg, a[:1], false)
	if err == nil || !strings.Contains(err.Error(), "ambiguous") || !strings.Contains(err.Error(), "nothing removed") {
		t.Fatalf("ambiguous prefix %q (%s, %s): %v", a[:1], a, b, err)
	}
	if got := keyCount(t, be); got != n {
		t.Fatalf("%d keys after an ambiguous remove, want %d", got, n)
	}
}

func TestKeyringPasswd(t *testing.T) {
	be := backend.NewMem()
	oldPW := Credential{Password: "old"}
	r, err := Init(bg, be, oldPW, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("written under the old password")
	blob := saveTestBlob(t, r, data)
	cfgBefore, _ := ReadConfig(bg, be)

	// a crash between adding and removing: both keys open
	crashy := &removeHook{Backend: be, failRemove: true}
	kr, err := OpenKeyring(bg, crashy, oldPW)
	if err != nil {
		t.Fatal(err)
	}
	mid := Credential{Password: "mid"}
	if _, _, err := kr.Passwd(bg, mid); err == nil || !strings.Contains(err.Error(), "added") {
		t.Fatalf("passwd with a failing remove: %v", err)
	}
	mustReadBlob(t, be, oldPW, blob, data)
	mustReadBlob(t, be, mid, blob, data)

	kr, err = OpenKeyring(bg, be, oldPW)
	if err != nil {
		t.Fatal(err)
	}
	newPW := Credential{Password: "new"}
	added, removed, err := kr.Passwd(bg, newPW)
	if err != nil {
		t.Fatal(err)
	}
	if removed.Kind != KeyKindPassword || added.Kind != KeyKindPassword || kr.InUse() != added.ID || !added.InUse || !removed.InUse {
		t.Fatalf("passwd: added %+v removed %+v in use %s", added, removed, kr.InUse())
	}
	_, err = Open(bg, be, oldPW)
	if !errors.Is(err, ErrWrongKey) {
		t.Fatalf("old password after passwd: %v", err)
	}
	mustReadBlob(t, be, newPW, blob, data)
	mustReadBlob(t, be, mid, blob, data)
	// the master key did not change: nothing but keys/ was touched
	cfgAfter, _ := ReadConfig(bg, be)
	if cfgAfter.ID != cfgBefore.ID {
		t.Fatal("config changed")
	}

	// a password repository can move to a key file
	file := Credential{KeyFile: NewKeyFileSecret()}
	kr, err = OpenKeyring(bg, be, newPW)
	if err != nil {
		t.Fatal(err)
	}
	if added, _, err := kr.Passwd(bg, file); err != nil || added.Kind != KeyKindFile {
		t.Fatalf("passwd to a key file: %+v %v", added, err)
	}
	mustReadBlob(t, be, file, blob, data)
	if _, err := OpenKeyring(bg, be, Credential{Password: "wrong"}); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("keyring with a wrong password: %v", err)
	}
}

// Two removals at once must not leave the repository without a key: the
// one that finds no key left writes its key back.
func TestKeyringRemoveRaceWritesBack(t *testing.T) {
	mem := backend.NewMem()
	a := Credential{KeyFile: NewKeyFileSecret()}
	r, err := Init(bg, mem, a, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("kept through the race")
	blob := saveTestBlob(t, r, data)
	b := Credential{KeyFile: NewKeyFileSecret()}
	kr, err := OpenKeyring(bg, mem, a)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := kr.Add(bg, b)
	if err != nil {
		t.Fatal(err)
	}
	// "another process" removes key a right after we remove key b
	hook := &removeHook{Backend: mem}
	hook.after = func() {
		hook.after = nil
		if err := mem.Remove(bg, backend.Handle{Kind: backend.Keys, Name: kr.InUse()}); err != nil {
			t.Error(err)
		}
	}
	kr2, err := OpenKeyring(bg, hook, a)
	if err != nil {
		t.Fatal(err)
	}
	_, err = kr2.Remove(bg, kb.ID, false)
	if err == nil || !strings.Contains(err.Error(), "written back") {
		t.Fatalf("remove that lost the race: %v", err)
	}
	if n := keyCount(t, mem); n != 1 {
		t.Fatalf("%d keys, want the one written back", n)
	}
	mustReadBlob(t, mem, b, blob, data)
}

func TestWriteKeyFile(t *testing.T) {
	p := t.TempDir() + "/k.key"
	if err := WriteKeyFile(p, []byte("one")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	err = WriteKeyFile(p, []byte("two"))
	if err == nil || !strings.Contains(err.Error(), "never overwritten") {
		t.Fatalf("second write: %v", err)
	}
	if got, _ := os.ReadFile(p); string(got) != "one" {
		t.Fatalf("existing key file changed: %q", got)
	}
}
