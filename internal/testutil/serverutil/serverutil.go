// Package serverutil holds what the test-server packages (pgserver,
// mysqlserver) share: making temp directories reachable for the server's
// unprivileged user, free loopback ports, and the CI skip rule.
package serverutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/testutil/ci"
)

// MakeReachable lets the server's user walk down to p: test directories
// (t.TempDir) are 0700 root. Only directories below the temp dir are
// changed.
func MakeReachable(p string) error {
	tmp := filepath.Clean(os.TempDir())
	for d := filepath.Dir(filepath.Clean(p)); strings.HasPrefix(d, tmp+string(filepath.Separator)); d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
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

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// IsExec tells whether p is an executable regular file.
func IsExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// ChownAll gives dir and everything below it to uid:gid.
func ChownAll(dir string, uid, gid uint32) error {
	return filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(uid), int(gid))
	})
}

// SkipOrFail skips when a server cannot be had, except in CI, where it fails.
func SkipOrFail(t testing.TB, who, format string, args ...any) {
	t.Helper()
	if ci.Enabled() {
		t.Fatalf(who+": "+format+" (CI=true, so this is a failure, not a skip)", args...)
	}
	t.Skipf(who+": "+format, args...)
}

// WaitReady polls probe until it succeeds, the server exits (done closes)
// or limit passes. Each probe gets five seconds.
func WaitReady(done <-chan struct{}, limit time.Duration, probe func(ctx context.Context) error) error {
	deadline := time.Now().Add(limit)
	var err error
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return errors.New("the server exited")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = probe(ctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-done:
			return errors.New("the server exited")
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("not ready after %s: %v", limit, err)
}

// LogTail returns the last few KiB of a server's log, for error messages.
func LogTail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(bytes.TrimSpace(b))
}
