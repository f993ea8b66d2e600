//go:build linux

package e2e

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The S3 server dies in the middle of a backup and stays down: the backup
// gives up with a clear error after its retries (no hang, no snapshot);
// once the server is back, check finds the repository consistent and the
// next backup completes and restores exactly.
func TestS3ServerKilledDuringBackup(t *testing.T) {
	t.Parallel() // most of it is the backup retrying against a dead server
	srv := s3Server(t)
	bucket := srv.NewBucket(t)
	e := s3Env(t, srv, bucket, "killed", srv.Admin)
	e.must(t, 0, "init")

	src := filepath.Join(t.TempDir(), "src")
	genTree(t, src, 21, 8<<20)
	for i := range 6 {
		writeRandom(t, filepath.Join(src, "big", string(rune('a'+i))+".bin"), uint64(100+i), 16<<20)
	}
	want := treeHash(t, src)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := e.command(ctx, "--json", "backup", src)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// kill the server once the backup has stored some packs
	deadline := time.Now().Add(time.Minute)
	for {
		packs := 0
		for _, k := range bucketKeys(t, srv, bucket) {
			if strings.HasPrefix(k, "killed/data/") {
				packs++
			}
		}
		if packs >= 2 {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("the backup ended before the server was killed (%v): make the data larger\n%s", err, errb.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("no pack stored within a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
	killed := time.Now()
	srv.Kill(t)

	var err error
	select {
	case err = <-exited:
	case <-ctx.Done():
		t.Fatalf("the backup hangs %s after the server died", time.Since(killed).Round(time.Second))
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("backup with the server gone: %v, want exit 1\n%s", err, errb.String())
	}
	msg := errb.String()
	t.Logf("the backup gave up %s after the kill: %s", time.Since(killed).Round(time.Second), lastLine(msg))
	if !strings.Contains(msg, "127.0.0.1") || !strings.Contains(msg, "connection refused") {
		t.Errorf("the error does not say which server failed and how:\n%s", msg)
	}
	if strings.Contains(out.String(), `"snapshot_id"`) {
		t.Fatalf("a snapshot was reported although the backup failed:\n%s", out.String())
	}

	srv.Restart(t)
	if ids := e.snapshotIDs(t); len(ids) != 0 {
		t.Fatalf("%d snapshots after the failed backup", len(ids))
	}
	if c := e.must(t, 0, "check"); !strings.HasPrefix(c.stdout, "no errors") {
		t.Fatalf("check after the restart:\n%s", c)
	}
	id := summary(t, e.must(t, 0, "--json", "backup", src).stdout)["snapshot_id"].(string)
	e.restoreAndCompare(t, id, src, want)
	if c := e.must(t, 0, "check", "--read-data"); !strings.HasPrefix(c.stdout, "no errors") {
		t.Fatalf("check --read-data after the next backup:\n%s", c)
	}
}
