//go:build unix

package drill

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/archiver"
	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/serverutil"
	"github.com/stillpoint-backup/stillpoint/internal/view"
)

var bg = context.Background()

// backup stores src in a new in-memory repository as one snapshot.
func backup(t *testing.T, src string) (*repo.Repository, *backend.Mem, *repo.Snapshot) {
	t.Helper()
	be := backend.NewMem()
	r, err := repo.Init(bg, be, repo.Credential{KeyFile: repo.NewKeyFileSecret()}, repo.DefaultConfig)
	if err != nil {
		t.Fatal(err)
	}
	res, err := archiver.New(r, &view.Live{}, archiver.Options{}).Run(bg, []string{src})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(bg); err != nil {
		t.Fatal(err)
	}
	s := &repo.Snapshot{Time: time.Now(), Host: "h", Paths: []string{src}, Tree: res.Tree, Stats: res.Stats}
	if _, err := r.SaveSnapshot(bg, s); err != nil {
		t.Fatal(err)
	}
	return r, be, s
}

func writeDB(t *testing.T, path string, rows int) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		"PRAGMA foreign_keys = ON",
		"CREATE TABLE owners (id INTEGER PRIMARY KEY, name TEXT)",
		"CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner INTEGER REFERENCES owners(id), note TEXT)",
		"CREATE INDEX accounts_note ON accounts(note)",
		"INSERT INTO owners VALUES (1, 'a')",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		if _, err := tx.Exec("INSERT INTO accounts (owner, note) VALUES (1, ?)", strings.Repeat(strconv.Itoa(i), 40)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func gitRepo(t *testing.T, dir string) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		serverutil.SkipOrFail(t, "git", "git is not installed")
	}
	for _, args := range [][]string{
		{"init", "-q", dir},
		{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "--allow-empty", "-m", "one"},
	} {
		if out, err := exec.Command("git", args...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("content\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"-C", dir, "add", "f"}, {"-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-m", "two"}} {
		if out, err := exec.Command("git", args...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
	}
}

func step(t *testing.T, res *repo.DrillResult, name string) repo.DrillStep {
	t.Helper()
	for _, s := range res.Steps {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no step %s in %+v", name, res.Steps)
	return repo.DrillStep{}
}

func TestDrillPasses(t *testing.T) {
	src := filepath.Join(t.TempDir(), "srv")
	if err := os.MkdirAll(filepath.Join(src, "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeDB(t, filepath.Join(src, "app", "app.db"), 50)
	gitRepo(t, filepath.Join(src, "repos", "one"))
	r, _, s := backup(t, src)

	scratch := t.TempDir()
	seen := filepath.Join(t.TempDir(), "seen")
	cursorFile := filepath.Join(t.TempDir(), "cursor")
	res, err := Run(bg, r, s, Options{Level: Restore, Scratch: scratch, ReadBack: 3, CursorFile: cursorFile, Verifiers: []Spec{
		{Kind: "sqlite", Path: src + "/app/app.db", Query: "SELECT count(*) FROM accounts"},
		{Kind: "git", Path: src + "/repos"},
		{Kind: "command", Path: src + "/app", Command: `test -f "$STILLPOINT_DRILL_PATH/app.db" && echo "$STILLPOINT_DRILL_ORIGINAL $STILLPOINT_DRILL_SNAPSHOT" > ` + seen},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK {
		t.Fatalf("drill failed: %+v", res.Steps)
	}
	if got := step(t, res, "sqlite").Message; !strings.Contains(got, "integrity_check ok") || !strings.Contains(got, "returned 50") {
		t.Errorf("sqlite: %s", got)
	}
	if got := step(t, res, "git").Message; !strings.Contains(got, "passed for 1 repositories") {
		t.Errorf("git: %s", got)
	}
	if b, _ := os.ReadFile(seen); string(b) != src+"/app "+s.ID.String()+"\n" {
		t.Errorf("the command saw %q", b)
	}
	if res.Level != "restore" || res.ReadSubset != "1/3" || res.Files < 3 || res.Origin != s.ID {
		t.Errorf("result: %+v", res)
	}
	if left, _ := os.ReadDir(scratch); len(left) != 0 {
		t.Errorf("scratch space left behind: %v", left)
	}
	if b, _ := os.ReadFile(cursorFile); string(b) != "2/3\n" {
		t.Errorf("cursor after the first drill: %q", b)
	}
}

// Three drills with read-back 3 read every pack exactly once, then the
// rotation starts again.
func TestDrillReadBackRotation(t *testing.T) {
	src := t.TempDir()
	for i := range 40 {
		b := make([]byte, 256<<10)
		for j := range b {
			b[j] = byte(i*7 + j*13 + j>>9)
		}
		if err := os.WriteFile(filepath.Join(src, fmt.Sprint(i)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, be, s := backup(t, src)
	packs := 0
	_ = be.List(bg, backend.Packs, func(backend.FileInfo) error { packs++; return nil })
	cursorFile := filepath.Join(t.TempDir(), "cursor")
	read := 0
	var subsets []string
	for range 4 {
		res, err := Run(bg, r, s, Options{Level: Check, ReadBack: 3, CursorFile: cursorFile})
		if err != nil || !res.OK {
			t.Fatalf("%v %+v", err, res)
		}
		subsets = append(subsets, res.ReadSubset)
		if len(subsets) <= 3 {
			read += res.PacksRead
		}
	}
	if strings.Join(subsets, " ") != "1/3 2/3 3/3 1/3" {
		t.Errorf("subsets: %v", subsets)
	}
	if packs < 2 || read != packs {
		t.Errorf("three drills read %d packs of %d", read, packs)
	}
}

func TestDrillNamesDamagedFile(t *testing.T) {
	src := t.TempDir()
	big := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{1}).Read(big) // incompressible: its pack is the big one
	if err := os.WriteFile(filepath.Join(src, "data.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	r, be, s := backup(t, src)
	// flip a byte in the middle of every data pack (not the small one of
	// the trees): the file's blobs fail their checks
	_ = be.List(bg, backend.Packs, func(fi backend.FileInfo) error {
		if fi.Size < 512<<10 {
			return nil
		}
		be.Tamper(backend.Handle{Kind: backend.Packs, Name: fi.Name}, func(b []byte) []byte { b[len(b)/2] ^= 0xff; return b })
		return nil
	})
	res, err := Run(bg, r, s, Options{Level: Read, Scratch: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	st := step(t, res, "restore")
	if res.OK || st.OK || !strings.Contains(st.Message, filepath.Join(src, "data.bin")) {
		t.Fatalf("want the restore to fail naming data.bin: %+v", st)
	}
}

func TestScratchTooSmall(t *testing.T) {
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, _, s := backup(t, src)
	s.Stats.Bytes = 1 << 60
	scratch := t.TempDir()
	_, err := Run(bg, r, s, Options{Level: Read, Scratch: scratch})
	if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), scratch) || !strings.Contains(err.Error(), "--scratch") {
		t.Fatalf("want a no-space error naming the directory, got %v", err)
	}
	if left, _ := os.ReadDir(scratch); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

// tearCopy writes a copy of db as a live copy without a writer can leave
// it: its first pages from one moment, the rest from a later one.
func tearCopy(t *testing.T, db, torn string) {
	t.Helper()
	before, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	c, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"DELETE FROM accounts WHERE id % 3 = 0", "VACUUM",
		"INSERT INTO accounts (owner, note) SELECT owner, note || 'x' FROM accounts"} {
		if _, err := c.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	after, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	half := len(before) / 2 / 4096 * 4096
	out := append(append([]byte{}, after[:half]...), before[half:]...)
	if err := os.WriteFile(torn, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSQLiteVerifier(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "app.db")
	writeDB(t, db, 2000)
	torn := filepath.Join(dir, "torn.db")
	tearCopy(t, db, torn)

	env := func(p, q string) verifyEnv {
		return verifyEnv{spec: Spec{Kind: "sqlite", Path: p, Query: q}, restored: p}
	}
	if msg, err := verifySQLite(bg, env(db, "SELECT count(*) FROM accounts")); err != nil {
		t.Errorf("the whole database fails: %v", err)
	} else if !strings.Contains(msg, "returned") {
		t.Errorf("message: %s", msg)
	}
	if msg, err := verifySQLite(bg, env(db, "SELECT note, id FROM accounts ORDER BY id DESC LIMIT 1")); err != nil || !strings.Contains(msg, `returned "1999`) {
		t.Errorf("a query of two columns: %s, %v", msg, err)
	}
	_, err := verifySQLite(bg, env(torn, ""))
	if err == nil || !strings.Contains(err.Error(), "integrity_check") {
		t.Errorf("the torn copy: want integrity_check to fail, got %v", err)
	}
	for _, q := range []string{"SELECT count(*) FROM accounts WHERE id < 0", "SELECT note FROM accounts WHERE id < 0", "SELECT NULL"} {
		if _, err := verifySQLite(bg, env(db, q)); err == nil {
			t.Errorf("query %q passes", q)
		}
	}
	if _, err := verifySQLite(bg, env(db, "SELECT nothing FROM nowhere")); err == nil || !strings.Contains(err.Error(), "nowhere") {
		t.Errorf("a bad query: %v", err)
	}
	// a broken foreign key
	c, _ := sql.Open("sqlite", db)
	if _, err := c.Exec("INSERT INTO accounts (owner, note) VALUES (99, 'orphan')"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := verifySQLite(bg, env(db, "")); err == nil || !strings.Contains(err.Error(), "foreign_key_check failed") || !strings.Contains(err.Error(), "owners") {
		t.Errorf("a broken foreign key: %v", err)
	}
	notDB := filepath.Join(dir, "text")
	os.WriteFile(notDB, []byte(strings.Repeat("not a database\n", 100)), 0o644)
	if _, err := verifySQLite(bg, env(notDB, "")); err == nil {
		t.Error("a text file passes as a database")
	}
}

func TestGitVerifier(t *testing.T) {
	root := t.TempDir()
	gitRepo(t, filepath.Join(root, "a"))
	gitRepo(t, filepath.Join(root, "nested", "b"))
	if out, err := exec.Command("git", "clone", "-q", "--bare", filepath.Join(root, "a"), filepath.Join(root, "bare.git")).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	env := verifyEnv{spec: Spec{Kind: "git", Path: "/srv/repos"}, restored: root, scratch: filepath.Dir(root)}
	msg, err := verifyGit(bg, env)
	if err != nil || !strings.Contains(msg, "passed for 3 repositories") {
		t.Fatalf("%s, %v", msg, err)
	}
	// damage an object of b
	objs, _ := filepath.Glob(filepath.Join(root, "nested", "b", ".git", "objects", "??", "*"))
	if len(objs) == 0 {
		t.Fatal("no loose objects")
	}
	for _, o := range objs {
		os.Chmod(o, 0o644)
		os.WriteFile(o, []byte("garbage"), 0o644)
	}
	_, err = verifyGit(bg, env)
	if err == nil || !strings.Contains(err.Error(), "1 of 3 repositories fail") || !strings.Contains(err.Error(), "nested/b") {
		t.Errorf("a damaged repository: %v", err)
	}
	if _, err := verifyGit(bg, verifyEnv{spec: Spec{Path: "/x"}, restored: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "no git repository") {
		t.Errorf("no repository: %v", err)
	}
}

func TestCommandVerifier(t *testing.T) {
	dir := t.TempDir()
	env := func(cmd string, timeout time.Duration) repo.DrillStep {
		return runVerifier(bg, Spec{Kind: "command", Command: cmd, Timeout: timeout}, dir, &repo.Snapshot{})
	}
	if st := env("echo all good", time.Minute); !st.OK || st.Message != "exit 0: all good" {
		t.Errorf("passing command: %+v", st)
	}
	if st := env("echo table x is broken >&2; exit 3", time.Minute); st.OK || !strings.Contains(st.Message, "exit status 3") || !strings.Contains(st.Message, "table x is broken") {
		t.Errorf("failing command: %+v", st)
	}

	// a command that hangs, with a child of its own, is killed whole
	pidFile := filepath.Join(dir, "child.pid")
	t0 := time.Now()
	st := env("sleep 60 & echo $! > "+pidFile+"; wait", 500*time.Millisecond)
	if took := time.Since(t0); took > 10*time.Second {
		t.Errorf("the hanging verifier took %s to be killed", took)
	}
	if st.OK || !strings.Contains(st.Message, "did not finish within 500ms: killed") {
		t.Errorf("hanging command: %+v", st)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the verifier's child %d outlived it", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMissingPath(t *testing.T) {
	st := runVerifier(bg, Spec{Kind: "sqlite", Path: "/srv/none.db"}, t.TempDir(), &repo.Snapshot{Paths: []string{"/srv/app"}})
	if st.OK || !strings.Contains(st.Message, "/srv/none.db is not in snapshot") || !strings.Contains(st.Message, "/srv/app") {
		t.Errorf("%+v", st)
	}
}
