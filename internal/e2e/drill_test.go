//go:build linux

package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/testutil/ci"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/loopfs"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/pgserver"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/serverutil"
)

// drillJSON is the summary of drill --json.
type drillSummary struct {
	OK    bool `json:"ok"`
	Drill struct {
		Level string `json:"level"`
		Steps []struct {
			Name     string   `json:"name"`
			Path     string   `json:"path"`
			OK       bool     `json:"ok"`
			Message  string   `json:"message"`
			Problems []string `json:"problems"`
		} `json:"steps"`
	} `json:"drill"`
}

func (e *env) drill(t *testing.T, code int, args ...string) (drillSummary, result) {
	t.Helper()
	res := e.must(t, code, append([]string{"--json", "drill"}, args...)...)
	var d drillSummary
	raw, _ := json.Marshal(summary(t, res.stdout))
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	return d, res
}

// snapshotDrill is the drill field of the only snapshot in snapshots --json.
func (e *env) snapshotDrill(t *testing.T) map[string]any {
	t.Helper()
	res := e.must(t, 0, "--json", "snapshots")
	var snaps []map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(res.stdout)), &snaps); err != nil {
		t.Fatal(err)
	}
	if len(snaps) == 0 {
		t.Fatal("no snapshots")
	}
	d, _ := snaps[len(snaps)-1]["drill"].(map[string]any)
	return d
}

func writeJob(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "job.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// reachableScratch is a scratch directory a database server's own user
// may enter (test directories are root's, mode 0700).
func reachableScratch(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	if err := serverutil.MakeReachable(filepath.Join(d, "x")); err != nil {
		t.Fatal(err)
	}
	return d
}

// A snapshot of a running PostgreSQL taken with the postgres writer on a
// btrfs snapshot restores, starts, recovers and passes amcheck and the
// query; snapshots shows it verified.
func TestDrillPostgresWriter(t *testing.T) {
	mnt := loopfs.Btrfs(t, 1024)
	src := filepath.Join(mnt, "srv", "pg")
	data := filepath.Join(src, "data")
	srv := pgserver.Start(t, data)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := srv.Connect(ctx, t, "")
	for _, q := range []string{
		"CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL)",
		"INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 5000) g",
	} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	e := newEnv(t)
	scratch := reachableScratch(t)
	jobFile := writeJob(t, fmt.Sprintf(`sources:
  - {path: %s, snapshot: required}
writers:
  - postgres: %q
drill:
  scratch: %s
  verify:
    - postgres: %s
      query: "SELECT sum(balance) FROM accounts"
      timeout: 2m
`, src, srv.DSN(""), scratch, data))
	e.must(t, 0, "backup", "--job", jobFile)
	d, res := e.drill(t, 0, "--job", jobFile)
	if !d.OK || d.Drill.Level != "restore" || len(d.Drill.Steps) != 3 {
		t.Fatalf("drill: %+v\n%s", d, res)
	}
	pg := d.Drill.Steps[2]
	if pg.Name != "postgres" || !pg.OK || !strings.Contains(pg.Message, "amcheck passed") || !strings.Contains(pg.Message, "returned 500000") {
		t.Errorf("postgres step: %+v", pg)
	}
	if left, _ := os.ReadDir(scratch); len(left) != 0 {
		t.Errorf("scratch space left behind: %v", left)
	}
	sd := e.snapshotDrill(t)
	if sd == nil || sd["ok"] != true || fmt.Sprint(sd["verifiers"]) != "[postgres]" {
		t.Errorf("snapshots --json drill: %v", sd)
	}
	human := e.must(t, 0, "snapshots")
	if !strings.Contains(human.stdout, "verified "+time.Now().Format("2006-01-02")+" (restore: postgres)") {
		t.Errorf("snapshots does not show the drill:\n%s", human.stdout)
	}
}

// A drill of a snapshot whose data was damaged in the repository fails
// and names the file.
func TestDrillDamagedData(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	writeRandom(t, filepath.Join(src, "big.bin"), 7, 3<<20)
	writeRandom(t, filepath.Join(src, "small.txt"), 8, 1000)
	e := newEnv(t)
	e.must(t, 0, "backup", src)
	r := e.openInProcess(t)
	snaps, _, err := r.Snapshots(context.Background())
	if err != nil || len(snaps) != 1 {
		t.Fatal(err)
	}
	blobs := fileBlobs(t, r, snaps[0].Tree)[src+"/big.bin"]
	bi, ok := r.LookupBlob(blobs[len(blobs)/2])
	if !ok {
		t.Fatal("blob of big.bin not indexed")
	}
	pack := e.packPath(bi.Pack)
	f, err := os.OpenFile(pack, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("damage!"), int64(bi.Offset)+16)
	f.Close()

	d, res := e.drill(t, 1, "--level", "read", "--scratch", t.TempDir())
	var restore *struct {
		Name     string   `json:"name"`
		Path     string   `json:"path"`
		OK       bool     `json:"ok"`
		Message  string   `json:"message"`
		Problems []string `json:"problems"`
	}
	for i := range d.Drill.Steps {
		if d.Drill.Steps[i].Name == "restore" {
			restore = &d.Drill.Steps[i]
		}
	}
	if d.OK || restore == nil || restore.OK || !strings.Contains(restore.Message, src+"/big.bin") {
		t.Fatalf("want the restore step to fail naming big.bin: %+v\n%s", d, res)
	}
	if len(restore.Problems) != 1 {
		t.Errorf("problems name more than the damaged file: %v", restore.Problems)
	}
	human := e.must(t, 1, "drill", "--level", "read", "--scratch", t.TempDir())
	if !strings.Contains(human.stdout, "FAILED  restore") || !strings.Contains(human.stdout, "big.bin") || !strings.Contains(human.stderr, "drill of snapshot") {
		t.Errorf("human output:\n%s", human)
	}
	if sd := e.snapshotDrill(t); sd == nil || sd["ok"] != false {
		t.Errorf("snapshots --json drill: %v", sd)
	}
}

// A SQLite database copied live without a writer, torn on purpose (its
// first half from one moment, the rest from a later one), fails
// integrity_check, and the drill says so.
func TestDrillTornSQLite(t *testing.T) {
	src := filepath.Join(t.TempDir(), "app")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(t.TempDir(), "live.db")
	c, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"CREATE TABLE accounts (id INTEGER PRIMARY KEY, note TEXT)", "CREATE INDEX accounts_note ON accounts(note)",
		"WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 3000) INSERT INTO accounts (note) SELECT printf('%0100d', x) FROM n"} {
		if _, err := c.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	before, _ := os.ReadFile(db)
	for _, q := range []string{"DELETE FROM accounts WHERE id % 3 = 0", "VACUUM", "INSERT INTO accounts (note) SELECT note || 'x' FROM accounts"} {
		if _, err := c.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	c.Close()
	after, _ := os.ReadFile(db)
	half := len(before) / 2 / 4096 * 4096
	torn := append(append([]byte{}, after[:half]...), before[half:]...)
	if err := os.WriteFile(filepath.Join(src, "app.db"), torn, 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	jobFile := writeJob(t, fmt.Sprintf("sources:\n  - {path: %s, snapshot: off}\ndrill:\n  verify:\n    - sqlite: %s/app.db\n", src, src))
	e.must(t, 0, "backup", "--job", jobFile)
	res := e.must(t, 1, "drill", "--job", jobFile, "--scratch", t.TempDir())
	if !strings.Contains(res.stdout, "FAILED  sqlite") || !strings.Contains(res.stdout, src+"/app.db (restored as ") || !strings.Contains(res.stdout, "integrity_check failed") {
		t.Errorf("the drill does not say integrity_check failed for the database:\n%s", res)
	}
	if !strings.Contains(res.stderr, "drill of snapshot") || !strings.Contains(res.stderr, "failed: 1 of 3 checks") {
		t.Errorf("stderr: %s", res.stderr)
	}
	if out := e.must(t, 0, "snapshots").stdout; !strings.Contains(out, "FAILED "+time.Now().Format("2006-01-02")+" (restore: sqlite)") {
		t.Errorf("snapshots:\n%s", out)
	}
}

// A git repository passes fsck; forget removes the snapshot's drill
// results, and prune and check pass after it.
func TestDrillGitAndForget(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		serverutil.SkipOrFail(t, "git", "git is not installed")
	}
	src := filepath.Join(t.TempDir(), "repos")
	repoDir := filepath.Join(src, "project")
	for _, args := range [][]string{
		{"init", "-q", repoDir},
		{"-C", repoDir, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "--allow-empty", "-m", "first"},
	} {
		if out, err := exec.Command("git", args...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	writeRandom(t, filepath.Join(repoDir, "file"), 3, 5000)
	for _, args := range [][]string{{"-C", repoDir, "add", "file"}, {"-C", repoDir, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-m", "second"}, {"-C", repoDir, "gc", "-q"}} {
		if out, err := exec.Command("git", args...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	e := newEnv(t)
	jobFile := writeJob(t, fmt.Sprintf("sources: [%s]\ndrill:\n  verify:\n    - git: %s\n", src, src))
	e.must(t, 0, "backup", "--job", jobFile)
	// a newer snapshot of other paths: the drill of the job takes the job's
	other := filepath.Join(t.TempDir(), "other")
	writeRandom(t, filepath.Join(other, "x"), 4, 100)
	e.must(t, 0, "backup", other)
	d, res := e.drill(t, 0, "--job", jobFile, "--scratch", t.TempDir())
	if !d.OK || !strings.Contains(d.Drill.Steps[len(d.Drill.Steps)-1].Message, "passed for 1 repositories") {
		t.Fatalf("%+v\n%s", d, res)
	}
	if got := summary(t, res.stdout)["snapshot_id"]; got != e.snapshotIDs(t)[0] {
		t.Errorf("drilled snapshot %v, not the job's", got)
	}
	if n := drillFiles(t, filepath.Join(e.repo, "drills")); n != 1 {
		t.Fatalf("%d drill results stored, want 1", n)
	}
	ids := e.snapshotIDs(t)
	e.must(t, 0, "forget", ids[0])
	if n := drillFiles(t, filepath.Join(e.repo, "drills")); n != 0 {
		t.Errorf("forget left %d drill results of the snapshot it removed", n)
	}
	e.must(t, 0, "prune")
	e.must(t, 0, "check")
}

func drillFiles(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return len(entries)
}

// A command verifier that hangs is killed after its timeout, with the
// child it started; the drill fails saying so, and leaves no scratch.
func TestDrillHangingCommand(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	writeRandom(t, filepath.Join(src, "f"), 1, 100)
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	e := newEnv(t)
	scratch := t.TempDir()
	jobFile := writeJob(t, fmt.Sprintf(`sources: [%s]
drill:
  scratch: %s
  verify:
    - command: "sleep 60 & echo $! > %s; wait"
      timeout: 1s
`, src, scratch, pidFile))
	e.must(t, 0, "backup", "--job", jobFile)
	t0 := time.Now()
	d, res := e.drill(t, 1, "--job", jobFile)
	if took := time.Since(t0); took > 30*time.Second {
		t.Errorf("the drill took %s", took)
	}
	last := d.Drill.Steps[len(d.Drill.Steps)-1]
	if last.Name != "command" || last.OK || !strings.Contains(last.Message, "did not finish within 1s: killed") {
		t.Fatalf("command step: %+v\n%s", last, res)
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
			t.Fatalf("the verifier's child %d outlived the drill", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if left, _ := os.ReadDir(scratch); len(left) != 0 {
		t.Errorf("scratch space left behind: %v", left)
	}
}

// A scratch directory too small for the snapshot stops the drill before
// the restore, naming the directory; nothing is stored or left behind.
func TestDrillScratchTooSmall(t *testing.T) {
	ci.NeedRoot(t)
	scratch := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", scratch).CombinedOutput(); err != nil {
		serverutil.SkipOrFail(t, "tmpfs", "mount: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", scratch).Run() })
	src := filepath.Join(t.TempDir(), "src")
	writeRandom(t, filepath.Join(src, "f"), 1, 1<<20)
	e := newEnv(t)
	e.must(t, 0, "backup", src)
	res := e.must(t, 1, "drill", "--scratch", scratch)
	if !strings.Contains(res.stderr, "not enough free space") || !strings.Contains(res.stderr, "scratch directory "+scratch+" has 16.0 MiB free") || !strings.Contains(res.stderr, "--scratch") {
		t.Errorf("%s", res)
	}
	if left, _ := os.ReadDir(scratch); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
	if n := drillFiles(t, filepath.Join(e.repo, "drills")); n != 0 {
		t.Errorf("%d drill results stored for a drill that did not run", n)
	}
}

func TestDrillUsage(t *testing.T) {
	e := newEnv(t)
	res := e.must(t, 2, "drill", "--level", "deep")
	if !strings.Contains(res.stderr, `unknown drill level "deep"`) {
		t.Errorf("%s", res)
	}
	jobFile := writeJob(t, "sources: [/srv]\ndrill: {level: restor}\n")
	res = e.must(t, 2, "drill", "--job", jobFile)
	if !strings.Contains(res.stderr, "drill.level") || !strings.Contains(res.stderr, `did you mean "restore"?`) {
		t.Errorf("%s", res)
	}
	help := e.must(t, 0, "drill", "--help")
	for _, w := range []string{"Examples:", "--level", "Exit codes"} {
		if !strings.Contains(help.stdout, w) {
			t.Errorf("--help lacks %q", w)
		}
	}
}
