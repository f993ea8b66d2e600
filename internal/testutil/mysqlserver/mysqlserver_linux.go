//go:build linux

package mysqlserver

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/serverutil"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // the "mysql" driver for readiness checks
)

// Server is a running MariaDB (or MySQL) server.
type Server struct {
	DataDir string
	Socket  string
	Port    int
	Binary  string // mariadbd or mysqld
	Log     string // the server's error log

	runDir string
	cmd    *exec.Cmd
	done   chan struct{}
	uid    uint32
	gid    uint32
}

// Start starts a server on dataDir: a new one (root without password) when
// dataDir is empty or missing, or the one already there (e.g. a restored
// copy, which then goes through crash recovery).
func Start(t testing.TB, dataDir string) *Server {
	t.Helper()
	if os.Geteuid() != 0 {
		serverutil.SkipOrFail(t, "mysqlserver", "starting MariaDB as the mysql user needs root (euid %d)", os.Geteuid())
	}
	bin := findBinary("mariadbd", "mysqld")
	if bin == "" {
		serverutil.SkipOrFail(t, "mysqlserver", "no mariadbd or mysqld (Debian: apt-get install mariadb-server)")
	}
	s := &Server{DataDir: dataDir, Binary: bin}
	if err := s.lookupUser(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dataDir), 0o755); err != nil {
		t.Fatal(err)
	}
	var err error
	if s.runDir, err = os.MkdirTemp("", "mysqlrun"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(s.runDir) })
	if err := os.Chown(s.runDir, int(s.uid), int(s.gid)); err != nil {
		t.Fatal(err)
	}
	s.Socket = filepath.Join(s.runDir, "mysqld.sock")
	s.Log = filepath.Join(s.runDir, "error.log")
	if err := serverutil.MakeReachable(dataDir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "mysql")); err != nil {
		if err := s.install(); err != nil {
			t.Fatal(err)
		}
	} else if err := s.chownAll(dataDir); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // a free port can be taken before the server binds it
		if lastErr = s.start(t); lastErr == nil {
			return s
		}
	}
	t.Fatalf("mysqlserver: %v", lastErr)
	return nil
}

// DSN returns a go-sql-driver DSN for database db as root over TCP.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("root@tcp(127.0.0.1:%d)/%s", s.Port, db)
}

// DB opens a pool on database db, closed by t.Cleanup.
func (s *Server) DB(t testing.TB, db string) *sql.DB {
	t.Helper()
	d, err := sql.Open("mysql", s.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func findBinary(names ...string) string {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
		for _, d := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin"} {
			if p := filepath.Join(d, n); serverutil.IsExec(p) {
				return p
			}
		}
	}
	return ""
}

func (s *Server) lookupUser() error {
	u, err := user.Lookup("mysql")
	if err != nil {
		return errors.New("mysqlserver: no mysql user (the mariadb-server package creates it)")
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	s.uid, s.gid = uint32(uid), uint32(gid)
	return nil
}

func (s *Server) command(path string, args ...string) *exec.Cmd {
	cmd := exec.Command(path, args...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "HOME=" + s.runDir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: s.uid, Gid: s.gid}}
	return cmd
}

// serverArgs are shared by installing and running: no option files, small
// logs and buffers so copies are quick.
func (s *Server) serverArgs() []string {
	return []string{"--no-defaults", "--datadir=" + s.DataDir,
		"--innodb-log-file-size=16M", "--innodb-buffer-pool-size=32M"}
}

func (s *Server) install() error {
	if err := os.MkdirAll(s.DataDir, 0o750); err != nil {
		return err
	}
	if err := os.Chown(s.DataDir, int(s.uid), int(s.gid)); err != nil {
		return err
	}
	var cmd *exec.Cmd
	if inst := findBinary("mariadb-install-db", "mysql_install_db"); inst != "" {
		cmd = s.command(inst, "--no-defaults", "--datadir="+s.DataDir,
			"--auth-root-authentication-method=normal", "--skip-test-db", "--user=mysql")
	} else { // MySQL
		cmd = s.command(s.Binary, append(s.serverArgs(), "--initialize-insecure")...)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("mysqlserver: initialize %s: %v: %s", s.DataDir, err, out)
	}
	return nil
}

func (s *Server) start(t testing.TB) error {
	port, err := serverutil.FreePort()
	if err != nil {
		return err
	}
	s.Port = port
	args := append(s.serverArgs(), "--skip-networking=0", "--bind-address=127.0.0.1",
		"--port="+strconv.Itoa(port), "--socket="+s.Socket, "--pid-file="+filepath.Join(s.runDir, "mysqld.pid"),
		"--log-error="+s.Log, "--skip-name-resolve")
	cmd := s.command(s.Binary, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.Binary, err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(s.done) }()
	t.Cleanup(s.Stop)
	if err := s.waitReady(90 * time.Second); err != nil {
		s.Stop()
		return fmt.Errorf("%s on %s, port %d: %w\n%s%s", s.Binary, s.DataDir, port, err, out.String(), serverutil.LogTail(s.Log))
	}
	return nil
}

// waitReady polls until the server answers a query over TCP.
func (s *Server) waitReady(limit time.Duration) error {
	db, err := sql.Open("mysql", s.DSN("")+"?timeout=5s")
	if err != nil {
		return err
	}
	defer db.Close()
	return serverutil.WaitReady(s.done, limit, db.PingContext)
}

// Stop kills the server we started (by its pid; a test server needs no
// clean shutdown, and a copy of its files must recover from a crash
// anyway). It is idempotent.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Kill()
	<-s.done
}

func (s *Server) chownAll(dir string) error {
	return serverutil.ChownAll(dir, s.uid, s.gid)
}
