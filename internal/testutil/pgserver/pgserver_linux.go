//go:build linux

package pgserver

import (
	"context"
	"errors"
	"fmt"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/serverutil"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is a running PostgreSQL server.
type Server struct {
	DataDir   string
	SocketDir string
	Port      int
	User      string // the superuser: "postgres"
	BinDir    string
	Log       string // the server's log file

	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	uid  uint32
	gid  uint32
}

// Options tune StartWith.
type Options struct {
	// WalDir makes initdb put pg_wal there, with a symlink in the data
	// directory (initdb --waldir).
	WalDir string
}

// Start starts a server on dataDir: a new cluster when dataDir is empty or
// missing, or the cluster already there (e.g. a restored copy, which then
// goes through crash recovery).
func Start(t testing.TB, dataDir string) *Server {
	t.Helper()
	return StartWith(t, dataDir, Options{})
}

// StartWith is Start with options.
func StartWith(t testing.TB, dataDir string, opts Options) *Server {
	t.Helper()
	if os.Geteuid() != 0 {
		serverutil.SkipOrFail(t, "pgserver", "starting PostgreSQL as another user needs root (euid %d)", os.Geteuid())
	}
	bin, err := BinDir()
	if err != nil {
		serverutil.SkipOrFail(t, "pgserver", "%v", err)
	}
	s := &Server{DataDir: dataDir, User: "postgres", BinDir: bin}
	if err := s.lookupUser(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dataDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := serverutil.MakeReachable(dataDir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "PG_VERSION")); err != nil {
		if err := s.initdb(opts); err != nil {
			t.Fatal(err)
		}
	} else if err := s.chownAll(dataDir); err != nil {
		t.Fatal(err)
	}
	s.SocketDir, err = os.MkdirTemp("", "pgsock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(s.SocketDir) })
	if err := os.Chown(s.SocketDir, int(s.uid), int(s.gid)); err != nil {
		t.Fatal(err)
	}
	s.Log = filepath.Join(s.SocketDir, "server.log")
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // a free port can be taken before the server binds it
		if lastErr = s.start(t); lastErr == nil {
			return s
		}
	}
	t.Fatalf("pgserver: %v", lastErr)
	return nil
}

// BinDir finds the newest /usr/lib/postgresql/<version>/bin holding
// initdb and postgres.
func BinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if serverutil.IsExec(filepath.Join(d, "initdb")) && serverutil.IsExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", errors.New("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (Debian: apt-get install postgresql)")
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// DSN returns a URL for database db (empty: "postgres") as the superuser
// over TCP.
func (s *Server) DSN(db string) string {
	if db == "" {
		db = "postgres"
	}
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", s.User, s.Port, db)
}

// Connect opens a connection to database db.
func (s *Server) Connect(ctx context.Context, t testing.TB, db string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(ctx, s.DSN(db))
	if err != nil {
		t.Fatalf("pgserver: connect: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func (s *Server) lookupUser() error {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		s.uid, s.gid = uint32(uid), uint32(gid)
		return nil
	}
	return errors.New("pgserver: neither a postgres nor a nobody user exists to run PostgreSQL (it refuses root)")
}

// command runs a binary of the server as the unprivileged user.
func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.BinDir, name), args...)
	cmd.Dir = "/" // the user may not enter the test's working directory
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C", "HOME=" + s.DataDir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: s.uid, Gid: s.gid}}
	return cmd
}

func (s *Server) initdb(opts Options) error {
	if err := os.MkdirAll(s.DataDir, 0o700); err != nil {
		return err
	}
	if err := os.Chown(s.DataDir, int(s.uid), int(s.gid)); err != nil {
		return err
	}
	args := []string{"-D", s.DataDir, "-U", s.User, "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"}
	if opts.WalDir != "" {
		if err := os.MkdirAll(opts.WalDir, 0o700); err != nil {
			return err
		}
		if err := serverutil.MakeReachable(opts.WalDir); err != nil {
			return err
		}
		if err := os.Chown(opts.WalDir, int(s.uid), int(s.gid)); err != nil {
			return err
		}
		args = append(args, "--waldir="+opts.WalDir)
	}
	out, err := s.command("initdb", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgserver: initdb %s: %v: %s", s.DataDir, err, out)
	}
	return nil
}

func (s *Server) start(t testing.TB) error {
	port, err := serverutil.FreePort()
	if err != nil {
		return err
	}
	s.Port = port
	logf, err := os.OpenFile(s.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := s.command("postgres", "-D", s.DataDir, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+s.SocketDir)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(s.done) }()
	t.Cleanup(s.Stop)
	if err := s.waitReady(90 * time.Second); err != nil {
		s.Stop()
		return fmt.Errorf("postgres on %s, port %d: %w\n%s", s.DataDir, port, err, serverutil.LogTail(s.Log))
	}
	return nil
}

// waitReady polls until the server accepts a query; a server that exits
// or a loaded machine both end the wait with a reason, not a guess.
func (s *Server) waitReady(limit time.Duration) error {
	return serverutil.WaitReady(s.done, limit, func(ctx context.Context) error {
		c, err := pgx.Connect(ctx, s.DSN(""))
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		_, err = c.Exec(ctx, "SELECT 1")
		return err
	})
}

// Stop ends the server the way `pg_ctl stop -m immediate` does (SIGQUIT
// to the postmaster we started, which ends its children), then kills it if
// it has not exited. It is idempotent.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// chownAll gives a restored data directory to the server's user, with the
// 0700 mode PostgreSQL insists on.
func (s *Server) chownAll(dir string) error {
	if err := serverutil.ChownAll(dir, s.uid, s.gid); err != nil {
		return err
	}
	return os.Chmod(dir, 0o700)
}
