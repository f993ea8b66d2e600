//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// postgresWL is a PostgreSQL server (started by the harness, on 127.0.0.1
// and a free port, its data directory in the source) with pgbench running
// the TPC-B-like workload. Every pgbench transaction adds the same delta to
// an account, a teller and a branch and records it in history, so the four
// sums agree in every committed state.
type postgresWL struct{}

const pgData = "pgdata"

func (postgresWL) name() string { return "postgres" }

// template makes a cluster with pgbench's tables at the configured scale,
// shut down cleanly.
func (postgresWL) template(ctx context.Context, cfg *config, dir string) error {
	dd := filepath.Join(dir, pgData)
	if err := pgInitdb(ctx, dd); err != nil {
		return err
	}
	s, err := startPG(ctx, dd, filepath.Join(dir, "sock"))
	if err != nil {
		return err
	}
	defer s.stop()
	out, err := exec.CommandContext(ctx, pgBin("pgbench"), "-i", "-q", "-s", strconv.Itoa(cfg.pgScale),
		"-h", "127.0.0.1", "-p", strconv.Itoa(s.port), "-U", "postgres", "postgres").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgbench -i: %v: %s", err, out)
	}
	return s.stop()
}

func (postgresWL) setup(ctx context.Context, e *wlEnv) error {
	if out, err := exec.CommandContext(ctx, "cp", "-a", filepath.Join(e.template, pgData), e.src).CombinedOutput(); err != nil {
		return fmt.Errorf("cp: %v: %s", err, out)
	}
	// checkpoints every few seconds under pgbench, as on a busy server: a
	// live copy that spans one is what breaks crash recovery
	s, err := startPG(ctx, filepath.Join(e.src, pgData), filepath.Join(e.aux, "sock"),
		"-c", "checkpoint_timeout=30s", "-c", "max_wal_size=32MB", "-c", "min_wal_size=32MB")
	if err != nil {
		return err
	}
	e.pg = s
	return nil
}

func (postgresWL) teardown(e *wlEnv) {
	if e.pg != nil {
		e.pg.stop()
		e.pg = nil
	}
}

func (postgresWL) writerEntry(e *wlEnv) string {
	return "- postgres: " + yamlQuote(e.pg.dsn())
}

// pgbenchLoop runs pgbench in one-second runs until stopped: pgbench writes
// its per-transaction log only when it exits.
type pgbenchLoop struct {
	stopc  chan struct{}
	done   chan error
	prefix string
}

func (postgresWL) start(ctx context.Context, e *wlEnv, window int) (running, error) {
	l := &pgbenchLoop{stopc: make(chan struct{}), done: make(chan error, 1),
		prefix: filepath.Join(e.aux, fmt.Sprintf("pgbench-%03d", window))}
	args := []string{"-n", "-c", "2", "-j", "1", "-R", strconv.Itoa(e.cfg.pgRate), "-T", "1", "-l",
		"-h", "127.0.0.1", "-p", strconv.Itoa(e.pg.port), "-U", "postgres"}
	go checkpoints(ctx, e.pg, l.stopc)
	go func() {
		for k := 0; ; k++ {
			select {
			case <-l.stopc:
				l.done <- nil
				return
			default:
			}
			cmd := exec.CommandContext(ctx, pgBin("pgbench"), append(args, fmt.Sprintf("--log-prefix=%s-%03d", l.prefix, k), "postgres")...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if out, err := cmd.CombinedOutput(); err != nil {
				l.done <- fmt.Errorf("pgbench: %v: %s", err, lastLines(string(out), 5))
				return
			}
		}
	}()
	return l, nil
}

// checkpoints runs CHECKPOINT every half second until stop closes. A live
// copy breaks when a checkpoint completes while it runs (the copied
// pg_control then starts recovery after changes that older copied pages
// miss); on a busy server checkpoints run back to back, here they are
// forced so that this shows within a few backups.
func checkpoints(ctx context.Context, s *pgServer, stop <-chan struct{}) {
	c, err := pgx.Connect(ctx, s.dsn())
	if err != nil {
		return
	}
	defer c.Close(context.Background())
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
			c.Exec(ctx, "CHECKPOINT")
		}
	}
}

func (l *pgbenchLoop) stop() error {
	close(l.stopc)
	return <-l.done
}

// ops reads pgbench's logs: client transaction latency_us script epoch_s
// epoch_us [lag]; the epoch is when the transaction ended, and with --rate
// the latency counts from its scheduled start.
func (l *pgbenchLoop) ops() ([]op, error) {
	files, _ := filepath.Glob(l.prefix + "-*")
	var ops []op
	for _, p := range files {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fl := strings.Fields(sc.Text())
			if len(fl) < 6 || fl[2] == "skipped" {
				continue
			}
			lat, _ := strconv.ParseInt(fl[2], 10, 64)
			sec, _ := strconv.ParseInt(fl[4], 10, 64)
			us, _ := strconv.ParseInt(fl[5], 10, 64)
			end := time.Unix(sec, us*1000)
			d := time.Duration(lat) * time.Microsecond
			ops = append(ops, op{start: end.Add(-d), dur: d})
		}
		f.Close()
	}
	return ops, nil
}

// verify starts a server on the restored data directory (crash recovery
// replays the WAL) and compares the sums of the four tables.
func (postgresWL) verify(ctx context.Context, e *wlEnv, restored string) verdict {
	dd := filepath.Join(restored, pgData)
	if _, err := os.Stat(filepath.Join(dd, "PG_VERSION")); err != nil {
		return tornf("%v", err)
	}
	// the copy carries the live server's lock file, naming a running pid
	os.Remove(filepath.Join(dd, "postmaster.pid"))
	if err := reachable(dd, e.cfg.workdir); err != nil {
		return tornf("%v", err)
	}
	sock, err := os.MkdirTemp(e.aux, "verify-")
	if err != nil {
		return tornf("%v", err)
	}
	defer os.RemoveAll(sock)
	s, err := startPG(ctx, dd, sock)
	if err != nil {
		return tornf("the restored cluster does not start: %v", err)
	}
	defer s.stop()
	c, err := pgx.Connect(ctx, s.dsn())
	if err != nil {
		return tornf("connect: %v", err)
	}
	defer c.Close(context.Background())
	var n, a, t, b, h int64
	err = c.QueryRow(ctx, `SELECT (SELECT count(*) FROM pgbench_accounts), (SELECT sum(abalance) FROM pgbench_accounts),
		(SELECT sum(tbalance) FROM pgbench_tellers), (SELECT sum(bbalance) FROM pgbench_branches),
		(SELECT coalesce(sum(delta), 0) FROM pgbench_history)`).Scan(&n, &a, &t, &b, &h)
	if err != nil {
		return tornf("query: %v", err)
	}
	if n != int64(e.cfg.pgScale)*100000 || a != t || t != b || b != h {
		return tornf("accounts %d (want %d), sums: accounts %d, tellers %d, branches %d, history %d",
			n, e.cfg.pgScale*100000, a, t, b, h)
	}
	return verdict{}
}

// pgServer is a PostgreSQL server run as the postgres user.
type pgServer struct {
	dataDir, logPath string
	port             int
	cmd              *exec.Cmd
	done             chan struct{}
	untrack          func()
}

func (s *pgServer) dsn() string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", s.port)
}

// pgBinDir is the newest /usr/lib/postgresql/<version>/bin.
func pgBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	ver := func(d string) int { v, _ := strconv.Atoi(filepath.Base(filepath.Dir(d))); return v }
	slices.SortFunc(dirs, func(a, b string) int { return ver(b) - ver(a) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("no PostgreSQL in /usr/lib/postgresql/*/bin (Debian: apt-get install postgresql)")
}

func pgBin(name string) string {
	d, _ := pgBinDir()
	return filepath.Join(d, name)
}

func pgUser() (uid, gid int, err error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return 0, 0, fmt.Errorf("no postgres user (it comes with the Debian package): %v", err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, nil
}

// asPostgres makes cmd run as the postgres user (PostgreSQL refuses root).
func asPostgres(cmd *exec.Cmd) error {
	uid, gid, err := pgUser()
	if err != nil {
		return err
	}
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	return nil
}

func chownTree(dir string) error {
	uid, gid, err := pgUser()
	if err != nil {
		return err
	}
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// reachable lets the postgres user walk down to dir: restores recreate
// directories above it with the modes they had, or 0700. Directories from
// top (the work directory's parent) up are left alone.
func reachable(dir, top string) error {
	for d := filepath.Dir(dir); d != top && d != "/" && d != "."; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, fi.Mode().Perm()|0o711); err != nil {
				return err
			}
		}
	}
	return nil
}

func pgInitdb(ctx context.Context, dataDir string) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	if err := chownTree(dataDir); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, pgBin("initdb"), "-D", dataDir, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C")
	if err := asPostgres(cmd); err != nil {
		return err
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %v: %s", err, out)
	}
	return nil
}

// startPG starts a server on dataDir, listening on 127.0.0.1 at a free
// port, with its socket and log in sockDir (made if missing), and waits
// until it answers.
func startPG(ctx context.Context, dataDir, sockDir string, settings ...string) (*pgServer, error) {
	if err := os.MkdirAll(sockDir, 0o755); err != nil {
		return nil, err
	}
	for _, d := range []string{dataDir, sockDir} {
		if err := chownTree(d); err != nil {
			return nil, err
		}
	}
	if err := os.Chmod(dataDir, 0o700); err != nil {
		return nil, err
	}
	var last error
	for range 3 { // the free port may be taken before the server binds it
		s, err := tryStartPG(ctx, dataDir, sockDir, settings)
		if err == nil {
			return s, nil
		}
		last = err
	}
	return nil, last
}

func tryStartPG(ctx context.Context, dataDir, sockDir string, settings []string) (*pgServer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &pgServer{dataDir: dataDir, port: port, logPath: filepath.Join(sockDir, "postgres.log"), done: make(chan struct{})}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o666)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	args := []string{"-D", dataDir, "-p", strconv.Itoa(port), "-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=" + sockDir, "-c", "max_connections=20", "-c", "shared_buffers=32MB"}
	s.cmd = exec.Command(pgBin("postgres"), append(args, settings...)...)
	if err := asPostgres(s.cmd); err != nil {
		return nil, err
	}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	s.untrack = trackProcess(s.cmd.Process)
	go func() { s.cmd.Wait(); s.untrack(); close(s.done) }()
	deadline := time.Now().Add(3 * time.Minute) // crash recovery of a restored copy takes a while
	for {
		select {
		case <-s.done:
			return nil, fmt.Errorf("postgres exited: %s", s.logTail())
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		c, err := pgx.Connect(cctx, s.dsn())
		if err == nil {
			_, err = c.Exec(cctx, "SELECT 1")
			c.Close(cctx)
		}
		cancel()
		if err == nil {
			return s, nil
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("postgres not ready after 3m: %v: %s", err, s.logTail())
		}
	}
}

// stop shuts the server down fast (SIGINT: roll back, checkpoint, exit),
// then immediately (SIGQUIT), then kills it.
func (s *pgServer) stop() error {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGQUIT, syscall.SIGKILL} {
		s.cmd.Process.Signal(sig)
		select {
		case <-s.done:
			return nil
		case <-time.After(30 * time.Second):
		}
	}
	return errors.New("postgres did not stop")
}

func (s *pgServer) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	return lastLines(string(b), 8)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
