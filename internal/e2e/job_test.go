//go:build linux

package e2e

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

const bankAccounts, bankStart = 20, 1000

// bankWriter moves money between accounts, one transaction per transfer,
// until its parent goes away. The total never changes.
func bankWriter(path string) {
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		os.Exit(2)
	}
	db.SetMaxOpenConns(1)
	os.Stdout.WriteString("ready\n")
	for ppid := os.Getppid(); os.Getppid() == ppid; {
		a, b := rand.IntN(bankAccounts), rand.IntN(bankAccounts)
		amount := rand.IntN(50)
		tx, err := db.Begin()
		if err != nil {
			continue
		}
		tx.Exec("UPDATE acct SET bal = bal - ? WHERE id = ?", amount, a)
		time.Sleep(200 * time.Microsecond) // the torn moment: money is nowhere
		tx.Exec("UPDATE acct SET bal = bal + ? WHERE id = ?", amount, b)
		tx.Commit()
	}
}

func newBank(t *testing.T, path, journal string) {
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{"PRAGMA journal_mode=" + journal, "CREATE TABLE acct(id INTEGER PRIMARY KEY, bal INTEGER)"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	for i := range bankAccounts {
		if _, err := db.Exec("INSERT INTO acct VALUES(?, ?)", i, bankStart); err != nil {
			t.Fatal(err)
		}
	}
}

func checkBank(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ok string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("restored database fails integrity_check: %q %v", ok, err)
	}
	var total int
	if err := db.QueryRow("SELECT sum(bal) FROM acct").Scan(&total); err != nil || total != bankAccounts*bankStart {
		t.Fatalf("restored database holds %d, want %d (%v)", total, bankAccounts*bankStart, err)
	}
}

// A job with hooks and a SQLite writer, read live (no snapshot): every
// backup of a database under constant transfers restores consistent, and
// the hooks run in order with their environment.
func TestJobWithSQLiteWriterAndHooks(t *testing.T) {
	for _, journal := range []string{"delete", "wal"} {
		t.Run(journal, func(t *testing.T) {
			dir := t.TempDir()
			app := filepath.Join(dir, "app")
			os.Mkdir(app, 0o755)
			db := filepath.Join(app, "bank.db")
			newBank(t, db, journal)
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "STILLPOINT_E2E_BANK="+db)
			out, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			buf := make([]byte, 6)
			if _, err := out.Read(buf); err != nil {
				t.Fatal(err)
			}
			logf := filepath.Join(dir, "hooks.log")
			jobFile := filepath.Join(dir, "job.yaml")
			os.WriteFile(jobFile, []byte(fmt.Sprintf(`sources:
  - path: %s
    snapshot: off
writers:
  - sqlite: %s
hooks:
  before-backup:  [{run: 'echo "before-backup $STILLPOINT_PHASE $STILLPOINT_RUN_ID" >> %s', essential: true}]
  before-snapshot: [{run: 'echo before-snapshot >> %s'}]
  after-snapshot: [{run: 'echo after-snapshot >> %s'}]
  after-backup:   [{run: 'echo "after-backup $STILLPOINT_EXIT_CODE $STILLPOINT_SNAPSHOT_ID" >> %s'}]
`, app, db, logf, logf, logf, logf)), 0o644)
			e := newEnv(t)
			e.must(t, 0, "job", "validate", jobFile)
			const runs = 20
			for i := range runs {
				res := e.must(t, 0, "--json", "backup", "--job", jobFile)
				sum := summary(t, res.stdout)
				q, _ := sum["quiesce"].(map[string]any)
				if ws, _ := q["writers"].([]any); len(ws) != 1 {
					t.Fatalf("run %d: the JSON summary reports quiesce %v, want the SQLite writer", i, sum["quiesce"])
				}
				dst := t.TempDir()
				e.must(t, 0, "restore", sum["snapshot_id"].(string), "--target", dst)
				restored := filepath.Join(dst, db)
				checkBank(t, restored)
				// the copy came with an empty WAL (never a live one)
				if fi, err := os.Stat(restored + "-wal"); err == nil && fi.Size() != 0 {
					t.Fatalf("run %d: a live WAL of %d bytes was stored next to the copy", i, fi.Size())
				}
			}
			log, _ := os.ReadFile(logf)
			lines := strings.Split(strings.TrimSpace(string(log)), "\n")
			if len(lines) != 4*runs {
				t.Fatalf("hooks ran %d times, want %d:\n%s", len(lines), 4*runs, log)
			}
			for i := 0; i < len(lines); i += 4 {
				f := strings.Fields(lines[i])
				if len(f) != 3 || f[0] != "before-backup" || f[1] != "before-backup" || len(f[2]) < 8 ||
					lines[i+1] != "before-snapshot" || lines[i+2] != "after-snapshot" || !strings.HasPrefix(lines[i+3], "after-backup 0 ") {
					t.Fatalf("hook order or environment wrong at run %d:\n%s", i/4, strings.Join(lines[i:i+4], "\n"))
				}
			}
		})
	}
}

// A job file with mistakes is refused with the file, the line and a hint.
func TestJobValidateErrors(t *testing.T) {
	jobFile := filepath.Join(t.TempDir(), "job.yaml")
	os.WriteFile(jobFile, []byte("sources:\n  - path: /srv\n    snapshott: on\n"), 0o644)
	e := newEnv(t)
	res := e.must(t, 1, "job", "validate", jobFile)
	for _, want := range []string{jobFile + ":3:", "snapshott", `did you mean "snapshot"`, "hint:"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("validate output lacks %q:\n%s", want, res.stderr)
		}
	}
	if r := e.run(t, "backup", "--job", jobFile); r.code == 0 || !strings.Contains(r.stderr, jobFile+":3:") {
		t.Errorf("backup --job accepted a bad job: %s", r)
	}
	os.WriteFile(jobFile, []byte("sources:\n  - path: /srv\n    retries: 50\n"), 0o644)
	if res := e.must(t, 1, "job", "validate", jobFile); !strings.Contains(res.stderr, jobFile+":3:") || !strings.Contains(res.stderr, "10") {
		t.Errorf("retries above 10 not refused with its line:\n%s", res.stderr)
	}
}
